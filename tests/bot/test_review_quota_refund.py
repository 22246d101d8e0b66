"""An analysis that never started (its progress message could not be sent) does not use up
the daily quota: the user is told to ask again, and asking again works."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bot.harness import (
    person_with_sales,
    roomy_world,
    send_and_wait,
    text_answer,
)


async def test_an_analysis_whose_progress_message_failed_gives_the_quota_back(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path, daily_user_quota=1) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        # The progress message (the one with the Cancel button) is refused once.
        tg.refuse_next(
            "sendMessage",
            "Bad Request: not enough rights to send text messages to the chat",
            when=lambda call: "cancel:" in json.dumps(call.params.get("reply_markup")),
        )
        failed = await send_and_wait(tg, chat, ann, "Revenue?", "Something went wrong")
        assert "ask again" in failed.text
        assert llm.response_requests() == []

        llm.enqueue(text_answer("Revenue is 5260."))
        answer = await send_and_wait(
            tg,
            chat,
            ann,
            "Revenue?",
            predicate=lambda m: "limit" in m.content or m.content.startswith("Revenue"),
        )
        assert answer.text == "Revenue is 5260."
