"""`inspect_table`: the one entry point that turns a user's file into a `TableInfo`."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path, PurePath

from bot.tabular.csv_table import decode_head, inspect_csv, sniff
from bot.tabular.detect import (
    HEAD_BYTES,
    PROCESS_MAGIC,
    TABLE_EXTENSIONS,
    UNSUPPORTED_EXTENSIONS,
    WORKBOOK_EXTENSIONS,
    XLSX_EXTENSIONS,
    Container,
    classify,
    detect_encoding,
)
from bot.tabular.json_table import JSON_EXTENSIONS, inspect_json, looks_like_json
from bot.tabular.model import TableError, TableErrorCode, TableInfo
from bot.tabular.xlsx_table import inspect_workbook


def inspect_parquet(path: Path, convert_to: Path | None) -> TableInfo:
    from bot.tabular.parquet_table import inspect_parquet as inspect  # pyarrow: only when needed

    return inspect(path, convert_to)


_WHITESPACE_CHUNK = 1 << 20
_BLANK = " \t\r\n\f\v\ufeff\x1a"
_CONTENT_FAILURES = frozenset(
    {TableErrorCode.NOT_TABULAR, TableErrorCode.UNDECODABLE, TableErrorCode.BINARY}
)


def inspect_table(path: Path, original_name: str, convert_to: Path | None = None) -> TableInfo:
    """Read and describe a table file; raise `TableError` with a specific code if unusable.

    Takes delimited text (CSV/TSV/TXT), workbooks (XLSX/XLSM, XLS, XLSB, ODS), JSON/NDJSON
    and Parquet. With `convert_to`, a format the model's sandbox may not read (XLS, XLSB, ODS,
    nested JSON, Parquet) is also written there as a UTF-8 CSV of the table (other sheets of
    a workbook next to it, as `<convert_to>-<n>`); `TableInfo.converted` then says where.

    Blocking (file I/O and CPU): call `inspect_table_async` from the event loop.
    `original_name` is the name the user gave the file; only its extension is used, as a
    hint — the content decides (a CSV named .txt or .xlsx is still read as CSV).
    Cheap checks come first: size, magic bytes, extension, then decoding and parsing.
    Memory stays bounded: the file is streamed, never loaded whole (XLSX excepted:
    calamine materialises the chosen sheet).
    """
    extension = PurePath(original_name).suffix.lower()
    size = path.stat().st_size  # a missing file is the caller's bug: OSError propagates
    if size == 0:
        raise TableError(TableErrorCode.EMPTY, "0 bytes")
    with path.open("rb") as file:
        head = file.read(HEAD_BYTES)

    container = classify(path, head, extension)
    if container is Container.PARQUET:
        return inspect_parquet(path, convert_to)
    if container is not Container.TEXT:
        return inspect_workbook(path, container.value, convert_to)  # type: ignore[arg-type]
    if extension in UNSUPPORTED_EXTENSIONS:
        raise TableError(TableErrorCode.UNSUPPORTED, f"{extension} files are not tables")

    try:
        return _inspect_text(path, head, size, extension, convert_to)
    except TableError as exc:
        if exc.code not in _CONTENT_FAILURES:
            raise
        if extension in XLSX_EXTENSIONS:  # the user meant a workbook: say it is damaged
            raise TableError(
                TableErrorCode.CORRUPT_XLSX, f"neither a workbook nor a table: {exc.detail}"
            ) from exc
        if extension == ".xls":  # HTML or junk exported "as Excel": ask for XLSX or CSV
            raise TableError(
                TableErrorCode.OLD_EXCEL, f".xls that is no table: {exc.detail}"
            ) from exc
        if extension not in TABLE_EXTENSIONS and exc.code is TableErrorCode.NOT_TABULAR:
            raise TableError(TableErrorCode.UNSUPPORTED, f"{extension} file: {exc.detail}") from exc
        raise


async def inspect_table_async(
    path: Path, original_name: str, convert_to: Path | None = None
) -> TableInfo:
    """`inspect_table` off the event loop, so the bot keeps serving other chats.

    Parsing is pure-Python CPU work that holds the GIL: in a thread, a big file would slow the
    event loop to a crawl (each of its I/O steps waits for the GIL; /start took ~0.5 s instead
    of ~5 ms during a 20 MB upload). So files from `PROCESS_MIN_BYTES` up are parsed in a
    worker process (`ParsingPool`); small ones in a thread (no process start, no queueing
    behind a big one). Workbooks and Parquet always go to the worker, whatever their size: a
    small one can unpack to gigabytes, and the worker's memory is capped
    (`WORKER_MEMORY_BYTES`), so such a file ends the worker — it is replaced — and the file is
    refused as TOO_LARGE.
    """
    size, isolated = await asyncio.to_thread(_triage, path, original_name)
    if size < PROCESS_MIN_BYTES and not isolated:
        return await asyncio.to_thread(inspect_table, path, original_name, convert_to)
    return await _POOL.inspect(path, original_name, convert_to)


def _triage(path: Path, original_name: str) -> tuple[int, bool]:
    """The file's size, and whether it must be parsed in the worker process."""
    with path.open("rb") as file:
        magic = file.read(8)
        size = os.fstat(file.fileno()).st_size
    extension = PurePath(original_name).suffix.lower()
    return size, extension in WORKBOOK_EXTENSIONS or magic.startswith(PROCESS_MAGIC)


