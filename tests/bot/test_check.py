"""`python -m bot check` end to end against the Telegram fake and the Responses fake: every row
OK on a good deployment (a real Code Interpreter turn on a three-row CSV brings a chart and the
total; the uploaded file is deleted again); a wrong token, a refused key, a provider that does
not answer or Redis down each fail their row with what to fix, and the exit code says so."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import sys
from pathlib import Path
from typing import Any

from bot.check import run_checks
from bot.config import Settings
from bot.runtime import Runtime
from tests.bot.harness import BOT_USERNAME, png, settings_for
from tests.fakes.responses_api import ResponsesFake, Scenario, running_responses_fake, sandbox_link
from tests.fakes.telegram_api import TelegramFake

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk-test-0123456789abcdef"


def good_turn() -> Scenario:
    return (
        Scenario()
        .code(
            "df = pd.read_csv('check.csv'); print(df.revenue.sum())",
            logs="2550\n",
            saves={"chart.png": png(320, 200)},
        )
        .text(f"The total revenue is 2,550. {sandbox_link('chart.png')}")
        .usage(300, 40)
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def check(settings: Settings) -> tuple[int, str, dict[str, str]]:
    out = io.StringIO()
    code = await run_checks(settings, Runtime(), out=out)
    text = out.getvalue()
    rows = {}
    for line in text.splitlines()[1:]:
        for name in (
            "Telegram token",
            "Telegram webhook",
            "Storage",
            "LLM provider",
            "Code Interpreter turn",
            "File upload",
            "File deletion",
            "Local sandbox",
        ):
            if line.startswith(name):
                rows[name] = line[len(name) :].strip()
    return code, text, rows


def our_settings(tg: TelegramFake, llm: ResponsesFake, tmp_path: Path, **kw: Any) -> Settings:
    values: dict[str, Any] = {"openai_api_key": API_KEY, "llm_max_retries": 0} | kw
    return settings_for(tg, llm, tmp_path / "data", **values)


async def test_a_good_deployment_passes_every_check(tmp_path: Path) -> None:
    async with (
        TelegramFake(bot_username=BOT_USERNAME) as tg,
        running_responses_fake() as llm,
    ):
        llm.require_api_key = API_KEY
        llm.enqueue(good_turn())
        code, text, rows = await check(our_settings(tg, llm, tmp_path))
        assert code == 0, text
        for name in ("Telegram token", "Telegram webhook", "Storage", "LLM provider"):
            assert rows[name].startswith("OK"), text
        assert rows["Code Interpreter turn"].startswith("OK"), text
        assert "1 chart(s), total found" in rows["Code Interpreter turn"]
        assert rows["File upload"].startswith("OK")
        assert rows["File deletion"].startswith("OK")
        assert rows["Local sandbox"] == "skipped  CODE_EXECUTION=cloud"
        assert f"@{BOT_USERNAME}" in rows["Telegram token"]
        assert "long polling" in rows["Telegram webhook"]
        assert [u.filename for u in llm.uploads] == ["check.csv"]
        assert llm.uploads[0].id not in llm.files  # deleted again
        assert "All checks passed" in text
        assert API_KEY not in text
        assert tg.token not in text


async def test_a_wrong_token_says_where_to_get_the_right_one(tmp_path: Path) -> None:
    async with (
        TelegramFake(bot_username=BOT_USERNAME) as tg,
        running_responses_fake() as llm,
    ):
        llm.enqueue(good_turn())
        settings = our_settings(tg, llm, tmp_path, telegram_bot_token="42:not-the-right-secret")
        code, text, rows = await check(settings)
        assert code == 1
        assert rows["Telegram token"].startswith("FAIL"), text
        assert "@BotFather" in text
        assert "TELEGRAM_BOT_TOKEN" in text
        assert rows["Telegram webhook"].startswith("skipped")
        assert rows["LLM provider"].startswith("OK")  # the other checks still ran
        assert "not-the-right-secret" not in text
        assert "check(s) failed" in text


async def test_a_refused_key_names_the_variable(tmp_path: Path) -> None:
    async with (
        TelegramFake(bot_username=BOT_USERNAME) as tg,
        running_responses_fake() as llm,
    ):
        llm.require_api_key = "sk-the-real-one"
        code, text, rows = await check(our_settings(tg, llm, tmp_path))
        assert code == 1
        assert rows["LLM provider"].startswith("FAIL"), text
        assert "the key is refused: check OPENAI_API_KEY" in text
        assert rows["File upload"].startswith("FAIL")
        assert rows["Code Interpreter turn"].startswith("skipped")
        assert rows["Telegram token"].startswith("OK")
        assert API_KEY not in text


async def test_a_provider_that_does_not_answer_and_redis_down(tmp_path: Path) -> None:
    async with (
        TelegramFake(bot_username=BOT_USERNAME) as tg,
        running_responses_fake() as llm,
    ):
        settings = our_settings(
            tg,
            llm,
            tmp_path,
            llm_base_url=f"http://127.0.0.1:{free_port()}/v1",
            redis_url=f"redis://:hunter2secret@127.0.0.1:{free_port()}/0",
        )
        code, text, rows = await check(settings)
        assert code == 1
        assert rows["LLM provider"].startswith("FAIL"), text
        assert "check the network and LLM_BASE_URL" in text
        assert rows["Storage"].startswith("FAIL")
        assert "REDIS_URL" in text
        assert "hunter2secret" not in text


async def test_python_m_bot_check_prints_the_table_and_exits_by_the_result(tmp_path: Path) -> None:
    async with (
        TelegramFake(bot_username=BOT_USERNAME) as tg,
        running_responses_fake() as llm,
    ):
        llm.require_api_key = API_KEY
        llm.enqueue(good_turn())
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "TELEGRAM_BOT_TOKEN": tg.token,
            "TELEGRAM_API_BASE": tg.base_url,
            "LLM_PROVIDER": "openai",
            "OPENAI_API_KEY": API_KEY,
            "LLM_BASE_URL": llm.base_url,
            "DATA_DIR": str(tmp_path / "data"),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "check",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
        out = stdout.decode()
        assert process.returncode == 0, out + stderr.decode()
        assert "Code Interpreter turn" in out
        assert "All checks passed" in out
        assert tg.token not in out + stderr.decode()
        assert API_KEY not in out + stderr.decode()
