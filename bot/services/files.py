"""A chat's files: adding uploads and datasets, listing, removing, resetting.

Uploads arrive as a temporary file already on disk (the Telegram layer streams the
download there); this service hashes and inspects it off the event loop, enforces the
per-chat caps, stores it under a safe unique name and records it. Nothing a user uploaded
is lost when a later step fails, and nothing leaks between chats: every path is under the
chat's own directory and remote copies of users' files are scoped to the chat.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from bot.catalog import Dataset
from bot.common import KeyedLocks
from bot.engine.types import ColumnInfo, DataFile
from bot.services.lease import MAINTENANCE_LEASE_SECONDS, Lease, maintenance_claim
from bot.storage.base import CappedAdd, Store, StoredFile, remote_scope
from bot.storage.files import LocalFileStore
from bot.tabular import TableInfo, inspect_table_async, needs_utf8, transcode_to_utf8
from bot.tabular.reading import column_notes, file_notes, pandas_reading

log = logging.getLogger(__name__)


class RemoteFiles(Protocol):
    async def delete_remote_file(self, file_id: str) -> None: ...


class RejectReason(StrEnum):
    TOO_MANY_FILES = "too_many_files"
    CHAT_FULL = "chat_full"  # total bytes over the cap
    TOO_BIG = "too_big"  # over the download limit of the Bot API server


class ChatBusy(Exception):
    """An analysis holds the chat (on this instance or another): its files must not change
    under it (it may be uploading one of them right now)."""


class FileRejected(Exception):
    def __init__(self, reason: RejectReason, **details: int) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.details = details


@dataclass(frozen=True, slots=True)
class AddedFile:
    record: StoredFile
    info: TableInfo
    duplicate: bool = False  # the same bytes (or dataset) were already in the chat
    # Other sheets of a converted workbook, each stored as a CSV file of its own, and
    # (sheet, stored name) of each.
    extra: tuple[StoredFile, ...] = ()
    sheet_files: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class FileLimits:
    max_files: int
    max_chat_bytes: int
    max_download_bytes: int | None  # None: no Bot API download limit (local server)


def to_data_file(record: StoredFile) -> DataFile:
    reading = _load_reading(record.reading)
    notes = reading.get("columns") or []
    return DataFile(
        name=record.stored_name,
        path=Path(record.path),
        sha256=record.sha256,
        size=record.size,
        rows=record.rows,
        columns=tuple(
            ColumnInfo(name, dtype, tuple(notes[i]) if i < len(notes) else ())
            for i, (name, dtype) in enumerate(record.columns)
        ),
        scope=remote_scope(record.chat_id, record.dataset_id),
        reader=str(reading.get("reader") or ""),
        read_options=tuple((str(k), str(v)) for k, v in reading.get("options") or ()),
        notes=tuple(str(n) for n in reading.get("notes") or ()),
    )


def _load_reading(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        log.warning("unreadable reading notes of a stored file; ignored")
        return {}
    return value if isinstance(value, dict) else {}


def reading_of(
    info: TableInfo, original_name: str, sheet_files: dict[str, str] | None = None
) -> str:
    """The JSON kept with a file: how the model should read it (see `to_data_file`)."""
    reader, options = pandas_reading(info)
    return json.dumps(
        {
            "reader": reader,
            "options": [list(o) for o in options],
            "notes": list(file_notes(info, original_name, sheet_files)),
            "columns": [list(column_notes(c)) for c in info.columns],
        },
        ensure_ascii=False,
    )


TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
XLSX_SUFFIXES = (".xlsx", ".xlsm")
JSON_SUFFIXES = {"json": (".json",), "ndjson": (".jsonl", ".ndjson")}


def _split(original: str) -> tuple[str, str]:
    stem, dot, suffix = original.rpartition(".")
    if not dot:
        return original, ""
    return stem, "." + suffix.lower()


def model_name(original: str, info: TableInfo) -> str:
    """The file name the model sees: its extension matches the content (a CSV sent as
    `report.xlsx` becomes `report.csv`, a converted `report.xls` too), so `pd.read_csv`,
    `read_excel` or `read_json` pick right."""
    stem, suffix = _split(original)
    if info.converted is not None:
        return f"{stem}.csv"
    if info.kind == "csv" and suffix not in TEXT_SUFFIXES:
        return f"{stem}.csv"
    if info.kind == "xlsx" and suffix not in XLSX_SUFFIXES:
        return f"{stem}.xlsx"
    if info.kind in JSON_SUFFIXES and suffix not in JSON_SUFFIXES[info.kind]:
        return f"{stem}{JSON_SUFFIXES[info.kind][0]}"
    return original


def sheet_file_name(original: str, sheet: str) -> str:
    """The CSV another sheet of a converted workbook becomes: `report_Stock.csv`."""
    return f"{_split(original)[0]}_{sheet}.csv"


def _columns(info: TableInfo) -> tuple[tuple[str, str], ...]:
    return tuple((c.name, c.dtype) for c in info.columns)


class ChatFiles:
    def __init__(
        self, store: Store, local: LocalFileStore, remote: RemoteFiles, limits: FileLimits
    ) -> None:
        self._store = store
        self._local = local
        self._remote = remote
        self.limits = limits
        self._chat_locks: KeyedLocks[int] = KeyedLocks()
        self._dataset_info: dict[str, TableInfo] = {}

    async def list_files(self, chat_id: int) -> list[StoredFile]:
        return await self._store.list_files(chat_id)

    async def check_can_add(self, chat_id: int, size: int | None) -> None:
        """Refuse before downloading when the file cannot fit (size from Telegram)."""
        limit = self.limits.max_download_bytes
        if size is not None and limit is not None and size > limit:
            raise FileRejected(RejectReason.TOO_BIG, size=size, limit=limit)
        await self._check_caps(await self._store.list_files(chat_id), size or 0)

    async def _check_caps(self, files: list[StoredFile], new_size: int) -> None:
        used = sum(f.size for f in files if f.dataset_id is None)
        self._check_caps_figures(len(files), used, new_size)

    def _check_caps_figures(self, count: int, used: int, new_size: int) -> None:
        if count >= self.limits.max_files:
            raise FileRejected(RejectReason.TOO_MANY_FILES, limit=self.limits.max_files)
        if used + new_size > self.limits.max_chat_bytes:
            raise FileRejected(
                RejectReason.CHAT_FULL, used=used, size=new_size, limit=self.limits.max_chat_bytes
            )

    async def _add_within(self, record: StoredFile) -> CappedAdd:
        return await self._store.add_file_within(
            record, max_files=self.limits.max_files, max_bytes=self.limits.max_chat_bytes
        )

    async def _discard_local(self, path: Path, others: list[StoredFile]) -> None:
        """An upload that was not added after all: its committed copies go."""
        await self._local.delete(path)
        for other in others:
            await self._local.delete(Path(other.path))

    def new_temp_path(self, chat_id: int) -> Path:
        return self._local.new_temp_path(chat_id)

    async def discard_temp(self, temp: Path) -> None:
        await self._local.delete(temp)

    async def add_upload(self, chat_id: int, original_name: str, temp: Path) -> AddedFile:
        """Inspect a downloaded temp file and add it to the chat.

        A format the model cannot read as it is (XLS, XLSB, ODS, nested JSON, Parquet) is
        stored as the UTF-8 CSV the inspection wrote; each other sheet of such a workbook
        becomes a file of its own (`AddedFile.extra`), as far as the chat's caps allow.
        Raises TableError (the file is not a table we can read) or FileRejected (caps); the
        temp files are removed in every case, the chat's existing files stay untouched."""
        upload = temp
        convert_to = self._local.new_temp_path(chat_id)
        info: TableInfo | None = None
        try:
            info = await inspect_table_async(temp, original_name, convert_to)
            sha = await self._local.sha256_of(temp)  # of the bytes as sent: finds re-sends
            if info.converted is not None:
                upload = Path(info.converted)
            elif info.kind == "csv" and needs_utf8(info.encoding):
                # The model reads files with pandas' defaults: give it clean UTF-8.
                upload = self._local.new_temp_path(chat_id)
                await asyncio.to_thread(transcode_to_utf8, temp, upload, info.encoding or "")
            size = (await asyncio.to_thread(upload.stat)).st_size
            sheets = [o for o in info.others if o.converted is not None]
            sheet_sizes = [
                (await asyncio.to_thread(Path(o.converted).stat)).st_size for o in sheets
            ]  # type: ignore[arg-type]
            async with self._chat_locks.hold(chat_id):
                files = await self._store.list_files(chat_id)
                for existing in files:
                    if existing.sha256 == sha and existing.dataset_id is None:
                        return AddedFile(existing, info, duplicate=True)
                await self._check_caps(files, size)
                taken = {f.stored_name for f in files}
                name = self._local.unique_name(chat_id, model_name(original_name, info), taken)
                taken.add(name)
                extra: list[tuple[TableInfo, str, int]] = []
                room = self.limits.max_files - len(files) - 1
                used = sum(f.size for f in files if f.dataset_id is None) + size
                for other, other_size in zip(sheets, sheet_sizes, strict=True):
                    if room <= 0 or used + other_size > self.limits.max_chat_bytes:
                        log.info("sheet of an upload left out (caps) chat=%s", chat_id)
                        continue
                    other_name = self._local.unique_name(
                        chat_id, sheet_file_name(original_name, other.sheet or ""), taken
                    )
                    taken.add(other_name)
                    extra.append((other, other_name, other_size))
                    room -= 1
                    used += other_size
                path = await self._local.commit(upload, chat_id, name)
                name = path.name  # commit never overwrites: it may pick the next free name
                added_extra: list[StoredFile] = []
                for other, other_name, other_size in extra:
                    other_path = await self._local.commit(
                        Path(other.converted or ""), chat_id, other_name
                    )
                    added_extra.append(
                        self._record(
                            chat_id,
                            f"{original_name} [{other.sheet}]",  # as /files lists it
                            other,
                            other_path,
                            other_size,
                            await self._local.sha256_of(other_path),
                            reading_of(other, original_name),
                        )
                    )
                sheet_files = {
                    r_info.sheet or "": rec.stored_name
                    for (r_info, _, _), rec in zip(extra, added_extra, strict=True)
                }
                record = self._record(
                    chat_id,
                    original_name,
                    info,
                    path,
                    size,
                    sha,
                    reading_of(info, original_name, sheet_files),
                )
                # Another instance may have added a file since the look above: the store
                # checks the caps and duplicates again and adds in one atomic step.
                while not (outcome := await self._add_within(record)).added:
                    if outcome.duplicate_key is None:
                        await self._discard_local(path, added_extra)
                        self._check_caps_figures(outcome.files, outcome.used, size)
                        raise AssertionError("the store refused a file within the caps")
                    existing = await self._store.get_file(chat_id, outcome.duplicate_key)
                    if existing is not None:
                        await self._discard_local(path, added_extra)
                        return AddedFile(existing, info, duplicate=True)
                    # the duplicate was removed meanwhile: try again
                for extra_record in list(added_extra):  # other sheets: as far as caps allow
                    if not (await self._add_within(extra_record)).added:
                        log.info("sheet of an upload left out (caps) chat=%s", chat_id)
                        await self._local.delete(Path(extra_record.path))
                        added_extra.remove(extra_record)
                        sheet_files = {
                            sheet: stored
                            for sheet, stored in sheet_files.items()
                            if stored != extra_record.stored_name
                        }
            log.info("file added chat=%s key=%s size=%d", chat_id, record.file_key, size)
            return AddedFile(
                record, info, extra=tuple(added_extra), sheet_files=tuple(sheet_files.items())
            )
        finally:  # a no-op for whichever temp file was committed under its final name
            await self._local.delete(temp)
            if upload != temp:
                await self._local.delete(upload)
            await self._local.delete(convert_to)
            for other in info.others if info is not None else ():
                if other.converted is not None:
                    await self._local.delete(Path(other.converted))

    @staticmethod
    def _record(
        chat_id: int,
        original_name: str,
        info: TableInfo,
        path: Path,
        size: int,
        sha: str,
        reading: str,
    ) -> StoredFile:
        return StoredFile(
            chat_id=chat_id,
            file_key=secrets.token_hex(4),
            original_name=original_name[:200],
            stored_name=path.name,
            size=size,
            sha256=sha,
            rows=info.rows,
            columns=_columns(info),
            path=str(path),
            added_at=datetime.now(UTC),
            reading=reading,
        )

    async def dataset_info(self, dataset: Dataset) -> TableInfo:
        info = self._dataset_info.get(dataset.id)
        if info is None:
            info = await inspect_table_async(dataset.path, dataset.path.name)
            self._dataset_info[dataset.id] = info
        return info

    async def add_dataset(self, chat_id: int, dataset: Dataset) -> AddedFile:
        """Add a bundled dataset; choosing one twice does not duplicate it."""
        info = await self.dataset_info(dataset)
        async with self._chat_locks.hold(chat_id):
            files = await self._store.list_files(chat_id)
            for existing in files:
                if existing.dataset_id == dataset.id:
                    return AddedFile(existing, info, duplicate=True)
            if len(files) >= self.limits.max_files:
                raise FileRejected(RejectReason.TOO_MANY_FILES, limit=self.limits.max_files)
            taken = {f.stored_name for f in files}
            name = self._local.unique_name(chat_id, dataset.path.name, taken)
            record = StoredFile(
                chat_id=chat_id,
                file_key=secrets.token_hex(4),
                original_name=dataset.path.name,
                stored_name=name,
                size=dataset.size_bytes,
                sha256=dataset.sha256,
                rows=info.rows,
                columns=_columns(info),
                path=str(dataset.path),
                added_at=datetime.now(UTC),
                dataset_id=dataset.id,
                reading=reading_of(info, dataset.path.name),
            )
            await self._store.add_file(record)
        return AddedFile(record, info)

    @asynccontextmanager
    async def _holding_chat(self, chat_id: int) -> AsyncIterator[None]:
        """Hold the chat's claim while its files change: an analysis neither runs now nor
        starts until the change is over, on any instance (it would upload a file being
        deleted, and its remote copy would outlive it). ChatBusy while one runs."""
        async with self._chat_locks.hold(chat_id):  # not while an upload is being recorded
            lease = await Lease.acquire(
                self._store,
                maintenance_claim(chat_id),
                seconds=MAINTENANCE_LEASE_SECONDS,
                heartbeat=MAINTENANCE_LEASE_SECONDS,
            )
            if lease is None:
                raise ChatBusy
            try:
                yield
            finally:
                await lease.release()

    async def remove(self, chat_id: int, file_key: str) -> StoredFile | None:
        """Forget one file, locally and remotely; ChatBusy while an analysis holds the chat."""
        async with self._holding_chat(chat_id):
            record = await self._store.remove_file(chat_id, file_key)
            if record is not None:
                await self._discard(record)
        return record

    async def reset(self, chat_id: int) -> list[StoredFile]:
        """Forget the chat's files and conversation, locally and remotely; ChatBusy while an
        analysis holds the chat."""
        async with self._holding_chat(chat_id):
            removed = await self._store.reset_chat(chat_id)
            for record in removed:
                await self._discard(record)
            await self._local.delete_chat(chat_id)
        return removed

    async def _discard(self, record: StoredFile) -> None:
        if record.dataset_id is not None:
            return  # the bundled file and its shared remote copy stay
        await self._local.delete(Path(record.path))
        scope = remote_scope(record.chat_id, None)
        remote_id = record.remote_id or await self._store.get_remote_file(scope, record.sha256)
        if remote_id:
            try:
                await self._remote.delete_remote_file(remote_id)
            except Exception:  # logged for the operator; never fail the user's action over it
                log.warning(
                    "could not delete remote file of chat=%s", record.chat_id, exc_info=True
                )
        await self._store.forget_remote_file(scope, record.sha256)
