"""Running modes: a webhook (secret checked, health on the same port), long polling with a
health endpoint, and `python -m bot` as a real process (start, answer, SIGTERM, logs)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from bot.app import build_services
from bot.telegram.factory import create_bot
from bot.telegram.runners import make_runner
from tests.bot.harness import (
    BOT_USERNAME,
    SALES_CSV,
    App,
    bot_world,
    lose_download,
    settings_for,
)
from tests.fakes.responses_api import ResponsesFake, Scenario, running_responses_fake
from tests.fakes.telegram_api import FloodLimits, TelegramFake
from tests.fixtures.redis_server import start_redis_server, stop_redis_server

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hook-Secret_42"
API_KEY = "sk-test-0123456789abcdef"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def get(url: str) -> tuple[int, Any]:
    async with ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()


# ---- webhook --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def webhook_bot(
    tmp_path: Path,
) -> AsyncIterator[tuple[TelegramFake, ResponsesFake, App, int]]:
    port = free_port()
    async with (
        TelegramFake(bot_username=BOT_USERNAME) as tg,
        running_responses_fake() as llm,
    ):
        settings = settings_for(
            tg,
            llm,
            tmp_path,
            webhook_url=f"http://127.0.0.1:{port}/telegram/hook",
            webhook_secret=SECRET,
            webhook_host="127.0.0.1",
            webhook_port=port,
        )
        services = await build_services(settings)
        runner = make_runner(settings, services, create_bot(settings))
        app = App(settings, services, runner, asyncio.create_task(runner.run()))
        try:
            await tg.wait_for(
                lambda: any(c.ok for c in tg.calls_of("setWebhook")) or app.task.done(),
                timeout=20,
            )
            if app.task.done():
                app.task.result()
            yield tg, llm, app, port
        finally:
            if not app.task.done():
                await app.stop()


async def test_webhook_mode_answers_checks_the_secret_and_serves_health(tmp_path: Path) -> None:
    async with webhook_bot(tmp_path) as (tg, _, _, port):
        [hook] = tg.calls_of("setWebhook")
        assert hook.params["url"] == f"http://127.0.0.1:{port}/telegram/hook"
        assert hook.params["secret_token"] == SECRET
        ann = tg.user("Ann")
        chat = tg.private_chat(ann)
        tg.send_text(chat, ann, "/start")
        await tg.wait_for_message(chat, contains="I analyse data for you")
        assert tg.polls == []
        assert all(d.status == 200 for d in tg.webhook_deliveries)

        update = {
            "update_id": 1,
            "message": {
                "message_id": 99,
                "date": 0,
                "chat": {"id": chat.id, "type": "private"},
                "from": {"id": ann.id, "is_bot": False, "first_name": "Ann"},
                "text": "/help",
            },
        }
        url = f"http://127.0.0.1:{port}/telegram/hook"
        async with ClientSession() as http:
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                async with http.post(url, json=update, headers=headers) as response:
                    assert response.status == 401
        status, body = await get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200
        assert body["status"] == "ok"
        assert not any("How it works" in m.text for m in tg.messages(chat))


async def test_webhook_stop_finishes_the_running_analysis_and_takes_no_more_updates(
    tmp_path: Path,
) -> None:
    async with webhook_bot(tmp_path) as (tg, llm, app, port):
        ann = tg.user("Ann")
        chat = tg.private_chat(ann)
        tg.send_document(chat, ann, "sales.csv", SALES_CSV, mime_type="text/csv")
        await tg.wait_for_message(chat, contains="sales.csv —")
        gate = asyncio.Event()
        llm.enqueue(
            Scenario().code("print(1)", logs="1\n").text("Done anyway.").stall(after=4, gate=gate)
        )
        tg.send_text(chat, ann, "Slow question")
        await tg.wait_for_message(
            chat, predicate=lambda m: bool(m.buttons) and "Cancel" in m.buttons[0]["text"]
        )

        stopping = asyncio.create_task(app.stop())
        await tg.wait_for(lambda: _refused(port))
        help_update = tg.send_text(chat, ann, "/help")  # Telegram cannot deliver it any more
        gate.set()
        await tg.wait_for_message(chat, contains="Done anyway.")
        await tg.wait_for(lambda: any(d.filename == "analysis_code.py" for d in tg.sent_documents))
        await stopping
        progress = next(m for m in tg.messages(chat) if "Done in" in m.content)
        assert not progress.buttons
        assert not any("How it works" in m.content for m in tg.messages(chat))
        assert help_update.delivered
        assert tg.webhook_deliveries[-1].error is not None


def _refused(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


# ---- health in polling mode -----------------------------------------------------------------


async def test_polling_health_endpoint_reports_the_store(tmp_path: Path) -> None:
    port = free_port()
    async with bot_world(tmp_path, health_port=port, webhook_host="127.0.0.1") as world:
        status, body = await get(f"http://127.0.0.1:{port}/healthz")
        assert (status, body["status"]) == (200, "ok")

        await world.services.store.close()  # the database is gone
        status, body = await get(f"http://127.0.0.1:{port}/healthz")
        assert status == 503
        assert body["status"] == "storage unavailable"


async def test_health_is_503_while_redis_is_down(tmp_path: Path) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed")
    redis = await asyncio.to_thread(start_redis_server, binary, tmp_path)
    port = free_port()
    try:
        async with bot_world(
            tmp_path / "data", redis_url=redis.url, health_port=port, webhook_host="127.0.0.1"
        ):
            assert (await get(f"http://127.0.0.1:{port}/healthz"))[0] == 200
            await asyncio.to_thread(stop_redis_server, redis.process)
            status, body = await get(f"http://127.0.0.1:{port}/healthz")
            assert status == 503
            assert body["status"] == "storage unavailable"
    finally:
        await asyncio.to_thread(stop_redis_server, redis.process)


# ---- python -m bot ----------------------------------------------------------------------------


async def test_python_m_bot_serves_logs_safely_and_stops_on_sigterm(tmp_path: Path) -> None:
    health = free_port()
    async with (
        TelegramFake(bot_username=BOT_USERNAME) as tg,
        running_responses_fake() as llm,
    ):
        llm.require_api_key = API_KEY
        tg.flood = FloodLimits.off()  # many messages in a row; flood waits only slow this down
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "TELEGRAM_BOT_TOKEN": tg.token,
            "TELEGRAM_API_BASE": tg.base_url,
            "LLM_PROVIDER": "openai",
            "OPENAI_API_KEY": API_KEY,
            "LLM_BASE_URL": llm.base_url,
            "LLM_MAX_RETRIES": "0",
            "DATA_DIR": str(tmp_path / "data"),
            "HEALTH_PORT": str(health),
            "WEBHOOK_HOST": "127.0.0.1",
            "SHUTDOWN_GRACE_SECONDS": "5",
            "EDIT_INTERVAL_PRIVATE": "0.2",
            "LOG_LEVEL": "INFO",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=tmp_path,  # no .env of the working tree
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await tg.wait_for(lambda: tg.commands or process.returncode is not None, timeout=30)
            await tg.wait_for(lambda: tg.polls, timeout=10)
            ann = tg.user("Ann")
            chat = tg.private_chat(ann)
            tg.send_text(chat, ann, "/start")
            await tg.wait_for_message(chat, contains="I analyse data for you")

            checker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.healthcheck", cwd=tmp_path, env=env
            )
            assert await asyncio.wait_for(checker.wait(), timeout=30) == 0

            broken = tg.send_document(chat, ann, "lost.csv", SALES_CSV, mime_type="text/csv")
            lose_download(tg, broken)  # its error names the file URL, which holds the token
            await tg.wait_for_message(chat, contains="could not download", timeout=10)
            tg.send_document(chat, ann, "sales.csv", SALES_CSV, mime_type="text/csv")
            await tg.wait_for_message(chat, contains="sales.csv —", timeout=10)
            llm.enqueue(Scenario().text("East leads.").usage(10, 2))
            tg.send_text(chat, ann, "Which region?")
            await tg.wait_for_message(chat, contains="East leads.", timeout=10)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.wait_for(process.wait(), timeout=15)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise
            stderr = (await process.stderr.read()).decode() if process.stderr else ""
        assert code == 0, stderr
        assert tg.token not in stderr
        assert tg.token.split(":")[1] not in stderr
        assert API_KEY not in stderr
        assert "***" in stderr  # the download error was logged, redacted
        [begins] = [line for line in stderr.splitlines() if " begins " in line]
        found = re.search(r"analysis=(\w+) begins chat=(-?\d+)", begins)
        assert found is not None, begins
        assert found[2] == str(chat.id)
        assert f"analysis={found[1]} finished chat={chat.id}" in stderr, stderr
        assert "bot stopped" in stderr
