"""A progress message whose analysis ran in a process that died (or runs on another
instance): its Cancel button still frees the chat and closes the message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.storage.base import ActiveAnalysis
from bot.telegram import keyboards
from bot.telegram.i18n import translator
from tests.bot.harness import bot_world, person_with_sales
from tests.fakes.responses_api import Scenario


async def test_cancel_on_an_orphaned_progress_message_frees_the_chat(tmp_path: Path) -> None:
    async with bot_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)

        # An analysis claimed by a process that is gone: its lease is still valid and its
        # progress message still shows a Cancel button.
        now = datetime.now(UTC)
        claim = ActiveAnalysis(
            chat_id=chat.id,
            analysis_id="deadbeef0001",
            user_id=ann.id,
            question="Which region sells most?",
            started_at=now,
            lease_until=now + timedelta(minutes=5),
        )
        assert await world.services.store.try_begin_analysis(claim)
        bot = world.app.runner.bot
        await bot.send_message(
            chat.id,
            "⚙️ Running the code (step 1)…",
            reply_markup=keyboards.cancel(translator("en"), claim.analysis_id),
        )
        progress = await tg.wait_for_message(chat, contains="Running the code")

        tg.send_text(chat, ann, "How many rows?")
        await tg.wait_for_message(chat, contains="already running")
        assert llm.response_requests() == []

        tg.press(progress, "⏹ Cancel")
        await tg.wait_for(lambda: "Cancelled" in (progress.text or ""))
        assert not progress.buttons

        llm.enqueue(Scenario().text("Six rows.").usage(10, 2))
        tg.send_text(chat, ann, "How many rows?")
        await tg.wait_for_message(chat, predicate=lambda m: m.text == "Six rows.")
