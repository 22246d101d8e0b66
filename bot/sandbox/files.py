"""Host-side access to files in a sandbox-writable folder without following links.

The sandboxed code can replace any file or folder under /mnt/data with a symlink (to
/proc/self/environ, another chat's folder, a host file). Everything here walks the path one
component at a time with O_NOFOLLOW from a descriptor of the work folder, so a link is never
followed and nothing outside the folder is reached.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _parts(name: str) -> list[str]:
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise OSError(f"not a plain relative path: {name!r}")
    return parts


def open_parent(root: Path, name: str) -> tuple[int, str]:
    """A descriptor of the folder holding `name` (relative to `root`) and the last component;
    raises OSError if any folder on the way is a link. The caller closes the descriptor."""
    parts = _parts(name)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def read_file(root: Path, name: str, max_bytes: int) -> bytes | None:
    """The bytes of the regular file `root/name` (None: over `max_bytes`); OSError if it is
    gone, a link, a FIFO or anything but a regular file inside `root`."""
    parent, last = open_parent(root, name)
    try:
        fd = os.open(
            last, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent
        )
    finally:
        os.close(parent)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"not a regular file: {name!r}")
        if st.st_size > max_bytes:
            return None
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        return None if len(data) > max_bytes else data
    finally:
        os.close(fd)


def remove_file(root: Path, name: str) -> None:
    """Remove `root/name` (a link itself, never its target); OSError if it cannot."""
    parent, last = open_parent(root, name)
    try:
        os.unlink(last, dir_fd=parent)
    finally:
        os.close(parent)


def copy_in(source: Path, root: Path, name: str, mode: int = 0o644) -> None:
    """Copy the host file `source` to `root/name` (a plain name) through a fresh temporary file
    created with O_EXCL | O_NOFOLLOW, so a link planted by the sandbox is replaced, never
    written through or chmod-ed."""
    parent, last = open_parent(root, name)
    try:
        tmp = f".{last}.copy"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=parent)
        fd = os.open(
            tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=parent,
        )
        try:
            with open(source, "rb") as src, os.fdopen(fd, "wb", closefd=False) as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(tmp, last, src_dir_fd=parent, dst_dir_fd=parent)
    finally:
        os.close(parent)


def lstat_in(root: Path, name: str) -> os.stat_result:
    """`lstat` of `root/name` without following links on the way."""
    parent, last = open_parent(root, name)
    try:
        return os.stat(last, dir_fd=parent, follow_symlinks=False)
    finally:
        os.close(parent)