#: Files at least this big are parsed in the worker process (about 50 ms of CPU per MB).
PROCESS_MIN_BYTES = 1 << 20
#: Files one worker process parses before it is replaced.
TASKS_PER_WORKER = 20
#: The worker's data memory cap: a file needing more ends the worker, not the bot.
WORKER_MEMORY_BYTES = 3 << 30


def _limit_worker_memory(limit: int) -> None:
    """Runs first in the worker process: cap its data memory (heap and private mappings)."""
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard == resource.RLIM_INFINITY or hard > limit:
            resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    except (ImportError, ValueError, OSError):  # not on this platform: the OS limits apply
        pass


class ParsingPool:
    """One worker process, started on first use ("spawn": forking a threaded process is
    unsafe), its memory capped, replaced now and then so a big workbook's memory does not
    stay with it.

    The replacing is done here, not with `max_tasks_per_child`: on Python 3.11 a worker that
    retires while files are queued is never replaced, and every file after that hangs.
    `shutdown()` stops the worker (the bot's `Runtime` calls it on exit); a later file
    starts a new one."""

    def __init__(
        self,
        tasks_per_worker: int = TASKS_PER_WORKER,
        memory_bytes: int = WORKER_MEMORY_BYTES,
    ) -> None:
        self.tasks_per_worker = tasks_per_worker
        self.memory_bytes = memory_bytes
        self._executor: ProcessPoolExecutor | None = None
        self._tasks = 0

    @property
    def started(self) -> bool:
        return self._executor is not None

    def _current(self) -> ProcessPoolExecutor:
        if self._executor is not None and self._tasks >= self.tasks_per_worker:
            self._executor.shutdown(wait=False)  # its queued files still finish, then it exits
            self._executor = None
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_limit_worker_memory,
                initargs=(self.memory_bytes,),
            )
            self._tasks = 0
        self._tasks += 1
        return self._executor

    async def inspect(
        self, path: Path, original_name: str, convert_to: Path | None = None
    ) -> TableInfo:
        for attempt in (1, 2):
            executor = self._current()
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    executor, inspect_table, path, original_name, convert_to
                )
            except BrokenProcessPool as exc:  # the worker died: a fresh one gets one more try
                if self._executor is executor:
                    self._executor = None
                if attempt == 2:  # it died on this very file twice: out of memory
                    raise TableError(TableErrorCode.TOO_LARGE, "the parsing worker died") from exc
        raise AssertionError("unreachable")

    def shutdown(self) -> None:
        """Stop the worker process (files being parsed are abandoned)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


_POOL = ParsingPool()


def parsing_pool() -> ParsingPool:
    """The process's parsing pool (one per process: it holds a worker process)."""
    return _POOL


def shutdown_parsing_pool() -> None:
    _POOL.shutdown()


def _only_whitespace(path: Path, encoding: str, complete: bool) -> bool:
    if complete:
        return True
    with path.open(encoding=encoding, errors="replace") as file:
        while chunk := file.read(_WHITESPACE_CHUNK):
            if chunk.strip(_BLANK):
                return False
    return True


def _inspect_text(
    path: Path, head: bytes, size: int, extension: str, convert_to: Path | None
) -> TableInfo:
    encoding = detect_encoding(path, head, size)
    complete = size <= len(head)
    text = decode_head(head, encoding, complete)
    if not text.strip(_BLANK) and _only_whitespace(path, encoding, complete):
        raise TableError(TableErrorCode.EMPTY, "only whitespace")
    if looks_like_json(text, extension):
        try:
            return inspect_json(path, text, encoding, extension, convert_to)
        except TableError as exc:  # "[id],[name]" in a .csv: not JSON after all
            if exc.code is not TableErrorCode.CORRUPT_JSON or extension in JSON_EXTENSIONS:
                raise
    if not complete and "\n" not in text and "\r" not in text:
        raise TableError(TableErrorCode.LINE_TOO_LONG, f"no line break in {len(head)} bytes")
    dialect = sniff(text, complete=complete, extension=extension)
    return inspect_csv(path, encoding, dialect, head=text, complete=complete)
