"""Local copies of the chats' files under `<root>/<chat_id>/` (root is DATA_DIR/files).

A user's file name never becomes a path unchanged (`safe_filename`). Files appear under
their final name only complete: data goes to a temp file (`.part-*`) in the same
directory, is fsynced and then linked/renamed into place. Leftover temp files from a crash
are removed by `cleanup_temp_files()` at start. All disk work runs off the event loop.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import secrets
import shutil
from collections.abc import AsyncIterable
from pathlib import Path

from bot.common.filenames import numbered_name, safe_filename

TEMP_PREFIX = ".part-"
_WRITE_BUFFER = 1024 * 1024
_HASH_CHUNK = 1024 * 1024


class LocalFileStore:
    """Per-chat directories of local file copies under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ---- naming ---------------------------------------------------------------------------
    def chat_dir(self, chat_id: int) -> Path:
        return self.root / str(int(chat_id))

    def unique_name(self, chat_id: int, name: str, taken: set[str]) -> str:
        """`safe_filename(name)`, or the first of name_2, name_3, ... not in `taken`
        (the chat's stored names). Disk collisions are handled at write time: see
        `write_atomic`/`commit`, which never overwrite and return the name they used."""
        del chat_id  # names are per chat; kept for a uniform call shape
        return _first_free(safe_filename(name), taken)

    def new_temp_path(self, chat_id: int) -> Path:
        """A fresh, not yet existing temp path in the chat's directory (the directory is
        created) for a download to stream into; finish with `commit` or `delete`."""
        directory = self.chat_dir(chat_id)
        directory.mkdir(parents=True, exist_ok=True)  # one metadata syscall
        return self._temp_in(directory)

    @staticmethod
    def _temp_in(directory: Path) -> Path:
        return directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}"

    # ---- writing --------------------------------------------------------------------------
    async def write_atomic(
        self,
        chat_id: int,
        name: str,
        data: bytes | AsyncIterable[bytes],
        *,
        replace: bool = False,
    ) -> Path:
        """Write `data` as `<chat_dir>/<name>` and return the final path.

        The name is passed through `safe_filename`. Unless `replace` is set, an existing
        file is never overwritten: the first free numbered name is used instead (look at
        the returned path's name). On any error (or cancellation) nothing is left behind.
        """
        directory = self.chat_dir(chat_id)
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        temp = self._temp_in(directory)
        try:
            if isinstance(data, bytes | bytearray | memoryview):
                await asyncio.to_thread(_write_all, temp, bytes(data))
            else:
                await _write_stream(temp, data)
            return await asyncio.to_thread(_place, temp, directory, safe_filename(name), replace)
        except BaseException:
            await asyncio.to_thread(_unlink_quietly, temp)
            raise

    async def commit(self, temp: Path, chat_id: int, name: str, *, replace: bool = False) -> Path:
        """Move a finished temp file (from `new_temp_path`) into place as `name`; same rules
        as `write_atomic`. The temp file is gone afterwards, whether this succeeds or not."""
        directory = self.chat_dir(chat_id)
        temp = Path(temp)
        if not temp.name.startswith(TEMP_PREFIX):
            raise ValueError("commit() takes a temp path made by new_temp_path()")

        def finish() -> Path:
            if temp.parent.resolve() != directory.resolve():
                raise ValueError("commit() takes a temp path in the same chat's directory")
            with open(temp, "rb+") as f:
                os.fsync(f.fileno())
            return _place(temp, directory, safe_filename(name), replace)

        try:
            return await asyncio.to_thread(finish)
        except BaseException:
            await asyncio.to_thread(_unlink_quietly, temp)
            raise

    # ---- removing -------------------------------------------------------------------------
    async def delete(self, path: Path | str) -> bool:
        """Remove one file inside the store; False when it was not there."""
        target = Path(path)
        root = await asyncio.to_thread(self.root.resolve)
        resolved = await asyncio.to_thread(target.resolve)
        if not resolved.is_relative_to(root) or resolved == root:
            raise ValueError("refusing to delete a path outside the file store")
        return await asyncio.to_thread(_unlink_quietly, resolved)

    async def delete_chat(self, chat_id: int) -> None:
        """Remove the chat's directory with everything in it."""
        await asyncio.to_thread(shutil.rmtree, self.chat_dir(chat_id), ignore_errors=True)

    async def cleanup_temp_files(self) -> int:
        """Remove temp files left by an interrupted write (call once at start, before any
        write). Returns how many were removed."""

        def sweep() -> int:
            removed = 0
            if not self.root.is_dir():
                return 0
            for temp in self.root.glob(f"*/{TEMP_PREFIX}*"):
                removed += _unlink_quietly(temp)
            return removed

        return await asyncio.to_thread(sweep)

    # ---- reading --------------------------------------------------------------------------
    async def sha256_of(self, path: Path | str) -> str:
        return await asyncio.to_thread(file_sha256, Path(path))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _first_free(name: str, taken: set[str] | frozenset[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while numbered_name(name, n) in taken:
        n += 1
    return numbered_name(name, n)


def _write_all(temp: Path, data: bytes) -> None:
    with open(temp, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


async def _write_stream(temp: Path, chunks: AsyncIterable[bytes]) -> None:
    f = await asyncio.to_thread(open, temp, "xb")
    try:
        buffer = bytearray()
        async for chunk in chunks:
            buffer += chunk
            if len(buffer) >= _WRITE_BUFFER:
                await asyncio.to_thread(f.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await asyncio.to_thread(f.write, bytes(buffer))

        def sync_file() -> None:
            f.flush()
            os.fsync(f.fileno())

        await asyncio.to_thread(sync_file)
    finally:
        await asyncio.to_thread(f.close)


def _place(temp: Path, directory: Path, name: str, replace: bool) -> Path:
    """Give the (complete, fsynced) temp file its final name; never clobbers unless asked."""
    if replace:
        final = directory / name
        os.replace(temp, final)
        _fsync_dir(directory)
        return final
    tried: set[str] = set()
    candidate = name
    while True:
        final = directory / candidate
        try:
            os.link(temp, final)  # atomic, fails if the name exists
        except FileExistsError:
            tried.add(candidate)
            candidate = _first_free(name, tried)
            continue
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
                raise
            # A file system without hard links: check then rename (racy only against
            # another writer of the same name in the same instant).
            if final.exists():
                tried.add(candidate)
                candidate = _first_free(name, tried)
                continue
            os.replace(temp, final)
            _fsync_dir(directory)
            return final
        os.unlink(temp)
        _fsync_dir(directory)
        return final


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
