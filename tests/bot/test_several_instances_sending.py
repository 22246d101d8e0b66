"""Two instances (each its own `Bot` from `create_bot`, its own Redis connections) sending to
one chat: a chat's requests go one at a time across instances, so while one instance waits
out the chat's flood-control pause the other does not send into it (Telegram may punish that
with a longer pause), and each instance's messages arrive in its order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import SharedLimits
from bot.storage import RedisStore
from bot.telegram.factory import create_bot
from tests.bot.harness import BOT_USERNAME, settings_for
from tests.fakes.responses_api import running_responses_fake
from tests.fakes.telegram_api import FloodLimits, TelegramFake


@pytest.fixture
async def stores(redis_url: str) -> AsyncIterator[list[RedisStore]]:
    opened = [RedisStore(redis_url), RedisStore(redis_url)]
    for store in opened:
        await store.open()
    yield opened
    for store in opened:
        await store.close()


async def test_two_instances_take_turns_in_a_chat(
    stores: list[RedisStore], redis_url: str, tmp_path: Path
) -> None:
    async with (
        TelegramFake(bot_username=BOT_USERNAME, flood=FloodLimits.strict()) as tg,
        running_responses_fake() as llm,
    ):
        settings = settings_for(tg, llm, tmp_path, redis_url=redis_url)
        bots = [create_bot(settings, SharedLimits.for_store(settings, s)) for s in stores]
        ann = tg.user("Ann")
        chat = tg.private_chat(ann)
        try:

            async def send(n: int) -> None:
                for k in range(3):
                    await bots[n].send_message(chat.id, f"instance {n} message {k}")

            await asyncio.wait_for(asyncio.gather(send(0), send(1)), timeout=60)
        finally:
            for bot in bots:
                await bot.session.close()

    texts = [m.text for m in tg.messages(chat)]
    assert len(texts) == 6
    for n in range(2):
        assert [t for t in texts if t and t.startswith(f"instance {n}")] == [
            f"instance {n} message {k}" for k in range(3)
        ]
    assert tg.flood_violations == []
