"""The whole bot, for real, against the loopback fakes: aiogram's real HTTP session and long
polling against the Telegram fake, the real `AsyncOpenAI` against the Responses fake, real
SQLite (or a real Redis) under a temp DATA_DIR.

    async with bot_world(tmp_path) as world:
        ann = world.tg.user("Ann")
        chat = world.tg.private_chat(ann)
        world.tg.send_document(chat, ann, "sales.csv", SALES_CSV)
        await world.tg.wait_for_message(chat, contains="sales.csv")
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from bot.app import Services, build_services
from bot.config import Settings, load_settings
from bot.telegram.runner import BotRunner, create_bot
from tests.fakes.responses_api import ResponsesFake, running_responses_fake
from tests.fakes.telegram_api import FloodLimits, TelegramFake

BOT_USERNAME = "DataLensBot"

SALES_CSV = (
    b"region,month,revenue,units\n"
    b"East,2024-01,1200,10\nWest,2024-01,950,8\nEast,2024-02,1300,11\nWest,2024-02,990,9\n"
    b"North,2024-01,400,3\nNorth,2024-02,420,4\n"
)


def png(width: int = 640, height: int = 480, color: str = "steelblue") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def settings_for(
    tg: TelegramFake, llm: ResponsesFake, data_dir: Path, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "_env_file": None,
        "telegram_bot_token": tg.token,
        "telegram_api_base": tg.base_url,
        "telegram_api_local": tg.local_mode,
        "data_dir": data_dir,
        "edit_interval_private": 0.2,
        "edit_interval_group": 0.5,
        "shutdown_grace_seconds": 5,
        "llm_max_retries": 0,
    }
    if llm.provider == "openai":
        values |= {
            "llm_provider": "openai",
            "openai_api_key": "test-key",
            "openai_model": "gpt-test",
        }
    else:
        values |= {
            "llm_provider": "yandex",
            "yandex_api_key": "test-key",
            "yandex_folder_id": "b1g",
        }
    values["llm_base_url"] = llm.base_url
    values.update(overrides)
    return load_settings(**values)


@dataclass
class App:
    """One running bot process (its services, runner and polling task)."""

    settings: Settings
    services: Services
    runner: BotRunner
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.runner.stop()
        try:
            await asyncio.wait_for(self.task, timeout=30)
        finally:
            await self.services.aclose()


async def start_app(tg: TelegramFake, settings: Settings) -> App:
    services = await build_services(settings)
    bot = create_bot(settings)
    runner = BotRunner(settings, services, bot)
    polls = len(tg.polls)
    task = asyncio.create_task(runner.run())
    await tg.wait_for(lambda: len(tg.polls) > polls or task.done(), timeout=20)
    if task.done():
        await services.aclose()
        task.result()
    return App(settings, services, runner, task)


@dataclass
class World:
    tg: TelegramFake
    llm: ResponsesFake
    data_dir: Path
    app: App

    @property
    def services(self) -> Services:
        return self.app.services

    async def restart(self, **overrides: Any) -> App:
        """Stop the bot and start a new process on the same DATA_DIR."""
        await self.app.stop()
        settings = settings_for(self.tg, self.llm, self.data_dir, **overrides)
        self.app = await start_app(self.tg, settings)
        return self.app


@contextlib.asynccontextmanager
async def bot_world(
    data_dir: Path,
    *,
    provider: str = "openai",
    flood: FloodLimits | None = None,
    local_mode: bool = False,
    **overrides: Any,
) -> AsyncIterator[World]:
    async with (
        TelegramFake(bot_username=BOT_USERNAME, flood=flood, local_mode=local_mode) as tg,
        running_responses_fake(provider=provider) as llm,
    ):
        app = await start_app(tg, settings_for(tg, llm, data_dir, **overrides))
        world = World(tg, llm, data_dir, app)
        try:
            yield world
        finally:
            await world.app.stop()
