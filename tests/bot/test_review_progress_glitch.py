"""A transient failure of one progress edit must not cost the user the answer, nor leave the
progress message frozen with a Cancel button."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.bot.harness import answer, answered, ask, person_with_sales, roomy_world


def fail_first_edit(tg: Any) -> list[int]:
    """The first editMessageText gets a non-JSON 500 (what a proxy in front of the Bot API
    answers now and then); later edits work. Returns a list that counts the failures."""
    original = tg._handlers["editmessagetext"]
    failures: list[int] = []

    def flaky(args: Any) -> Any:
        if not failures:
            failures.append(1)
            raise RuntimeError("proxy error")  # aiohttp answers a plain-text 500
        return original(args)

    tg._handlers["editmessagetext"] = flaky
    return failures


async def test_a_failed_progress_edit_still_ends_with_the_answer_and_a_closed_progress(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        failures = fail_first_edit(tg)
        gate = asyncio.Event()
        llm.enqueue(answer("East leads.").stall(after=5, gate=gate))

        progress = await ask(tg, chat, ann, "Which region leads?")
        await tg.wait_for(lambda: failures)
        gate.set()

        await answered(tg, chat, "East leads.")
        await tg.wait_for(lambda: "Done in" in (progress.text or ""))
        assert not progress.buttons
