"""The whole bot, for real, against the loopback fakes: aiogram's real HTTP session and long
polling against the Telegram fake, the real `AsyncOpenAI` against the Responses fake, real
SQLite (or a real Redis) under a temp DATA_DIR.

    async with bot_world(tmp_path) as world:
        ann = world.tg.user("Ann")
        chat = world.tg.private_chat(ann)
        world.tg.send_document(chat, ann, "sales.csv", SALES_CSV)
        await world.tg.wait_for_message(chat, contains="sales.csv")

Shared steps of the end-to-end tests are below `bot_world`: people (`person`,
`person_with_sales`), what they send and what they wait for (`upload`, `ask`, `answered`,
`ask_until_answered`, `code_file`, `send_and_wait`, `files_listing`, `next_message`), model turns
(`answer`, `text_answer`) and what the model received (`file_ids`, `files_sent`). Their waits
give up after `WAIT` seconds unless told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from bot.app import Services, build_services
from bot.config import Settings, load_settings
from bot.telegram.factory import create_bot
from bot.telegram.runners import BotRunner, make_runner
from tests.fakes.responses_api import ResponsesFake, Scenario, running_responses_fake
from tests.fakes.telegram_api import Chat, FloodLimits, StoredMessage, TelegramFake, User

BOT_USERNAME = "DataLensBot"

ROOMY = FloodLimits(private_burst=100, group_burst=100)
"""Bursts roomy enough that a flow runs at full speed (violations are still recorded);
Telegram's pace itself is tested with tighter limits."""

WAIT = 10.0
"""Seconds the helpers below wait for the bot before the test fails."""

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
    runner = make_runner(settings, services, bot)
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
    before_start: Callable[[TelegramFake], dict[str, Any]] | None = None,
    **overrides: Any,
) -> AsyncIterator[World]:
    """The bot running against fresh fakes, stopped on exit. `before_start(tg)`, when given,
    builds what must exist before the bot starts (users, chats whose ids the settings name) and
    returns more settings overrides."""
    async with (
        TelegramFake(bot_username=BOT_USERNAME, flood=flood, local_mode=local_mode) as tg,
        running_responses_fake(provider=provider) as llm,
    ):
        if before_start is not None:
            overrides |= before_start(tg)
        app = await start_app(tg, settings_for(tg, llm, data_dir, **overrides))
        world = World(tg, llm, data_dir, app)
        try:
            yield world
        finally:
            await world.app.stop()


def roomy_world(data_dir: Path, **kwargs: Any) -> AbstractAsyncContextManager[World]:
    """`bot_world` with `ROOMY` flood limits."""
    return bot_world(data_dir, flood=ROOMY, **kwargs)


# ---- people ---------------------------------------------------------------------------------


def person(tg: TelegramFake, name: str = "Ann", language: str = "en") -> tuple[User, Chat]:
    """A new user and their private chat with the bot."""
    user = tg.user(name, language_code=language)
    return user, tg.private_chat(user)


async def person_with_sales(
    tg: TelegramFake, name: str = "Ann", language: str = "en"
) -> tuple[User, Chat]:
    """A new user who has uploaded `SALES_CSV` as sales.csv; the preview has arrived."""
    user, chat = person(tg, name, language)
    await upload(tg, chat, user, "sales.csv", SALES_CSV)
    return user, chat


# ---- what a user sends, and what they wait for ----------------------------------------------


async def reply_to(
    tg: TelegramFake, chat: Chat, message: StoredMessage, timeout: float = WAIT
) -> StoredMessage:
    """The bot's first message in `chat` that replies to `message`."""
    return await tg.wait_for_message(
        chat, predicate=lambda m: m.reply_to is message, timeout=timeout
    )


async def upload(
    tg: TelegramFake, chat: Chat, user: User, name: str, data: bytes, **kwargs: Any
) -> StoredMessage:
    """Send a document (`kwargs` go to `tg.send_document`) and return the bot's reply to it: the
    preview, or why the file was refused."""
    return await reply_to(tg, chat, tg.send_document(chat, user, name, data, **kwargs))


async def ask(tg: TelegramFake, chat: Chat, user: User, text: str) -> StoredMessage:
    """Send `text` and return the bot's first reply to it (the progress message, or a refusal)."""
    return await reply_to(tg, chat, tg.send_text(chat, user, text))


