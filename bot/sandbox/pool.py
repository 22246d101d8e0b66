"""A pool of sandboxed kernels, one per chat.

    pool = KernelPool(SandboxLimits(...), root_dir=DATA_DIR / "sandbox", venv=Path("/opt/sandbox"))
    await pool.start()                       # self-check; raises SandboxUnavailable
    session = await pool.session("chat-1", [("sales.csv", Path(".../sales.csv"))])
    session.fresh                            # True: a new kernel, no variables from before
    output = await session.execute("import pandas as pd; print(pd.read_csv('sales.csv').shape)")
    await pool.aclose()

Each chat gets a work folder `root_dir/<hash of the chat key>` seen as /mnt/data; the chat's files
are copied there (the originals are never visible to the kernel) and copied again when missing or
changed. Idle kernels stop after `idle_minutes`; beyond `max_idle_kernels` idle ones, the least
recently used stops. A stopped kernel's folder is removed; the next session starts fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from bot.common import safe_filename
from bot.sandbox.files import copy_in, lstat_in, remove_file
from bot.sandbox.kernel import (
    Kernel,
    SandboxError,
    SandboxLimits,
    host_uid,
    make_context,
    usr_layout,
)
from bot.sandbox.output import StepOutput

logger = logging.getLogger(__name__)

InputFile = tuple[str, Path]  # (name under /mnt/data, path on the host)


class SandboxUnavailable(Exception):
    """The sandbox cannot run here; the message says why and what to change (one line)."""


def _userns_hint() -> str:
    hints = []
    restrict = Path("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
    with contextlib.suppress(OSError):
        if restrict.read_text().strip() == "1":
            hints.append(
                "AppArmor blocks unprivileged user namespaces "
                "(sysctl kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile "
                "for bwrap)"
            )
    clone = Path("/proc/sys/kernel/unprivileged_userns_clone")
    with contextlib.suppress(OSError):
        if clone.read_text().strip() == "0":
            hints.append("user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=1)")
    with contextlib.suppress(OSError):
        if Path("/proc/sys/user/max_user_namespaces").read_text().strip() == "0":
            hints.append("user namespaces are disabled (sysctl user.max_user_namespaces=15000)")
    if Path("/.dockerenv").exists() or Path("/run/.containerenv").exists():
        hints.append(
            "inside a container, run it with --security-opt seccomp=unconfined, "
            "--security-opt apparmor=unconfined and --security-opt systempaths=unconfined "
            "(Docker's default profiles forbid namespaces and a fresh /proc; see "
            "docker-compose.local.yml)"
        )
    return "; ".join(hints) or (
        "user namespaces must be allowed: check the kernel's sysctls, seccomp and AppArmor"
    )


class Session:
    """A chat's kernel for one analysis. `fresh`: the kernel is new (no earlier variables)."""

    def __init__(self, pool: KernelPool, entry: _Entry, fresh: bool) -> None:
        self._pool = pool
        self._entry = entry
        self.fresh = fresh

    @property
    def work_dir(self) -> Path:
        return self._entry.work

    async def execute(self, code: str) -> StepOutput:
        return await self._pool._execute(self._entry, code)


class _Entry:
    def __init__(self, key: str, work: Path) -> None:
        self.key = key
        self.work = work
        self.kernel: Kernel | None = None
        self.lock = asyncio.Lock()
        self.busy = 0
        self.last_used = time.monotonic()
        self.copied: dict[str, tuple[int, int, int, int]] = {}  # name → source/copy stats
        self.lost = False  # the kernel was lost since the last session


