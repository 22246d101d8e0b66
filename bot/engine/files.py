"""Input files: upload once, reuse by (scope, sha256), re-upload when the remote copy vanished.

The mapping (scope, sha256) → remote file id lives in the bot's storage behind the
`RemoteFileIndex` protocol. Remote copies are checked with `files.retrieve` before a turn (at most
once per `check_interval` seconds per file, remembered in memory); a 404 means the copy expired
or was deleted, and the file is uploaded again from `DataFile.path`. Uploads stream the local file
from disk (the SDK reads an open file in 64 KiB chunks) instead of loading it into memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import TypeVar

import openai

from bot.common import KeyedLocks
from bot.engine.artifacts import guess_mime_type
from bot.engine.retry import RetryPolicy, call_with_retries, describe, error_text
from bot.engine.types import DataFile, RemoteFileIndex

logger = logging.getLogger(__name__)

UPLOAD_PURPOSE = "assistants"

T = TypeVar("T")


class UploadError(Exception):
    """An input file could not be uploaded; `cause` is the underlying error."""

    def __init__(self, data_file: DataFile, cause: BaseException) -> None:
        super().__init__(f"upload of {data_file.name!r} failed: {describe(cause)}")
        self.data_file = data_file
        self.cause = cause


class RemoteFiles:
    def __init__(
        self,
        client: openai.AsyncOpenAI,
        index: RemoteFileIndex,
        *,
        retry: RetryPolicy,
        check_interval: float = 60.0,
    ) -> None:
        self._client = client
        self._index = index
        self._retry = retry
        self._check_interval = check_interval
        self._verified: dict[str, float] = {}  # remote id → monotonic time of the last check
        self._locks: KeyedLocks[tuple[str, str]] = KeyedLocks()

    async def resolve(
        self, files: Sequence[DataFile], on_uploading: Callable[[int], None] | None = None
    ) -> list[str]:
        """Remote ids for `files` (same order, duplicates removed), uploading what is missing.

        `on_uploading(n)` is called once before uploading when n > 0 files need it.
        Raises `UploadError`.
        """
        known = await asyncio.gather(*(self._usable_id(f) for f in files))
        missing = [f for f, remote_id in zip(files, known, strict=True) if remote_id is None]
        if missing and on_uploading is not None:
            on_uploading(len({(f.scope, f.sha256) for f in missing}))
        ids = list(known)
        for position, data_file in enumerate(files):
            if ids[position] is None:
                ids[position] = await self._ensure_uploaded(data_file)
        return list(dict.fromkeys(i for i in ids if i))

    async def refresh(
        self, files: Sequence[DataFile], remote_ids: Sequence[str], error: BaseException
    ) -> list[str] | None:
        """The turn request was refused for a file: re-upload the files it names, or (if it
        names none of ours) every file whose remote copy is gone. Returns the new ids, or None
        when nothing could be fixed this way."""
        said = error_text(error)
        named = {i for i in remote_ids if i and i in said}
        changed = False
        for data_file in files:
            remote_id = await self._index.get_remote_file(data_file.scope, data_file.sha256)
            if remote_id is None:
                changed = True
                continue
            if remote_id in named or (not named and not await self._exists(remote_id)):
                logger.info("remote copy %s of %r is gone; re-uploading", remote_id, data_file.name)
                await self._forget(data_file, remote_id)
                changed = True
        if not changed:
            return None
        return await self.resolve(files)

    async def delete(self, file_id: str) -> None:
        self._verified.pop(file_id, None)
        with suppress(openai.NotFoundError):
            await call_with_retries(
                self._retry, lambda: self._client.files.delete(file_id), what="delete file"
            )

    # ---- internals --------------------------------------------------------------------------

    async def _usable_id(self, data_file: DataFile) -> str | None:
        remote_id = await self._index.get_remote_file(data_file.scope, data_file.sha256)
        if remote_id is None:
            return None
        checked = self._verified.get(remote_id)
        if checked is not None and time.monotonic() - checked < self._check_interval:
            return remote_id
        if await self._exists(remote_id):
            return remote_id
        logger.info("remote copy %s of %r expired; will re-upload", remote_id, data_file.name)
        await self._forget(data_file, remote_id)
        return None

    async def _exists(self, remote_id: str) -> bool:
        try:
            await self._client.files.retrieve(remote_id)
        except openai.NotFoundError:
            self._verified.pop(remote_id, None)
            return False
        except openai.APIError as error:
            # Cannot tell: assume it is there; a failing turn request will say otherwise.
            logger.warning("could not check remote file %s: %s", remote_id, describe(error))
            return True
        self._verified[remote_id] = time.monotonic()
        return True

    async def _forget(self, data_file: DataFile, remote_id: str) -> None:
        self._verified.pop(remote_id, None)
        current = await self._index.get_remote_file(data_file.scope, data_file.sha256)
        if current == remote_id:
            await self._index.forget_remote_file(data_file.scope, data_file.sha256)

    async def _ensure_uploaded(self, data_file: DataFile) -> str:
        async def upload_if_still_missing() -> str:
            # Another turn may have uploaded the same bytes while we waited for the lock.
            remote_id = await self._index.get_remote_file(data_file.scope, data_file.sha256)
            if remote_id is not None:
                return remote_id
            remote_id = await self._upload(data_file)
            await self._index.set_remote_file(data_file.scope, data_file.sha256, remote_id)
            self._verified[remote_id] = time.monotonic()
            return remote_id

        async with self._locks.hold((data_file.scope, data_file.sha256)):
            return await upload_if_still_missing()

    async def _upload(self, data_file: DataFile) -> str:
        started = time.monotonic()
        mime = guess_mime_type(data_file.name)
        try:
            handle = await asyncio.to_thread(data_file.path.open, "rb")
        except OSError as error:
            raise UploadError(data_file, error) from error
        try:
            created = await call_with_retries(
                self._retry,
                lambda: self._client.files.create(
                    file=(data_file.name, handle, mime), purpose=UPLOAD_PURPOSE
                ),
                what=f"upload {data_file.name!r}",
            )
        except openai.APIError as error:
            raise UploadError(data_file, error) from error
        finally:
            await asyncio.to_thread(handle.close)
        logger.info(
            "uploaded %r (%d bytes) as %s in %.2fs",
            data_file.name,
            data_file.size,
            created.id,
            time.monotonic() - started,
        )
        return created.id


class MemoryRemoteIndex:
    """A `RemoteFileIndex` kept in memory: for a run whose remote copies need not outlive
    it (the operator's self-check, tests, benchmarks); the bot itself uses its storage."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], str] = {}

    async def get_remote_file(self, scope: str, sha256: str) -> str | None:
        return self.ids.get((scope, sha256))

    async def set_remote_file(self, scope: str, sha256: str, file_id: str) -> None:
        self.ids[(scope, sha256)] = file_id

    async def forget_remote_file(self, scope: str, sha256: str) -> None:
        self.ids.pop((scope, sha256), None)
