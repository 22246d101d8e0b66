"""A chat's files: adding uploads and datasets, listing, removing, resetting.

Uploads arrive as a temporary file already on disk (the Telegram layer streams the
download there); this service hashes and inspects it off the event loop, enforces the
per-chat caps, stores it under a safe unique name and records it. Nothing a user uploaded
is lost when a later step fails, and nothing leaks between chats: every path is under the
chat's own directory and remote copies of users' files are scoped to the chat.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from bot.catalog import Dataset
from bot.common import KeyedLocks
from bot.engine.types import ColumnInfo, DataFile
from bot.services.lease import MAINTENANCE_LEASE_SECONDS, Lease, maintenance_claim
from bot.storage.base import Store, StoredFile, remote_scope
from bot.storage.files import LocalFileStore
from bot.tabular import TableInfo, inspect_table_async, needs_utf8, transcode_to_utf8

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


@dataclass(frozen=True, slots=True)
class FileLimits:
    max_files: int
    max_chat_bytes: int
    max_download_bytes: int | None  # None: no Bot API download limit (local server)


def to_data_file(record: StoredFile) -> DataFile:
    return DataFile(
        name=record.stored_name,
        path=Path(record.path),
        sha256=record.sha256,
        size=record.size,
        rows=record.rows,
        columns=tuple(ColumnInfo(name, dtype) for name, dtype in record.columns),
        scope=remote_scope(record.chat_id, record.dataset_id),
    )


TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
XLSX_SUFFIXES = (".xlsx", ".xlsm")


def model_name(original: str, info: TableInfo) -> str:
    """The file name the model sees: its extension matches the content (a CSV sent as
    `report.xlsx` becomes `report.csv`), so `pd.read_csv`/`read_excel` pick right."""
    stem, dot, suffix = original.rpartition(".")
    if not dot:
        stem, suffix = original, ""
    suffix = "." + suffix.lower() if suffix else ""
    if info.kind == "csv" and suffix not in TEXT_SUFFIXES:
        return f"{stem}.csv"
    if info.kind == "xlsx" and suffix not in XLSX_SUFFIXES:
        return f"{stem}.xlsx"
    return original


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
        if len(files) >= self.limits.max_files:
            raise FileRejected(RejectReason.TOO_MANY_FILES, limit=self.limits.max_files)
        used = sum(f.size for f in files if f.dataset_id is None)
        if used + new_size > self.limits.max_chat_bytes:
            raise FileRejected(
                RejectReason.CHAT_FULL, used=used, size=new_size, limit=self.limits.max_chat_bytes
            )

    def new_temp_path(self, chat_id: int) -> Path:
        return self._local.new_temp_path(chat_id)

    async def discard_temp(self, temp: Path) -> None:
        await self._local.delete(temp)

    async def add_upload(self, chat_id: int, original_name: str, temp: Path) -> AddedFile:
        """Inspect a downloaded temp file and add it to the chat.

        Raises TableError (the file is not a table we can read) or FileRejected (caps); the
        temp file is removed in every case, the chat's existing files stay untouched."""
        upload = temp
        try:
            info = await inspect_table_async(temp, original_name)
            sha = await self._local.sha256_of(temp)  # of the bytes as sent: finds re-sends
            if info.kind == "csv" and needs_utf8(info.encoding):
                # The model reads files with pandas' defaults: give it clean UTF-8.
                upload = self._local.new_temp_path(chat_id)
                await asyncio.to_thread(transcode_to_utf8, temp, upload, info.encoding or "")
            size = (await asyncio.to_thread(upload.stat)).st_size
            async with self._chat_locks.hold(chat_id):
                files = await self._store.list_files(chat_id)
                for existing in files:
                    if existing.sha256 == sha and existing.dataset_id is None:
                        return AddedFile(existing, info, duplicate=True)
                await self._check_caps(files, size)
                taken = {f.stored_name for f in files}
                name = self._local.unique_name(chat_id, model_name(original_name, info), taken)
                path = await self._local.commit(upload, chat_id, name)
                name = path.name  # commit never overwrites: it may pick the next free name
                record = StoredFile(
                    chat_id=chat_id,
                    file_key=secrets.token_hex(4),
                    original_name=original_name[:200],
                    stored_name=name,
                    size=size,
                    sha256=sha,
                    rows=info.rows,
                    columns=_columns(info),
                    path=str(path),
                    added_at=datetime.now(UTC),
                )
                await self._store.add_file(record)
            log.info("file added chat=%s key=%s size=%d", chat_id, record.file_key, size)
            return AddedFile(record, info)
        finally:  # a no-op for whichever temp file was committed under its final name
            await self._local.delete(temp)
            if upload != temp:
                await self._local.delete(upload)

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
