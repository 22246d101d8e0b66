"""One IPython kernel inside bubblewrap, driven over ZMQ unix sockets.

The sandbox (one `bwrap` call): new user, pid, network, ipc, uts and cgroup namespaces (the
network namespace has only `lo`, so nothing outside is reachable); a read-only root holding only
/usr, two files of /etc, the sandbox venv (read-only, same path as on the host), a fresh /proc and
/dev, a private size-capped /tmp, the chat's work folder at /mnt/data and the folder of the
kernel's sockets at /run/kernel. uid 65534 inside, no capabilities, a new session, dies with the
bot. `bwrap` itself starts with an empty environment: as pid 1 of the sandbox its /proc/1/environ
is visible inside. When the bot runs as root, `bwrap` runs as a dedicated non-root uid, because
RLIMIT_NPROC is not enforced for a sandbox whose uid maps to root.

A launcher (`python -c`) sets the rlimits inside the sandbox (so the process count is per
sandbox), copies matplotlib's font cache to /tmp and execs `ipykernel_launcher`. TCP cannot
cross the network namespace, so the kernel's ZMQ sockets use the `ipc` transport: unix sockets in
a per-kernel folder bound into the sandbox. The bot connects to them with jupyter_client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient

from bot.sandbox.files import remove_file
from bot.sandbox.output import StepFile, StepOutput, TrimmedText, strip_ansi

logger = logging.getLogger(__name__)

SANDBOX_DATA = "/mnt/data"
SANDBOX_RUN = "/run/kernel"
SANDBOX_TMP = "/tmp"  # noqa: S108 - the sandbox's own private tmpfs
NOBODY = 65534
MAX_MESSAGE_BYTES = 64 << 20  # a larger ZMQ message from the kernel drops the connection


@dataclass(frozen=True)
class SandboxLimits:
    memory_mb: int = 2048  # RLIMIT_AS of the kernel
    step_seconds: float = 120.0  # wall clock per step, then interrupt
    idle_minutes: float = 20.0  # idle kernels are shut down after this
    disk_mb: int = 1024  # the chat's work folder (inputs + outputs)
    tmp_mb: int = 128  # the private /tmp (memory-backed)
    max_processes: int = 64  # RLIMIT_NPROC, threads included
    max_open_files: int = 256
    output_chars: int = 20_000  # text returned per step (head + tail)
    max_images: int = 20
    max_idle_kernels: int = 8  # LRU cap on idle kernels
    interrupt_grace: float = 5.0  # after an interrupt, then kill
    start_seconds: float = 60.0


class SandboxError(Exception):
    """The sandbox could not be started or talked to."""


# Runs inside the sandbox as the kernel's process before it becomes the kernel.
LAUNCHER = r"""
import json, os, resource, shutil, sys
cfg = json.loads(sys.argv[1])
for name, value in cfg["rlimits"].items():
    resource.setrlimit(getattr(resource, name), (value, value))
if os.path.isdir(cfg["mpl_cache"]):
    shutil.copytree(cfg["mpl_cache"], "/tmp/.mpl", dirs_exist_ok=True)
os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *cfg["args"]])
"""

# Runs once in a new kernel (silently): caps what print() can push through ZMQ per step,
# keeping the head and the tail.
STARTUP = r"""
def __sandbox_setup(limit):
    import contextlib, sys
    ip = get_ipython()
    # IPython keeps a copy of everything printed (for its history): not in a long-lived kernel.
    if hasattr(ip, "_tee"):
        ip._tee = lambda channel: contextlib.nullcontext()
    state = {"n": 0, "tail": "", "cut": 0, "first": None}
    def capped(original):
        def write(text):
            if not isinstance(text, str):
                return original(text)
            room = limit - state["n"]
            state["n"] += len(text)
            if room > 0:
                original(text[:room])
            if len(text) > room:
                extra = text[max(room, 0):][-limit:]
                state["cut"] += len(text) - max(room, 0)
                state["tail"] = (state["tail"] + extra)[-limit:]
            return len(text)
        write.sandbox_capped = original
        return write
    def wrap():
        # The kernel may swap its streams: wrap whatever is current, once.
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name, None)
            if stream is not None and not hasattr(stream.write, "sandbox_capped"):
                with contextlib.suppress(AttributeError, TypeError):
                    stream.write = capped(stream.write)
    def pre(*_):
        state.update(n=0, tail="", cut=0)
        wrap()
    def post(*_):
        if state["cut"]:
            kept = state["tail"]
            cut = state["cut"] - len(kept)
            write = getattr(sys.stdout.write, "sandbox_capped", sys.stdout.write)
            write(f"\n… [{cut} characters of output cut] …\n" + kept)
            sys.stdout.flush()
        state.update(n=0, tail="", cut=0)
    ip.events.register("pre_run_cell", pre)
    ip.events.register("post_run_cell", post)