class KernelPool:
    def __init__(
        self,
        limits: SandboxLimits,
        root_dir: Path,
        venv: Path,
        *,
        bwrap: str = "bwrap",
        uid: int | None = -1,
    ) -> None:
        self.limits = limits
        self.root_dir = Path(root_dir).absolute()
        self.venv = Path(venv).absolute()
        self._bwrap = bwrap
        self._uid = host_uid() if uid == -1 else uid
        if self._uid is not None and not _reachable_by(self.root_dir, self._uid):
            # bwrap, running as the sandbox uid, must be able to walk to each work folder.
            digest = hashlib.sha256(str(self.root_dir).encode()).hexdigest()[:12]
            fallback = Path(tempfile.gettempdir()) / f"datalens-sandbox-{digest}"
            logger.info(
                "sandbox folders go to %s: uid %s cannot reach %s", fallback, self._uid, root_dir
            )
            self.root_dir = fallback
        self._entries: dict[str, _Entry] = {}
        self._context = make_context()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Check that a sandbox can be created and run `1 + 1`; start the idle reaper."""
        await self.check()
        self._reaper = asyncio.create_task(self._reap_forever())

    async def check(self) -> None:
        path = shutil.which(self._bwrap)
        if path is None:
            raise SandboxUnavailable(
                "bubblewrap is not installed: install it "
                "(Debian/Ubuntu: apt-get install bubblewrap)"
            )
        self._bwrap = path
        # Imported here: `python -m bot.sandbox.build` must not find itself imported already.
        from bot.sandbox.build import interpreter, is_ready

        if not await asyncio.to_thread(is_ready, self.venv):
            raise SandboxUnavailable(
                f"the sandbox interpreter is missing at {self.venv}: build it with "
                f"`python -m bot.sandbox.build {self.venv}` (or set SANDBOX_VENV)"
            )
        probe = await asyncio.to_thread(self._probe_namespaces)
        if probe:
            raise SandboxUnavailable(
                f"bubblewrap cannot create a sandbox here ({probe}): {_userns_hint()}"
            )
        await asyncio.to_thread(self._make_root)
        work = self.root_dir / ".self-check"
        # Generous limits: the check must not fail because the machine is busy.
        patient = dataclasses.replace(self.limits, step_seconds=max(self.limits.step_seconds, 60.0))
        kernel = Kernel(
            venv=self.venv,
            work=work,
            limits=patient,
            context=self._context,
            bwrap=self._bwrap,
            uid=self._uid,
        )
        try:
            await kernel.start(preload=False)
            output = await kernel.execute("1 + 1")
        except (SandboxError, OSError) as error:
            raise SandboxUnavailable(
                f"the sandboxed Python kernel did not start ({error}): check that "
                f"{interpreter(self.venv)} runs and that the uid {self._uid or os.getuid()} can "
                f"read it and write {self.root_dir}"
            ) from None
        finally:
            await kernel.stop(keep_work=False)
        if output.text.strip() != "2":
            raise SandboxUnavailable(
                f"the sandboxed kernel answered {output.text.strip()[:200]!r} to `1 + 1`"
            )

    def _make_root(self) -> None:
        # Only this process's kernels use the folder: what a previous run left is a stale cache.
        shutil.rmtree(self.root_dir, ignore_errors=True)
        self.root_dir.mkdir(parents=True, exist_ok=True)
        if self._uid is not None:
            os.chmod(self.root_dir, 0o711)  # noqa: S103 - traversal only, for the sandbox uid

    def _probe_namespaces(self) -> str:
        kwargs: dict[str, object] = {}
        if self._uid is not None:
            kwargs.update(user=self._uid, group=self._uid, extra_groups=[])
        result = subprocess.run(  # noqa: S603
            [self._bwrap, "--unshare-all", *usr_layout(), "--", "/usr/bin/true"],
            capture_output=True,
            text=True,
            env={},
            timeout=30,
            check=False,
            **kwargs,  # type: ignore[arg-type]
        )
        if result.returncode == 0:
            return ""
        return (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]

    async def aclose(self) -> None:
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        entries = list(self._entries.values())
        self._entries.clear()
        await asyncio.gather(*(self._stop(e, remove=True) for e in entries))
        self._context.term()

    # -- sessions ----------------------------------------------------------------------------

    def _entry_for(self, chat_key: str) -> _Entry:
        entry = self._entries.get(chat_key)
        if entry is None:
            name = hashlib.sha256(chat_key.encode()).hexdigest()[:24]
            entry = _Entry(chat_key, self.root_dir / name)
            self._entries[chat_key] = entry
        return entry

    @contextlib.asynccontextmanager
    async def hold(self, chat_key: str) -> AsyncIterator[None]:
        """Keep the chat's kernel and folder for a whole turn: between its steps (while the model
        thinks) neither the idle reaper nor the least-recently-used limit may stop them."""
        entry = self._entry_for(chat_key)
        entry.busy += 1
        try:
            yield
        finally:
            entry.busy -= 1
            entry.last_used = time.monotonic()

    def _new_kernel(self, entry: _Entry) -> Kernel:
        """A kernel (not started yet) for the chat's folder, with the pool's limits."""
        return Kernel(
            venv=self.venv,
            work=entry.work,
            limits=self.limits,
            context=self._context,
            bwrap=self._bwrap,
            uid=self._uid,
        )

    async def session(self, chat_key: str, files: Sequence[InputFile]) -> Session:
        """The chat's kernel (started if needed) with `files` present in /mnt/data."""
        if self._closed:
            raise SandboxError("the sandbox pool is closed")
        entry = self._entry_for(chat_key)
        entry.busy += 1
        try:
            async with entry.lock:
                if entry.kernel is not None:
                    await entry.kernel.settle()
                fresh = entry.kernel is None or not entry.kernel.alive or entry.lost
                if entry.kernel is not None and not entry.kernel.alive:
                    await entry.kernel.stop(keep_work=True)
                    entry.kernel = None
                if entry.kernel is None:
                    await self._make_room()
                    kernel = self._new_kernel(entry)
                    await kernel.start()
                    entry.kernel = kernel
                entry.lost = False
                await asyncio.to_thread(self._sync_files, entry, list(files))
                entry.last_used = time.monotonic()
                return Session(self, entry, fresh)
        finally:
            entry.busy -= 1

    def _sync_files(self, entry: _Entry, files: list[InputFile]) -> None:
        """Copy the chat's files into its work folder when missing or changed, and remove the
        copies of files the chat no longer has (blocking)."""
        wanted = {safe_filename(name) for name, _ in files}
        for gone in [name for name in entry.copied if name not in wanted]:
            with contextlib.suppress(OSError):
                remove_file(entry.work, gone)
            del entry.copied[gone]
        for name, source in files:
            safe = safe_filename(name)
            try:
                src = source.stat()
            except FileNotFoundError:
                # The model simply does not see it; the other files and steps still work.
                logger.warning("chat file %s is missing locally (%s); not copied", safe, source)
                continue
            try:
                # Never follows a link the sandbox may have put in its place.
                dst = lstat_in(entry.work, safe)
                current = (src.st_size, src.st_mtime_ns, dst.st_size, dst.st_mtime_ns)
            except FileNotFoundError:
                current = None
            if current is not None and entry.copied.get(safe) == current:
                continue
            copy_in(source, entry.work, safe, 0o644)
            dst = lstat_in(entry.work, safe)
            entry.copied[safe] = (src.st_size, src.st_mtime_ns, dst.st_size, dst.st_mtime_ns)

    async def reset(self, chat_key: str) -> None:
        """Stop the chat's kernel and empty its folder: the next session starts afresh."""
        entry = self._entries.get(chat_key)
        if entry is None:
            return
        entry.busy += 1
        try:
            async with entry.lock:
                await self._stop(entry, remove=False)
                await asyncio.to_thread(shutil.rmtree, entry.work, True)
        finally:
            entry.busy -= 1

    async def _execute(self, entry: _Entry, code: str) -> StepOutput:
        entry.busy += 1
        try:
            async with entry.lock:
                restarted_now = False
                if entry.kernel is not None:
                    await entry.kernel.settle()
                if entry.kernel is None or not entry.kernel.alive:
                    if entry.kernel is not None:
                        await entry.kernel.stop(keep_work=True)
                    kernel = self._new_kernel(entry)
                    await kernel.start()
                    entry.kernel = kernel
                    entry.lost = False
                    restarted_now = True
                output = await entry.kernel.execute(code)
                if not entry.kernel.alive:
                    output.restarted = True
                    entry.lost = True
                if restarted_now:
                    output.notes.insert(
                        0,
                        "This step ran in a fresh Python kernel: variables from earlier steps are "
                        "gone; the files in /mnt/data are kept.",
                    )
                entry.last_used = time.monotonic()
                return output
        finally:
            entry.busy -= 1

    # -- idle kernels ------------------------------------------------------------------------

    def _idle(self) -> list[_Entry]:
        return sorted(
            (e for e in self._entries.values() if e.kernel is not None and not e.busy),
            key=lambda e: e.last_used,
        )

    async def _make_room(self) -> None:
        idle = self._idle()
        while len(idle) >= self.limits.max_idle_kernels:
            await self._stop_idle(idle.pop(0))

    async def _stop_idle(self, entry: _Entry) -> bool:
        """Stop an idle chat's kernel and remove its folder, under the chat's lock, unless a
        session came for it meanwhile (which waits for the lock and then starts afresh)."""
        if entry.lock.locked() or entry.busy:
            return False
        async with entry.lock:
            if entry.busy or entry.kernel is None:
                return False
            await self._stop(entry, remove=True)
            return True

    async def _stop(self, entry: _Entry, *, remove: bool) -> None:
        """Stop the kernel (the caller holds `entry.lock`, or the pool is closing)."""
        kernel, entry.kernel = entry.kernel, None
        entry.copied.clear()
        if kernel is not None:
            await kernel.stop(keep_work=not remove)
        elif remove:
            await asyncio.to_thread(shutil.rmtree, entry.work, True)
        if remove and self._entries.get(entry.key) is entry and not entry.busy:
            del self._entries[entry.key]

    async def reap(self) -> int:
        """Stop kernels idle longer than `idle_minutes`; return how many."""
        limit = self.limits.idle_minutes * 60
        now = time.monotonic()
        stale = [e for e in self._idle() if now - e.last_used > limit]
        stopped = 0
        for entry in stale:
            stopped += await self._stop_idle(entry)
        return stopped

    async def _reap_forever(self) -> None:
        interval = max(min(self.limits.idle_minutes * 60 / 4, 60.0), 0.5)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reap()
            except Exception:
                logger.exception("stopping idle kernels failed")

    def is_warm(self, chat_key: str) -> bool:
        """Whether the chat has a live kernel whose variables a session would keep."""
        entry = self._entries.get(chat_key)
        return (
            entry is not None and entry.kernel is not None and entry.kernel.alive and not entry.lost
        )

    def kernel_pids(self) -> dict[str, int]:
        return {
            key: e.kernel.pid
            for key, e in self._entries.items()
            if e.kernel is not None and e.kernel.pid is not None
        }


def _reachable_by(path: Path, uid: int) -> bool:
    """Whether `uid` can traverse every existing folder on the way to `path`."""
    for folder in [*reversed(path.parents), path]:
        try:
            st = folder.stat()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        if not (st.st_mode & 0o001 or (st.st_uid == uid and st.st_mode & 0o100)):
            return False
    return True
