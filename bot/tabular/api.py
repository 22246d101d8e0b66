"""`inspect_table`: the one entry point that turns a user's file into a `TableInfo`."""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path, PurePath

from bot.tabular.csv_table import decode_head, inspect_csv, sniff
from bot.tabular.detect import (
    HEAD_BYTES,
    TABLE_EXTENSIONS,
    UNSUPPORTED_EXTENSIONS,
    XLSX_EXTENSIONS,
    Container,
    classify,
    detect_encoding,
)
from bot.tabular.model import TableError, TableErrorCode, TableInfo
from bot.tabular.xlsx_table import inspect_xlsx

_WHITESPACE_CHUNK = 1 << 20
_BLANK = " \t\r\n\f\v\ufeff\x1a"
_CONTENT_FAILURES = frozenset(
    {TableErrorCode.NOT_TABULAR, TableErrorCode.UNDECODABLE, TableErrorCode.BINARY}
)


def inspect_table(path: Path, original_name: str) -> TableInfo:
    """Read and describe a CSV/TSV/XLSX file; raise `TableError` with a specific code if unusable.

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

    if classify(path, head, extension) is Container.XLSX:
        return inspect_xlsx(path)
    if extension in UNSUPPORTED_EXTENSIONS:
        raise TableError(TableErrorCode.UNSUPPORTED, f"{extension} files are not tables")

    try:
        return _inspect_text(path, head, size, extension)
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


async def inspect_table_async(path: Path, original_name: str) -> TableInfo:
    """`inspect_table` off the event loop, so the bot keeps serving other chats.

    Parsing is pure-Python CPU work that holds the GIL: in a thread, a big file would slow the
    event loop to a crawl (each of its I/O steps waits for the GIL; /start took ~0.5 s instead
    of ~5 ms during a 20 MB upload). So files from `PROCESS_MIN_BYTES` up are parsed in a
    worker process (`ParsingPool`); small ones in a thread (no process start, no queueing
    behind a big one).
    """
    size = (await asyncio.to_thread(path.stat)).st_size
    if size < PROCESS_MIN_BYTES:
        return await asyncio.to_thread(inspect_table, path, original_name)
    return await _POOL.inspect(path, original_name)


#: Files at least this big are parsed in the worker process (about 50 ms of CPU per MB).
PROCESS_MIN_BYTES = 1 << 20
#: Files one worker process parses before it is replaced.
TASKS_PER_WORKER = 20


class ParsingPool:
    """One worker process, started on first use ("spawn": forking a threaded process is
    unsafe), replaced now and then so a big workbook's memory does not stay with it.

    The replacing is done here, not with `max_tasks_per_child`: on Python 3.11 a worker that
    retires while files are queued is never replaced, and every file after that hangs.
    `shutdown()` stops the worker (the bot's `Runtime` calls it on exit); a later file
    starts a new one."""

    def __init__(self, tasks_per_worker: int = TASKS_PER_WORKER) -> None:
        self.tasks_per_worker = tasks_per_worker
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
                max_workers=1, mp_context=multiprocessing.get_context("spawn")
            )
            self._tasks = 0
        self._tasks += 1
        return self._executor

    async def inspect(self, path: Path, original_name: str) -> TableInfo:
        executor = self._current()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                executor, inspect_table, path, original_name
            )
        except BrokenProcessPool:  # the worker died or could not start: use a thread this time
            if self._executor is executor:
                self._executor = None
            return await asyncio.to_thread(inspect_table, path, original_name)

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


def _inspect_text(path: Path, head: bytes, size: int, extension: str) -> TableInfo:
    encoding = detect_encoding(path, head, size)
    complete = size <= len(head)
    text = decode_head(head, encoding, complete)
    if not text.strip(_BLANK) and _only_whitespace(path, encoding, complete):
        raise TableError(TableErrorCode.EMPTY, "only whitespace")
    dialect = sniff(text, complete=complete, extension=extension)
    return inspect_csv(path, encoding, dialect)
