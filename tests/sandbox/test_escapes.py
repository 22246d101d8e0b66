"""Escape attempts written as model code. Every one must fail, and the chat must keep working."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from bot.sandbox import KernelPool
from tests.sandbox.conftest import LIMITS

REPO = Path(__file__).resolve().parents[2]
SECRET = "tg-secret-7d1f0c9e"


@pytest.fixture(autouse=True)
def _bot_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a leaked environment would show: the bot's token and keys.
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


async def test_no_tcp_to_the_hosts_loopback(pool: KernelPool) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        session = await pool.session("chat-1", [])
        out = await session.execute(
            "import socket\n"
            f"for host in ('127.0.0.1', 'localhost', '10.0.2.2', '172.17.0.1'):\n"
            "    try:\n"
            f"        socket.create_connection((host, {port}), timeout=2)\n"
            "        print(host, 'CONNECTED')\n"
            "    except OSError as e:\n"
            "        print(host, type(e).__name__)\n"
        )
        assert "CONNECTED" not in out.text
        assert "127.0.0.1 ConnectionRefusedError" in out.text
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


async def test_no_dns(pool: KernelPool) -> None:
    session = await pool.session("chat-1", [])
    out = await session.execute(
        "import socket\n"
        "try:\n"
        "    print(socket.getaddrinfo('example.com', 443))\n"
        "except OSError as e:\n"
        "    print('failed', type(e).__name__)\n"
        "import os\nprint(os.path.exists('/etc/resolv.conf'))"
    )
    assert out.text.split() == ["failed", "gaierror", "False"]


async def test_no_secrets_in_any_visible_environment(pool: KernelPool) -> None:
    session = await pool.session("chat-1", [])
    out = await session.execute(
        "import os\n"
        "seen = []\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit():\n"
        "        try:\n"
        "            seen.append(open(f'/proc/{pid}/environ', 'rb').read().decode())\n"
        "        except OSError as e:\n"
        "            seen.append(type(e).__name__)\n"
        "print(len([p for p in os.listdir('/proc') if p.isdigit()]), 'processes')\n"
        "print(seen)\n"
        "print(dict(os.environ))\n"
        f"print(os.path.exists('/proc/{os.getpid()}/cmdline'), os.getuid(), os.geteuid())\n"
        "print(open('/proc/self/status').read())"
    )
    assert SECRET not in out.text
    assert "65534 65534" in out.text
    assert "CapEff:\t0000000000000000" in out.text
    # Only the sandbox's own init and the kernel are there; the bot's pid is unknown inside.
    assert out.text.startswith("2 processes")


async def test_the_projects_files_and_other_chats_are_out_of_sight(
    pool: KernelPool, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"TELEGRAM_BOT_TOKEN={SECRET}\n")
    other = tmp_path / "other.csv"
    other.write_text(f"private\n{SECRET}\n")
    first = await pool.session("chat-1", [("other.csv", other)])
    await first.execute(f"open('mine.txt', 'w').write('{SECRET}')")
    second = await pool.session("chat-2", [])
    targets = [
        env_file,
        REPO / ".env",
        REPO / "pyproject.toml",
        REPO / "bot" / "config.py",
        other,
        first.work_dir / "mine.txt",
        first.work_dir / "other.csv",
        Path("/etc/passwd"),
        Path("/root/.bashrc"),
    ]
    out = await second.execute(
        "import os\n"
        f"for path in {[str(t) for t in targets]!r}:\n"
        "    try:\n"
        "        print(path, open(path).read())\n"
        "    except OSError as e:\n"
        "        print(path, type(e).__name__)\n"
        "print(os.listdir('/mnt/data'))\n"
        "found = []\n"
        "for top in os.listdir('/'):\n"
        "    if top not in ('proc', 'usr', 'sys'):\n"
        "        for root, _, files in os.walk('/' + top):\n"
        "            found += [f for f in files if f in ('mine.txt', 'other.csv')]\n"
        "print(found)"
    )
    assert SECRET not in out.text
    assert out.text.count("FileNotFoundError") == len(targets)
    assert "\n[]\n[]" in out.text


async def test_nothing_outside_the_work_folder_is_writable(pool: KernelPool) -> None:
    session = await pool.session("chat-1", [])
    venv = str(pool.venv)
    out = await session.execute(
        "import os\n"
        f"for path in ['/x', '/etc/x', '/usr/x', '/usr/lib/python3/x', '{venv}/x',\n"
        f"             '{venv}/lib/python3.11/site-packages/pandas/__init__.py', '/run/kernel/x',\n"
        "             '/proc/x', '/dev/x']:\n"
        "    try:\n"
        "        open(path, 'a').write('x')\n"
        "        print(path, 'WRITTEN')\n"
        "    except OSError as e:\n"
        "        print(path, type(e).__name__, e.errno)\n"
        "try:\n"
        "    open('/tmp/big', 'wb').write(b'0' * (64 << 20))\n"
        "    print('tmp WRITTEN')\n"
        "except OSError as e:\n"
        "    print('tmp', e.errno)\n"
    )
    assert "WRITTEN" not in out.text, out.text
    assert "tmp 28" in out.text  # ENOSPC: the private /tmp is capped
    assert not (pool.venv / "x").exists()


async def test_a_fork_bomb_is_contained(pool: KernelPool) -> None:
    session = await pool.session("chat-1", [])
    await session.execute("kept = 7")
    out = await session.execute(
        "import os, time\n"
        "forked = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "        forked += 1\n"
        "except OSError as e:\n"
        "    print('stopped after', forked, type(e).__name__)\n"
    )
    words = out.text.split()
    assert words[:2] == ["stopped", "after"]
    assert int(words[2]) < LIMITS.max_processes
    assert words[3] == "BlockingIOError"
    assert (await session.execute("print(kept)")).text.strip() == "7"


async def test_a_runaway_fork_loop_ends_and_the_chat_recovers(pool: KernelPool) -> None:
    session = await pool.session("chat-1", [])
    out = await session.execute("import os\nwhile True:\n    os.fork()")
    assert out.error or out.timed_out or out.restarted
    after = await session.execute("print(6 * 7)")
    assert after.text.strip().endswith("42")
    # The host could still start processes throughout; nothing of the bomb is left over.
    await pool.aclose()
    for _ in range(50):  # SIGKILL reaches every process of the sandbox's pid namespace
        leftovers = [p for p in os.listdir("/proc") if p.isdigit() and _is_sandboxed(int(p))]
        if not leftovers:
            break
        await asyncio.sleep(0.1)
    assert leftovers == []


def _is_sandboxed(pid: int) -> bool:
    try:
        return b"ipykernel_launcher" in Path(f"/proc/{pid}/cmdline").read_bytes() and str(
            REPO
        ) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


async def test_memory_past_the_limit_fails_and_the_kernel_survives(pool: KernelPool) -> None:
    session = await pool.session("chat-1", [])
    await session.execute("kept = 'still here'")
    out = await session.execute("block = bytearray(3 * 1024 ** 3)")
    assert out.error == "MemoryError: "
    assert not out.restarted
    assert (await session.execute("print(kept)")).text.strip() == "still here"


async def test_the_work_folder_cannot_grow_past_its_cap(pool: KernelPool) -> None:
    session = await pool.session("chat-1", [])
    cap = LIMITS.disk_mb << 20
    big = await session.execute(f"open('one.bin', 'wb').write(b'0' * {cap + (8 << 20)})")
    # Stopped by RLIMIT_FSIZE or by the watch over the folder, whichever comes first.
    assert "File too large" in (big.error or "") or "MB limit" in big.for_model()
    one = session.work_dir / "one.bin"
    assert not one.exists() or one.stat().st_size <= cap
    many = await session.execute(
        "chunk = b'1' * (4 << 20)\n"
        "for i in range(1000):\n"
        "    with open(f'part{i}.bin', 'wb') as f:\n"
        "        f.write(chunk)\n"
    )
    assert f"over the {LIMITS.disk_mb} MB limit" in many.for_model()
    used = sum(p.stat().st_size for p in session.work_dir.rglob("*") if p.is_file())
    assert used <= cap
    assert (await session.execute("print('alive')")).text.strip() == "alive"


async def test_printing_100_mb_comes_back_trimmed(pool: KernelPool) -> None:
    session = await pool.session("chat-1", [])
    out = await session.execute("print('start' + 'x' * 100_000_000 + 'end')")
    assert out.text.startswith("startxxx")
    assert out.text.rstrip().endswith("xxxend")
    assert "characters of output cut" in out.text
    assert len(out.text) <= LIMITS.output_chars + 200
    lines = await session.execute("for i in range(300_000):\n    print(i)")
    assert lines.text.startswith("0\n1\n2\n")
    assert lines.text.rstrip().endswith("299999")
    assert len(lines.text) <= LIMITS.output_chars + 200


async def test_a_planted_link_is_not_written_through_when_files_are_copied_again(
    pool: KernelPool, tmp_path: Path
) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    victim = tmp_path / "victim.txt"
    victim.write_text("host file")
    victim.chmod(0o600)
    session = await pool.session("chat-1", [("data.csv", data)])
    out = await session.execute(
        "import os\n"
        "os.remove('/mnt/data/data.csv')\n"
        f"os.symlink({str(victim)!r}, '/mnt/data/.data.csv.copy')\n"
        "print('planted')"
    )
    assert "planted" in out.text
    # The next step copies data.csv again: the link must be replaced, not written through.
    session = await pool.session("chat-1", [("data.csv", data)])
    out = await session.execute("print(open('/mnt/data/data.csv').read())")
    assert "a,b" in out.text
    assert victim.read_text() == "host file"
    assert victim.stat().st_mode & 0o777 == 0o600


async def test_a_chat_file_missing_locally_is_skipped(pool: KernelPool, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    files = [("data.csv", data), ("gone.csv", tmp_path / "gone.csv")]
    session = await pool.session("chat-1", files)
    out = await session.execute("import os; print(sorted(os.listdir('/mnt/data')))")
    assert "['data.csv']" in out.text
