"""A request Telegram may already have carried out is not sent again: a 5xx that comes after
Telegram sent the message, or an answer that arrives after the client gave up, leaves exactly
one message in the chat. A 429 (Telegram did NOT carry the request out) is still waited out and
sent again. The bot's own `Bot` (`create_bot`: its session and request middlewares) against the
Telegram fake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramNetworkError, TelegramServerError
from aiogram.types import BufferedInputFile, InputMediaPhoto

from bot.config import load_settings
from bot.telegram.factory import create_bot
from tests.bot.harness import BOT_USERNAME, png
from tests.fakes.telegram_api import Chat, FloodLimits, TelegramFake


@asynccontextmanager
async def chat_with_bot(tmp_path: Path) -> AsyncIterator[tuple[TelegramFake, Bot, Chat]]:
    async with TelegramFake(bot_username=BOT_USERNAME) as tg:
        settings = load_settings(
            _env_file=None,
            telegram_bot_token=tg.token,
            telegram_api_base=tg.base_url,
            llm_provider="openai",
            openai_api_key="k",
            data_dir=tmp_path,
        )
        bot = create_bot(settings)
        try:
            yield tg, bot, tg.private_chat(tg.user("Ann"))
        finally:
            await bot.session.close()


def photo(name: str = "chart.png") -> BufferedInputFile:
    return BufferedInputFile(png(), filename=name)


SENDS = {
    "sendMessage": lambda bot, chat: bot.send_message(chat.id, "East leads."),
    "sendPhoto": lambda bot, chat: bot.send_photo(chat.id, photo(), caption="Chart"),
    "sendDocument": lambda bot, chat: bot.send_document(
        chat.id, BufferedInputFile(b"a,b\n1,2\n", filename="result.csv")
    ),
    "sendMediaGroup": lambda bot, chat: bot.send_media_group(
        chat.id, [InputMediaPhoto(media=photo("a.png")), InputMediaPhoto(media=photo("b.png"))]
    ),
}
EXPECTED_MESSAGES = {"sendMessage": 1, "sendPhoto": 1, "sendDocument": 1, "sendMediaGroup": 2}


@pytest.mark.parametrize("method", sorted(SENDS))
async def test_a_5xx_after_the_send_is_not_repeated(tmp_path: Path, method: str) -> None:
    async with chat_with_bot(tmp_path) as (tg, bot, chat):
        tg.fail_after_executing(method, status=500)
        with pytest.raises(TelegramServerError):
            await SENDS[method](bot, chat)
        assert len(tg.calls_of(method)) == 1
        assert len(tg.messages(chat)) == EXPECTED_MESSAGES[method]
        assert tg.executed_despite_error == tg.calls_of(method)


async def test_an_answer_later_than_the_timeout_is_not_repeated(tmp_path: Path) -> None:
    async with chat_with_bot(tmp_path) as (tg, bot, chat):
        tg.answer_late("sendMessage", seconds=3)
        with pytest.raises(TelegramNetworkError):
            await bot.send_message(chat.id, "East leads.", request_timeout=1)
        await asyncio.sleep(2.5)  # the late answer arrives; nothing is sent after it
        assert len(tg.calls_of("sendMessage")) == 1
        assert [m.text for m in tg.messages(chat)] == ["East leads."]


async def test_flood_control_is_still_waited_out_and_every_message_arrives_once(
    tmp_path: Path,
) -> None:
    async with chat_with_bot(tmp_path) as (tg, bot, chat):
        tg.flood = FloodLimits.strict()
        for n in range(3):
            await bot.send_message(chat.id, f"Part {n}")
        assert tg.flood_refusals  # Telegram refused some: they were sent again after the wait
        assert [m.text for m in tg.messages(chat)] == ["Part 0", "Part 1", "Part 2"]


async def test_a_5xx_on_a_request_that_leaves_no_trace_is_still_repeated(tmp_path: Path) -> None:
    async with chat_with_bot(tmp_path) as (tg, bot, _):
        tg.fail_after_executing("getMe", status=502)
        me = await bot.get_me()
        assert me.username == BOT_USERNAME
        assert len(tg.calls_of("getMe")) == 2