def last_id(tg: TelegramFake, chat: Chat) -> int:
    """The newest message id in `chat`, the users' messages included (0 in an empty chat)."""
    return max((m.message_id for m in tg.messages(chat, include_users=True)), default=0)


async def next_message(
    tg: TelegramFake,
    chat: Chat,
    after: int,
    predicate: Callable[[StoredMessage], bool],
    timeout: float = WAIT,
) -> StoredMessage:
    """The first bot message in `chat` newer than message id `after` that matches."""

    def find() -> StoredMessage | None:
        return next((m for m in tg.messages(chat) if m.message_id > after and predicate(m)), None)

    return await tg.wait_for(find, timeout=timeout)


async def send_and_wait(
    tg: TelegramFake,
    chat: Chat,
    user: User,
    text: str,
    contains: str | None = None,
    *,
    predicate: Callable[[StoredMessage], bool] | None = None,
    timeout: float = WAIT,
) -> StoredMessage:
    """Send `text` and return the bot's first message after it that contains `contains` and
    matches `predicate` (with neither: whatever the bot says next)."""
    mark = last_id(tg, chat)
    tg.send_text(chat, user, text)
    return await next_message(
        tg,
        chat,
        mark,
        lambda m: (
            (contains is None or contains in m.content) and (predicate is None or predicate(m))
        ),
        timeout,
    )


async def files_listing(tg: TelegramFake, chat: Chat, user: User) -> StoredMessage:
    """Send /files and return the listing (or the answer that there are no files); English.
    A preview in a chat with several files also says "Files in this chat": wait for the replies
    to earlier uploads first."""
    return await send_and_wait(
        tg,
        chat,
        user,
        "/files",
        predicate=lambda m: "Files in this chat" in m.content or "no files" in m.content,
    )


async def code_file(
    tg: TelegramFake, chat: Chat, since: StoredMessage, timeout: float = WAIT
) -> StoredMessage:
    """The analysis_code.py document sent after `since` (the last thing an analysis that ran
    code sends)."""
    return await tg.wait_for_message(
        chat,
        predicate=lambda m: (
            m.message_id > since.message_id
            and m.media.get("document", {}).get("file_name") == "analysis_code.py"
        ),
        timeout=timeout,
    )


async def answered(tg: TelegramFake, chat: Chat, text: str, timeout: float = WAIT) -> StoredMessage:
    """The answer starting with `text`, once the code file after it has arrived too (so the
    analysis is over)."""
    found = await tg.wait_for_message(
        chat, predicate=lambda m: (m.text or "").startswith(text), timeout=timeout
    )
    await code_file(tg, chat, found, timeout)
    return found


async def ask_until_answered(
    world: World, chat: Chat, user: User, question: str, text: str
) -> StoredMessage:
    """Ask `question`, which the model answers with `answer(text)`: the bot's first reply, then
    the answer and its code file. Returns the answer."""
    world.llm.enqueue(answer(text))
    await ask(world.tg, chat, user, question)
    return await answered(world.tg, chat, text)


def lose_download(tg: TelegramFake, message: StoredMessage) -> None:
    """Telegram's file server loses an uploaded file: getFile works, the download is 404."""
    file_id = message.media["document"]["file_id"]
    [stored] = [f for f in tg._files_by_path.values() if f.file_id == file_id]
    del tg._files_by_path[stored.path]


# ---- the model ------------------------------------------------------------------------------


def answer(text: str = "East leads with 2500.") -> Scenario:
    """A model turn that runs one code step (the revenue total), then says `text`."""
    return Scenario().code("print(df.revenue.sum())", logs="5260\n").text(text)


def text_answer(text: str = "Done.") -> Scenario:
    """A model turn that only says `text` (no code, so no code file), with token usage."""
    return Scenario().text(text).usage(50, 10)


def file_ids(request: dict[str, Any]) -> list[str]:
    """The file ids a Responses request gave the code interpreter."""
    return request["tools"][0]["container"]["file_ids"]


def files_sent(llm: ResponsesFake, index: int = -1) -> list[str]:
    """`file_ids` of the model request number `index` (the last by default)."""
    return file_ids(llm.response_requests()[index].json)
