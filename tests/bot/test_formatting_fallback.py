"""When Telegram still rejects the formatted answer, the same text arrives as plain text."""

from __future__ import annotations

from pathlib import Path

from tests.bot.harness import SALES_CSV, bot_world
from tests.fakes.responses_api import Scenario


async def test_rejected_formatting_falls_back_to_plain_text(tmp_path: Path) -> None:
    async with bot_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann = tg.user("Ann")
        chat = tg.private_chat(ann)
        tg.send_document(chat, ann, "sales.csv", SALES_CSV, mime_type="text/csv")
        await tg.wait_for_message(chat, contains="sales.csv")

        tg.refuse_next(
            "sendMessage",
            "can't parse entities: unsupported entity at byte offset 0",
            when=lambda call: "entities" in call.params,
        )
        llm.enqueue(Scenario().text("**East** leads with *2500*.").usage(10, 5))
        tg.send_text(chat, ann, "Which region sells most?")

        answer = await tg.wait_for_message(
            chat, predicate=lambda m: m.text == "East leads with 2500."
        )
        assert answer.entities == []
        refused = [c for c in tg.calls_of("sendMessage") if c.status == 400]
        assert len(refused) == 1
        assert refused[0].params["text"] == "East leads with 2500."