__sandbox_setup(LIMIT)
del __sandbox_setup
"""


# Imported into sys.modules only (the user's namespace stays empty); a failure is ignored.
PRELOAD = """
try:
    import numpy, pandas, matplotlib.pyplot
except Exception:
    pass
"""


def _etc_binds() -> list[str]:
    args = []
    for path in ("/etc/ld.so.cache", "/etc/fonts", "/etc/localtime", "/etc/mime.types"):
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    return args


def usr_layout() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("lib", "lib64", "bin", "sbin"):
        target = Path("/") / name
        if target.is_symlink():
            args += ["--symlink", os.readlink(target), f"/{name}"]
        elif target.is_dir():
            args += ["--ro-bind", str(target), f"/{name}"]
    return args


def sandbox_args(venv: Path, fds: tuple[int, int, int], limits: SandboxLimits) -> list[str]:
    """The bwrap options (before the command). `fds`: open O_PATH descriptors of the venv, the
    work folder and the socket folder, bound by descriptor so that the sandbox's uid needs no
    access to their parent folders (DATA_DIR may be mode 700)."""
    venv = venv.absolute()
    python_bin = venv / "bin"
    venv_fd, work_fd, run_fd = fds
    return [
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        *usr_layout(),
        *_etc_binds(),
        # The private /tmp first: the interpreter may itself live under /tmp (a checkout
        # there), and a later bind is placed inside the tmpfs instead of being hidden by it.
        "--size",
        str(limits.tmp_mb << 20),
        "--tmpfs",
        SANDBOX_TMP,
        "--ro-bind-fd",
        str(venv_fd),
        str(venv),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--remount-ro",
        "/dev",
        "--bind-fd",
        str(work_fd),
        SANDBOX_DATA,
        "--bind-fd",
        str(run_fd),
        SANDBOX_RUN,
        "--chdir",
        SANDBOX_DATA,
        "--clearenv",
        "--setenv",
        "PATH",
        f"{python_bin}:/usr/bin:/bin",
        "--setenv",
        "HOME",
        SANDBOX_TMP,
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--setenv",
        "MPLCONFIGDIR",
        f"{SANDBOX_TMP}/.mpl",
        "--setenv",
        "MPLBACKEND",
        "module://matplotlib_inline.backend_inline",
        "--setenv",
        "IPYTHONDIR",
        f"{SANDBOX_TMP}/.ipython",
        "--setenv",
        "PYTHONDONTWRITEBYTECODE",
        "1",
        "--setenv",
        "PYDEVD_DISABLE_FILE_VALIDATION",
        "1",
        "--setenv",
        "OPENBLAS_NUM_THREADS",
        "1",
        "--setenv",
        "OMP_NUM_THREADS",
        "1",
        "--setenv",
        "MKL_NUM_THREADS",
        "1",
        "--uid",
        str(NOBODY),
        "--gid",
        str(NOBODY),
        "--hostname",
        "sandbox",
        "--cap-drop",
        "ALL",
        "--remount-ro",
        "/",
    ]


def host_uid() -> int | None:
    """The uid to run bwrap as: a non-root one when the bot is root, else the bot's own."""
    return NOBODY if os.geteuid() == 0 else None


def _chown(path: Path, uid: int | None) -> None:
    if uid is not None:
        os.chown(path, uid, uid)


def _snapshot(work: Path) -> dict[str, tuple[int, int]]:
    """name → (size, mtime_ns) of the regular files under `work`, hidden ones skipped."""
    found: dict[str, tuple[int, int]] = {}
    stack = [(work, "")]
    while stack and len(found) < 10_000:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_symlink():
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), f"{prefix}{entry.name}/"))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    found[prefix + entry.name] = (st.st_size, st.st_mtime_ns)
            except OSError:
                continue
    return found


