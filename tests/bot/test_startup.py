"""`python -m bot` as a real process at the edges of its life: Telegram or Redis not there yet
at start-up (it waits, one log line per attempt, then serves), a SIGTERM in the first moments
or during that wait (a clean exit 0), a token Telegram refuses (one clear line, exit 1)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.bot.harness import BOT_USERNAME
from tests.fakes.responses_api import running_responses_fake
from tests.fakes.telegram_api import DEFAULT_TOKEN, TelegramFake
from tests.fixtures.redis_server import start_redis_server, stop_redis_server

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk-test-0123456789abcdef"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class BotProcess:
    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_line(self, text: str, count: int = 1, timeout: float = 30) -> None:
        async def seen() -> None:
            while sum(text in line for line in self.lines) < count:
                if self.process.returncode is not None:
                    raise AssertionError(f"exited {self.process.returncode}:\n{self.stderr}")
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(seen(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {count}× {text!r} in:\n{self.stderr}") from None

    async def terminate(self, timeout: float = 15) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            message = f"still running {timeout}s after SIGTERM:\n{self.stderr}"
            raise AssertionError(message) from None


@asynccontextmanager
async def bot_process(tmp_path: Path, **env: str) -> AsyncIterator[BotProcess]:
    values = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "TELEGRAM_BOT_TOKEN": DEFAULT_TOKEN,
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": API_KEY,
        "LLM_MAX_RETRIES": "0",
        "DATA_DIR": str(tmp_path / "data"),
        "WEBHOOK_HOST": "127.0.0.1",
        "SHUTDOWN_GRACE_SECONDS": "2",
        "LOG_LEVEL": "INFO",
    } | env
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,  # no .env of the working tree
        env=values,
        stderr=asyncio.subprocess.PIPE,
    )
    bot = BotProcess(process)

    async def read() -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            bot.lines.append(raw.decode(errors="replace").rstrip())
            bot.changed.set()
        bot.changed.set()

    reader = asyncio.create_task(read())
    try:
        yield bot
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await reader


def assert_clean(bot: BotProcess) -> None:
    assert "Traceback" not in bot.stderr, bot.stderr
    assert "Unclosed" not in bot.stderr, bot.stderr  # aiohttp's unclosed session/connector
    assert DEFAULT_TOKEN.split(":")[1] not in bot.stderr


async def test_waits_for_telegram_then_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    async with bot_process(tmp_path, TELEGRAM_API_BASE=f"http://127.0.0.1:{port}") as bot:
        await bot.wait_for_line("Telegram unavailable (attempt 2", timeout=30)
        [first] = [line for line in bot.lines if "attempt 1" in line]
        assert "retrying in 1s" in first
        async with TelegramFake(bot_username=BOT_USERNAME, port=port) as tg:
            await bot.wait_for_line("Run polling", timeout=30)
            ann = tg.user("Ann")
            chat = tg.private_chat(ann)
            tg.send_text(chat, ann, "/start")
            await tg.wait_for_message(chat, contains="I analyse data for you")
            assert await bot.terminate() == 0
    attempts = [line for line in bot.lines if "Telegram unavailable" in line]
    assert len(attempts) >= 2
    assert all("ClientConnectorError" in line or "connect" in line for line in attempts)
    assert "bot stopped" in bot.stderr
    assert_clean(bot)


async def test_sigterm_while_waiting_for_telegram_exits_at_once(tmp_path: Path) -> None:
    port = free_port()
    async with bot_process(tmp_path, TELEGRAM_API_BASE=f"http://127.0.0.1:{port}") as bot:
        await bot.wait_for_line("Telegram unavailable (attempt 1")
        started = asyncio.get_running_loop().time()
        assert await bot.terminate() == 0
        assert asyncio.get_running_loop().time() - started < 5  # not after the backoff
    assert_clean(bot)


async def test_sigterm_in_the_first_moments_is_not_lost(tmp_path: Path) -> None:
    async with (
        TelegramFake(bot_username=BOT_USERNAME) as tg,
        running_responses_fake() as llm,
        bot_process(tmp_path, TELEGRAM_API_BASE=tg.base_url, LLM_BASE_URL=llm.base_url) as bot,
    ):
        await asyncio.sleep(0.3)  # Python is up; the settings and aiogram are still loading
        assert bot.process.returncode is None
        assert await bot.terminate() == 0
        assert not tg.polls  # it stopped instead of starting
    assert_clean(bot)


async def test_a_token_telegram_refuses_is_one_clear_line(tmp_path: Path) -> None:
    async with (
        TelegramFake(bot_username=BOT_USERNAME) as tg,
        bot_process(
            tmp_path, TELEGRAM_API_BASE=tg.base_url, TELEGRAM_BOT_TOKEN="42:wrong-secret"
        ) as bot,
    ):
        code = await asyncio.wait_for(bot.process.wait(), 30)
        await bot.wait_for_line("TELEGRAM_BOT_TOKEN")
    assert code == 1
    assert "@BotFather" in bot.stderr
    assert "Traceback" not in bot.stderr
    assert "wrong-secret" not in bot.stderr


async def test_waits_for_redis_then_serves(tmp_path: Path) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed")
    redis_port = free_port()
    async with (
        TelegramFake(bot_username=BOT_USERNAME) as tg,
        bot_process(
            tmp_path,
            TELEGRAM_API_BASE=tg.base_url,
            REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        ) as bot,
    ):
        await bot.wait_for_line("storage unavailable (attempt 2", timeout=30)
        assert "REDIS_URL" in bot.stderr
        assert not tg.calls  # Telegram is not touched before the storage is there
        redis = await asyncio.to_thread(start_redis_server, binary, tmp_path, redis_port)
        try:
            await bot.wait_for_line("Run polling", timeout=30)
            assert await bot.terminate() == 0
        finally:
            await asyncio.to_thread(stop_redis_server, redis.process)
    assert_clean(bot)
