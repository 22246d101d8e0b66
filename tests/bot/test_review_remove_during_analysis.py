"""Removing a file while an analysis is uploading it must not leave a copy of the user's
file with the model provider that nothing will ever delete."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.bot.harness import (
    ask,
    files_listing,
    last_id,
    next_message,
    person_with_sales,
    roomy_world,
    text_answer,
)


async def test_a_file_cannot_be_removed_mid_analysis_and_is_removed_everywhere_after(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        listing = await files_listing(tg, chat, ann)

        llm.upload_gate = asyncio.Event()  # the upload of sales.csv hangs until released
        llm.enqueue(text_answer("Revenue is 5260."))
        await ask(tg, chat, ann, "Revenue?")
        await tg.wait_for(lambda: "/v1/files" in llm.paths("POST"))

        press = tg.press(listing, "🗑 sales.csv")
        await tg.wait_for(lambda: press.id in tg.callback_answers)
        assert "running" in tg.callback_answers[press.id].text
        llm.upload_gate.set()
        await tg.wait_for_message(chat, predicate=lambda m: m.text == "Revenue is 5260.")
        [uploaded] = [f.id for f in llm.uploads if f.filename == "sales.csv"]

        # Once the analysis is over, removing works and deletes the remote copy too.
        before = last_id(tg, chat)
        tg.press(await files_listing(tg, chat, ann), "🗑 sales.csv")
        await next_message(tg, chat, before, lambda m: "sales.csv was removed" in m.text)
        await tg.wait_for(lambda: uploaded not in llm.files)
        assert llm.paths("DELETE") == [f"/v1/files/{uploaded}"]
