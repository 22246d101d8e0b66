"""Many chats at once stay within Telegram's overall limit (about 30 messages a second):
nobody's reply is lost and the bot never draws a 429."""

from __future__ import annotations

from pathlib import Path

from tests.bot.harness import bot_world
from tests.fakes.telegram_api import FloodLimits


async def test_a_burst_of_chats_gets_every_reply_without_flood_errors(tmp_path: Path) -> None:
    # A small overall allowance makes the limit bind with few chats; the bot is told the same.
    limits = FloodLimits(global_per_second=10, global_burst=5)
    async with bot_world(tmp_path, flood=limits, telegram_messages_per_second=8) as world:
        tg = world.tg
        users = [tg.user(f"user{i}") for i in range(15)]
        chats = [tg.private_chat(u) for u in users]
        for chat, user in zip(chats, users, strict=True):
            tg.send_text(chat, user, "/start")
        for chat in chats:
            await tg.wait_for_message(chat, contains="Sample datasets", timeout=20)
        assert tg.flood_refusals == []
        assert tg.flood_violations == []
