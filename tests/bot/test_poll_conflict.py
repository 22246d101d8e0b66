"""Two `python -m bot` processes polling one token: Telegram (the fake, like the real one)
ends the older pending getUpdates with 409 Conflict when another starts. The second process
says so in one clear line and exits with code 1; the first goes on answering."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.bot.harness import BOT_USERNAME
from tests.fakes.responses_api import running_responses_fake
from tests.fakes.telegram_api import FloodLimits, TelegramFake

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk-test-0123456789abcdef"


async def start_bot(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    await asyncio.to_thread(cwd.mkdir, parents=True, exist_ok=True)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def stop(process: asyncio.subprocess.Process) -> tuple[int, str]:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.wait_for(process.wait(), timeout=15)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.stderr is not None
    return code, (await process.stderr.read()).decode()


async def test_a_second_poller_says_so_and_exits(tmp_path: Path) -> None:
    async with (
        TelegramFake(bot_username=BOT_USERNAME) as tg,
        running_responses_fake() as llm,
    ):
        tg.flood = FloodLimits.off()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "TELEGRAM_BOT_TOKEN": tg.token,
            "TELEGRAM_API_BASE": tg.base_url,
            "LLM_PROVIDER": "openai",
            "OPENAI_API_KEY": API_KEY,
            "LLM_BASE_URL": llm.base_url,
            "SHUTDOWN_GRACE_SECONDS": "2",
            "LOG_LEVEL": "INFO",
        }
        ann = tg.user("Ann")
        chat = tg.private_chat(ann)
        first = await start_bot(env | {"DATA_DIR": str(tmp_path / "one")}, tmp_path / "one")
        second = None
        try:
            await tg.wait_for(lambda: tg.polls or first.returncode is not None, timeout=30)
            tg.send_text(chat, ann, "/start")
            await tg.wait_for_message(chat, contains="I analyse data for you", timeout=15)

            second = await start_bot(env | {"DATA_DIR": str(tmp_path / "two")}, tmp_path / "two")
            code_two = await asyncio.wait_for(second.wait(), timeout=30)

            answered = len(tg.messages(chat))
            tg.send_text(chat, ann, "/help")  # the first process still serves
            await tg.wait_for(lambda: len(tg.messages(chat)) > answered, timeout=15)
        finally:
            code_one, log_one = await stop(first)
            if second is not None:
                _, log_two = await stop(second)

    assert code_two == 1, log_two
    refusals = [line for line in log_two.splitlines() if "already running this bot" in line]
    assert len(refusals) == 1, log_two
    assert "terminated by other getUpdates request" in refusals[0]
    assert "Failed to fetch updates" not in log_two
    assert code_one == 0, log_one
    assert "already running this bot" not in log_one
    assert tg.token not in log_two