def disk_usage(work: Path) -> int:
    total = 0
    stack = [work]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
    return total


class Kernel:
    """One sandboxed kernel. Not safe for concurrent `execute` calls (the pool serialises them)."""

    def __init__(
        self,
        *,
        venv: Path,
        work: Path,
        limits: SandboxLimits,
        context: zmq.asyncio.Context,
        bwrap: str = "bwrap",
        uid: int | None = None,
    ) -> None:
        self.venv = venv.absolute()
        self.work = work
        self.limits = limits
        self._context = context
        self._bwrap = bwrap
        self._uid = uid
        self._proc: asyncio.subprocess.Process | None = None
        self._client: AsyncKernelClient | None = None
        self._run_dir: Path | None = None
        self._stderr: Any = None
        self._settling: asyncio.Task[None] | None = None
        self.started_at = 0.0

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self, *, preload: bool = True) -> None:
        """Start the sandbox and the kernel. `preload`: import numpy, pandas and pyplot too, so
        that the first step (which a model is still writing meanwhile) does not wait for them."""
        await asyncio.to_thread(self._prepare)
        assert self._run_dir is not None
        key = secrets.token_hex(32)
        ports = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}
        common = {"transport": "ipc", "key": key, "signature_scheme": "hmac-sha256", **ports}
        inside = {**common, "ip": f"{SANDBOX_RUN}/k", "kernel_name": "python3"}
        conn = self._run_dir / "conn.json"
        conn.write_text(json.dumps(inside))
        _chown(conn, self._uid)
        mb = 1 << 20
        rlimits = {
            "RLIMIT_AS": self.limits.memory_mb * mb,
            "RLIMIT_NPROC": self.limits.max_processes,
            "RLIMIT_NOFILE": self.limits.max_open_files,
            "RLIMIT_FSIZE": self.limits.disk_mb * mb,
            "RLIMIT_CORE": 0,
        }
        launcher_cfg = {
            "rlimits": rlimits,
            "mpl_cache": str(self.venv / "share" / "mpl-cache"),
            "args": [
                "-f",
                f"{SANDBOX_RUN}/conn.json",
                "--HistoryManager.enabled=False",
                "--InteractiveShell.colors=nocolor",
                "--IPKernelApp.log_level=CRITICAL",
            ],
        }
        flags = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
        fds = (
            os.open(self.venv, flags),
            os.open(self.work, flags),
            os.open(self._run_dir, flags),
        )
        args = [
            self._bwrap,
            *sandbox_args(self.venv, fds, self.limits),
            str(self.venv / "bin" / "python"),
            "-I",
            "-c",
            LAUNCHER,
            json.dumps(launcher_cfg),
        ]
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - kept open for the kernel's life
        kwargs: dict[str, Any] = {}
        if self._uid is not None:
            kwargs.update(user=self._uid, group=self._uid, extra_groups=[])
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=self._stderr,
                env={},
                cwd="/",
                start_new_session=True,
                pass_fds=fds,
                **kwargs,
            )
        finally:
            for fd in fds:
                os.close(fd)
        self.started_at = time.monotonic()
        client = AsyncKernelClient(context=self._context)
        client.load_connection_info({**common, "ip": str(self._run_dir / "k")})
        self._client = client
        try:
            await self._wait_ready()
            await asyncio.to_thread(self._lock_run_dir)
            reply = await self._run_quiet(STARTUP.replace("LIMIT", str(self.limits.output_chars)))
            if reply.get("status") != "ok":
                raise SandboxError(f"the kernel's start-up code failed: {reply}")
            if preload:
                await self._run_quiet(PRELOAD)
        except BaseException:
            await self.stop()
            raise

    def _prepare(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        os.chmod(self.work, 0o700)
        _chown(self.work, self._uid)
        # Unix socket paths are limited to ~107 bytes: keep this folder short.
        self._run_dir = Path(tempfile.mkdtemp(prefix="sbx-"))
        _chown(self._run_dir, self._uid)

    def _lock_run_dir(self) -> None:
        """The sockets exist now: the kernel needs to create nothing more in their folder."""
        assert self._run_dir is not None
        if self._uid is not None:
            os.chown(self._run_dir, os.geteuid(), os.getegid())
        os.chmod(self._run_dir, 0o555)  # noqa: S103

    async def _wait_ready(self) -> None:
        assert self._client is not None
        assert self._proc is not None
        # Not jupyter_client's wait_for_ready: it gives up as soon as the heartbeat is late,
        # which happens when several kernels start at once on a busy machine.
        self._client.start_channels(hb=False)
        ready = asyncio.ensure_future(self._kernel_info())
        died = asyncio.ensure_future(self._proc.wait())
        try:
            done, _ = await asyncio.wait(
                {ready, died},
                timeout=self.limits.start_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for task in (ready, died):
                task.cancel()
        if ready in done and not ready.cancelled() and ready.exception() is None:
            return
        why = self.failure_reason()
        if not why and ready.done() and not ready.cancelled() and ready.exception() is not None:
            why = f"{type(ready.exception()).__name__}: {ready.exception()}"
        raise SandboxError(why or f"the kernel did not start in {self.limits.start_seconds:g}s")

    async def _kernel_info(self) -> None:
        """Ask for kernel_info until the kernel answers on the shell channel *and* something
        arrives on IOPub (its welcome or the request's status): a SUB socket drops whatever is
        published before its subscription is in place, so a step sent earlier could lose its
        output. A request sent before the kernel bound its sockets may be lost: it is repeated."""
        assert self._client is not None
        wait = 0.2
        answered = False
        while True:
            if not answered:
                msg_id = self._client.kernel_info()
                deadline = time.monotonic() + wait
                while (left := deadline - time.monotonic()) > 0:
                    try:
                        reply = await self._client.get_shell_msg(timeout=left)
                    except Exception:  # queue.Empty on timeout
                        break
                    if reply["parent_header"].get("msg_id") == msg_id:
                        answered = True
                        break
            if answered:
                try:
                    await self._client.get_iopub_msg(timeout=wait)
                except Exception:  # nothing yet: ask again, the answer is published on IOPub
                    answered = False
                else:
                    return
            wait = min(wait * 2, 2.0)

    def failure_reason(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0)
            text = self._stderr.read(4000).decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        lines = [line.strip() for line in strip_ansi(text).splitlines() if line.strip()]
        return lines[-1] if lines else ""

    async def _run_quiet(self, code: str) -> dict[str, Any]:
        assert self._client is not None
        msg_id = self._client.execute(code, silent=True, store_history=False)
        deadline = time.monotonic() + self.limits.start_seconds
        while True:
            try:
                reply = await self._client.get_shell_msg(
                    timeout=max(deadline - time.monotonic(), 0.1)
                )
            except Empty:
                raise SandboxError(
                    f"the kernel did not answer in {self.limits.start_seconds:g}s"
                ) from None
            if reply["parent_header"].get("msg_id") == msg_id:
                return dict(reply["content"])

    async def execute(self, code: str) -> StepOutput:
        """Run one step. The caller checks `alive` afterwards (a lost kernel must be restarted)."""
        await self.settle()
        if self._client is None or self._proc is None or not self.alive:
            return StepOutput(restarted=True, notes=["The Python kernel is not running."])
        out = StepOutput()
        text = TrimmedText(self.limits.output_chars)
        before = await asyncio.to_thread(_snapshot, self.work)
        msg_id = self._client.execute(code, store_history=True, allow_stdin=False)
        reader = asyncio.ensure_future(self._read_outputs(msg_id, out, text))
        died = asyncio.ensure_future(self._proc.wait())
        disk = asyncio.ensure_future(self._watch_disk())
        try:
            try:
                done, _ = await asyncio.wait(
                    {reader, died, disk},
                    timeout=self.limits.step_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            except asyncio.CancelledError:
                # The turn was cancelled mid-step: stop the code too, or the next step would
                # wait behind it. Interrupt; kill it if it does not stop within the grace.
                if not reader.done():
                    self._settling = asyncio.ensure_future(self._settle(msg_id))
                raise
            if reader not in done:
                if died in done:
                    out.restarted = True
                    out.notes.append(
                        "The Python kernel died during this step (it may have run out of memory "
                        "or been killed). A fresh kernel will run the next step: all variables "
                        "are lost; the files in /mnt/data are kept."
                    )
                else:
                    if disk not in done:
                        out.timed_out = True
                        out.notes.append(
                            f"The step ran longer than {self.limits.step_seconds:g} s and was "
                            "interrupted."
                        )
                    await self._interrupt()
                    try:
                        await asyncio.wait_for(
                            asyncio.shield(reader), timeout=self.limits.interrupt_grace
                        )
                    except TimeoutError:
                        out.restarted = True
                        out.notes.append(
                            "The kernel did not respond to the interrupt and was restarted: all "
                            "variables are lost; the files in /mnt/data are kept."
                        )
                        await self.stop(keep_work=True)
        finally:
            for task in (reader, died, disk):
                task.cancel()
            with contextlib.suppress(BaseException):
                await reader
        over = disk.done() and not disk.cancelled() and disk.exception() is None and disk.result()
        if over or await asyncio.to_thread(self._used) > self.limits.disk_mb << 20:
            await asyncio.to_thread(self._remove_new_files, before)
            out.notes.append(
                f"The step was stopped: the files in /mnt/data went over the "
                f"{self.limits.disk_mb} MB limit; the files written in this step were removed."
            )
        after = await asyncio.to_thread(_snapshot, self.work)
        out.files = [
            _step_file(self.work, name, size)
            for name, (size, mtime) in sorted(after.items())
            if before.get(name) != (size, mtime)
        ]
        out.text = text.text()
        out.truncated = text.truncated
        return out

    async def settle(self) -> None:
        """Wait until a step abandoned by a cancelled caller has stopped (or the kernel died)."""
        if self._settling is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._settling)
            self._settling = None

    async def _settle(self, msg_id: str) -> None:
        await self._interrupt()
        out = StepOutput()
        try:
            await asyncio.wait_for(
                self._read_outputs(msg_id, out, TrimmedText(100)), self.limits.interrupt_grace
            )
        except (TimeoutError, Exception):
            await self.stop(keep_work=True)

    def _remove_new_files(self, before: dict[str, tuple[int, int]]) -> None:
        for name, stat in _snapshot(self.work).items():
            if before.get(name) != stat:
                with contextlib.suppress(OSError):
                    remove_file(self.work, name)

    def _used(self) -> int:
        used = disk_usage(self.work)
        if self._run_dir is not None:
            used += disk_usage(self._run_dir)
        return used

    async def _watch_disk(self) -> bool:
        cap = self.limits.disk_mb << 20
        while True:
            await asyncio.sleep(0.2)
            if await asyncio.to_thread(self._used) > cap:
                return True

    async def _interrupt(self) -> None:
        assert self._client is not None
        msg = self._client.session.msg("interrupt_request", {})
        with contextlib.suppress(Exception):
            self._client.session.send(self._client.control_channel.socket, msg)

    async def _read_outputs(self, msg_id: str, out: StepOutput, text: TrimmedText) -> None:
        assert self._client is not None
        while True:
            msg = await self._client.get_iopub_msg()
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            content = msg["content"]
            if kind == "status" and content.get("execution_state") == "idle":
                return
            if kind == "stream":
                text.add(content.get("text", ""))
            elif kind in ("execute_result", "display_data"):
                data = content.get("data", {})
                png = data.get("image/png")
                if png and len(out.images) < self.limits.max_images:
                    with contextlib.suppress(ValueError):
                        out.images.append(base64.b64decode(png))
                elif "text/plain" in data and not png:
                    text.add(str(data["text/plain"]) + "\n")
            elif kind == "error":
                out.error = f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"
                text.add(strip_ansi("\n".join(content.get("traceback", []))) + "\n")

    async def stop(self, *, keep_work: bool = True) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.stop_channels()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 10)
        if self._stderr is not None:
            with contextlib.suppress(Exception):
                self._stderr.close()
            self._stderr = None
        run_dir, self._run_dir = self._run_dir, None
        if run_dir is not None:
            with contextlib.suppress(OSError):
                os.chmod(run_dir, 0o700)
            await asyncio.to_thread(shutil.rmtree, run_dir, True)
        if not keep_work:
            await asyncio.to_thread(shutil.rmtree, self.work, True)


def _step_file(work: Path, name: str, size: int) -> StepFile:
    return StepFile(name=name, path=work / name, size=size)


def make_context() -> zmq.asyncio.Context:
    context = zmq.asyncio.Context()
    context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    context.setsockopt(zmq.LINGER, 0)
    return context
