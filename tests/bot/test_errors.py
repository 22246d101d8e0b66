"""When the bot itself fails (here: its Redis goes away mid-conversation), the person is
told in their language that something went wrong, and a pressed button still stops
spinning; nothing is left silent."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.bot.harness import person_with_sales, roomy_world, send_and_wait
from tests.fixtures.redis_server import start_redis_server, stop_redis_server


async def test_a_failing_store_gets_a_clear_reply_and_buttons_are_still_answered(
    tmp_path: Path,
) -> None:
    own = start_redis_server(shutil.which("redis-server") or "redis-server", tmp_path)
    try:
        async with roomy_world(tmp_path / "data", redis_url=own.url) as world:
            tg = world.tg
            ann, chat = await person_with_sales(tg, language="ru")
            listing = await send_and_wait(tg, chat, ann, "/files", "Файлы этого чата")
            stop_redis_server(own.process)

            reply = await send_and_wait(tg, chat, ann, "/files")
            assert "Что-то пошло не так" in reply.text  # in Ann's language

            press = tg.press(listing, listing.buttons[0]["callback_data"])
            await tg.wait_for(lambda: press.id in tg.callback_answers)
            await tg.wait_for(
                lambda: sum("Что-то пошло не так" in m.content for m in tg.messages(chat)) == 2
            )
    finally:
        stop_redis_server(own.process)
