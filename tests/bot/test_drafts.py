"""Streamed answers in private chats: the answer grows in a Telegram draft while the model writes
it, Telegram's stop button cancels the analysis, and any draft error falls back to the progress
message's preview. Groups keep the progress message only."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

from bot.telegram.drafts import DraftStreamer
from tests.bot.harness import (
    SALES_CSV,
    ask,
    code_file,
    person_with_sales,
    roomy_world,
    upload,
)
from tests.fakes.responses_api import Scenario
from tests.fakes.telegram_api import FloodLimits, TelegramFake

ANSWER = (
    "East leads the regions with **2500** in revenue, ahead of West with 1940 and North with 820. "
    "Revenue grew in every region from January to February, most of all in the East, where it "
    "rose by 100. Units follow the same order, so prices hardly differ between the regions."
)


def slow_answer(text: str = ANSWER, *, chunks: int = 12, pause: float = 0.25) -> Scenario:
    """One code step, then `text` written in `chunks` pieces with `pause` seconds before each."""
    return (
        Scenario()
        .code("print(df.revenue.sum())", logs="5260\n")
        .text(text, chunks=chunks)
        .write_slowly(pause)
    )


def answers(tg, chat, text: str):  # type: ignore[no-untyped-def]
    return [m for m in tg.messages(chat) if (m.text or "").startswith(text[:20])]


async def test_the_answer_grows_in_a_draft_and_ends_as_one_message(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        llm.enqueue(slow_answer())
        progress = await ask(tg, chat, ann, "Which region leads?")
        final = await tg.wait_for_message(chat, contains="Units follow the same order", timeout=20)
        await code_file(tg, chat, final)

        drafts = [d for d in tg.drafts if d.chat_id == chat.id]
        assert len(drafts) >= 2, tg.describe()
        assert len({d.draft_id for d in drafts}) == 1
        assert all(d.can_stop for d in drafts)
        texts = [d.text for d in drafts]
        assert all(len(a) < len(b) for a, b in itertools.pairwise(texts))
        assert all(final.text.startswith(t.rstrip()) for t in texts)
        # formatted as the final message: the bold figure is an entity, not asterisks
        assert not any("**" in t for t in texts)
        assert any(e["type"] == "bold" for d in drafts for e in d.entities)
        # paced: no two drafts closer than the pace (allowing the request's own jitter)
        times = [d.at for d in drafts]
        assert min(b - a for a, b in itertools.pairwise(times)) > 0.5

        assert len(answers(tg, chat, ANSWER)) == 1
        assert tg.live_draft(chat) is None  # the final message replaced it
        # the last draft was answered before the final message went out (no draft after it)
        [sent] = [c for c in tg.calls_of("sendMessage") if "Units follow" in c.params["text"]]
        last_draft = tg.calls_of("sendMessageDraft")[-1]
        assert tg.calls.index(last_draft) < tg.calls.index(sent)
        assert last_draft.ok
        # the progress message showed the steps, never the prose the draft carried
        assert not any("ahead of West" in (v.text or "") for v in progress.versions)
        assert progress.text.startswith("✅ Done")


async def test_telegrams_stop_button_cancels_the_analysis(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        llm.enqueue(slow_answer(chunks=40, pause=0.5))
        progress = await ask(tg, chat, ann, "Which region leads?")
        await tg.wait_for(lambda: tg.live_draft(chat) is not None and tg.live_draft(chat).text)

        pressed = time.monotonic()
        tg.stop_generation(chat)
        assert await llm.wait_for_disconnect(timeout=2)
        assert time.monotonic() - pressed < 2
        stopped = await tg.wait_for(lambda: "Stopped" in (progress.text or ""))
        assert stopped
        assert not progress.buttons
        assert not answers(tg, chat, ANSWER)  # no answer, no failure message
        assert not any("failed" in m.content for m in tg.messages(chat))
        assert tg.drafts_after_stop == []
        # quota as for ⏹ Cancel once the model has started: the analysis counts
        assert (await world.services.people.usage_today(ann.id)).analyses == 1

        # the chat is free again, and a new answer streams again
        llm.enqueue(slow_answer(chunks=4, pause=0.3))
        await ask(tg, chat, ann, "Again please")
        final = await tg.wait_for_message(chat, contains="Units follow the same order", timeout=20)
        assert final.text.startswith("East leads")


async def test_a_draft_error_falls_back_to_the_progress_preview(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        tg.refuse_next("sendMessageDraft", "TEXTDRAFT_PEER_INVALID")
        llm.enqueue(slow_answer(chunks=10, pause=0.3))
        progress = await ask(tg, chat, ann, "Which region leads?")
        final = await tg.wait_for_message(chat, contains="Units follow the same order", timeout=20)
        await code_file(tg, chat, final)

        assert [c.ok for c in tg.calls_of("sendMessageDraft")] == [False]  # never tried again
        assert tg.drafts == []
        # today's path: the progress message previewed the answer as it grew
        assert any("East leads" in (v.text or "") for v in progress.versions)
        assert len(answers(tg, chat, ANSWER)) == 1


async def test_groups_get_no_drafts(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann = tg.user("Ann")
        group = tg.group(members=[ann])
        tg.send_text(group, ann, "/start")
        await upload(tg, group, ann, "sales.csv", SALES_CSV, caption="/analyze")
        llm.enqueue(slow_answer(chunks=6, pause=0.2))
        tg.send_text(group, ann, "/analyze Which region leads?")
        final = await tg.wait_for_message(group, contains="Units follow the same order", timeout=20)
        await code_file(tg, group, final)
        assert tg.calls_of("sendMessageDraft") == []


async def test_a_quiet_draft_is_renewed_before_telegram_drops_it() -> None:
    async with TelegramFake(flood=FloodLimits.off()) as tg:
        bot = tg.make_bot()
        chat = tg.private_chat(tg.user())
        streamer = DraftStreamer(bot, chat.id, 42, interval=0.05, keepalive=0.3)
        streamer.update("Looking at **East** first")
        await tg.wait_for(lambda: len(tg.drafts) >= 3, timeout=5)
        await streamer.close()
        count = len(tg.drafts)
        assert {(d.text, d.draft_id) for d in tg.drafts} == {("Looking at East first", 42)}
        await asyncio.sleep(0.5)
        assert len(tg.drafts) == count  # closed: nothing more
        await bot.session.close()
