"""The bot in groups and forum topics: commands addressed to it, replies to it, shared files,
silence on chatter, and every message of an analysis in the topic it was asked in."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from tests.bot.harness import (
    ROOMY,
    SALES_CSV,
    World,
    answer,
    answered,
    files_sent,
    png,
    reply_to,
    roomy_world,
)
from tests.fakes.responses_api import Scenario, sandbox_link
from tests.fakes.telegram_api import Chat, FloodLimits, StoredMessage, TelegramFake


def group_world(tmp_path: Path, **kwargs: Any) -> AbstractAsyncContextManager[World]:
    """`roomy_world` with quick progress edits in groups."""
    return roomy_world(tmp_path, edit_interval_group=0.1, **kwargs)


def replies_to(tg: TelegramFake, chat: Chat, message: StoredMessage) -> list[StoredMessage]:
    return [m for m in tg.messages(chat) if m.reply_to is message]


async def test_group_shares_files_answers_addressed_commands_and_replies(tmp_path: Path) -> None:
    async with group_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, bob = tg.user("Ann"), tg.user("Bob", language_code="ru")
        group = tg.group("Sales team", members=[ann, bob])

        # With privacy mode on, a file reaches the bot with a command caption.
        unseen = tg.send_document(group, ann, "other.csv", b"a,b\n1,2\n")
        document = tg.send_document(
            group, ann, "sales.csv", SALES_CSV, caption="/analyze@DataLensBot"
        )
        preview = await reply_to(tg, group, document)
        assert "sales.csv" in preview.text
        assert "6 × 4" in preview.text
        assert not unseen.delivered
        assert replies_to(tg, group, unseen) == []

        # Bob asks about Ann's file, in his own language.
        llm.enqueue(answer("Восток впереди."))
        question = tg.send_text(group, bob, "/analyze@DataLensBot кто лидер?")
        progress = await reply_to(tg, group, question)
        first = await answered(tg, group, "Восток впереди.")
        assert progress.text.startswith("✅ Готово за")
        assert first.reply_to is question
        request = llm.response_requests()[0].json
        assert request["input"] == "кто лидер?"
        assert [f.filename for f in llm.uploads] == ["sales.csv"]
        assert files_sent(llm) == [llm.uploads[0].id]

        # Ann replies to the bot's answer: a follow-up in the same conversation.
        llm.enqueue(answer("West is second."))
        follow_up = tg.send_text(group, ann, "And who is second?", reply_to=first)
        assert follow_up.delivered
        await reply_to(tg, group, follow_up)
        await answered(tg, group, "West is second.")
        request = llm.response_requests()[1].json
        assert request["input"] == "And who is second?"
        assert request["previous_response_id"] == next(iter(llm.responses))
        assert files_sent(llm) == [llm.uploads[0].id]

        # A file with a question in its caption is added, then asked about, with both files.
        llm.enqueue(answer("Both files compared."))
        caption = "/analyze@DataLensBot compare the files"
        second = tg.send_document(
            group, bob, "plan.csv", b"region,plan\nEast,2000\n", caption=caption
        )
        await tg.wait_for(lambda: len(replies_to(tg, group, second)) == 2)
        preview, progress = replies_to(tg, group, second)
        assert "plan.csv" in preview.text
        await answered(tg, group, "Both files compared.")
        assert llm.response_requests()[2].json["input"] == "compare the files"
        assert sorted(files_sent(llm)) == sorted(f.id for f in llm.uploads)
        assert len(llm.uploads) == 2
        assert tg.flood_violations == []


async def test_group_without_privacy_mode_takes_files_and_ignores_chatter(tmp_path: Path) -> None:
    async with group_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, bob = tg.user("Ann"), tg.user("Bob")
        group = tg.group("Open team", members=[ann, bob], supergroup=True, privacy_mode=False)

        chatter = [
            tg.send_text(group, ann, "Morning! Who has the numbers?"),
            tg.send_text(group, bob, "/analyze@OtherBot not for this bot"),
        ]
        document = tg.send_document(group, bob, "sales.csv", SALES_CSV)
        preview = await reply_to(tg, group, document)
        assert "sales.csv" in preview.text
        tg.send_text(group, ann, "nice file, thanks")
        tg.send_text(group, ann, "/files")
        listing = await tg.wait_for_message(group, contains="Files in this chat")
        assert all(m.delivered for m in chatter)
        # only the preview and the listing: no reply to chatter, no "I need data" lectures
        assert tg.messages(group) == [preview, listing]

        reply = tg.send_text(group, ann, "/analyze")
        hint = await reply_to(tg, group, reply)
        assert "/analyze@DataLensBot which region" in hint.text
        assert llm.response_requests() == []


async def test_group_question_without_files_says_how_to_add_them(tmp_path: Path) -> None:
    async with group_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann = tg.user("Ann")
        group = tg.group("Empty team", members=[ann])
        question = tg.send_text(group, ann, "/analyze@DataLensBot total revenue?")
        reply = await reply_to(tg, group, question)
        assert "I need data first" in reply.text
        assert "/analyze@DataLensBot" in reply.text
        assert llm.response_requests() == []


async def test_forum_topic_gets_progress_answer_and_files_in_the_topic(tmp_path: Path) -> None:
    async with group_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann = tg.user("Ann")
        forum = tg.forum("Analytics", topics=("Sales", "Chatter"), members=[ann])
        topic = forum.topics["Sales"]

        document = tg.send_document(
            forum, ann, "sales.csv", SALES_CSV, caption="/analyze@DataLensBot", thread_id=topic
        )
        preview = await reply_to(tg, forum, document)
        assert preview.thread_id == topic

        saves = {"by_region.png": png(), "by_region.csv": b"region,revenue\nEast,2500\n"}
        llm.enqueue(
            Scenario()
            .code("plot()", saves=saves)
            .text(f"East leads. {sandbox_link('by_region.png')} {sandbox_link('by_region.csv')}")
        )
        question = tg.send_text(forum, ann, "/analyze@DataLensBot who leads?", thread_id=topic)
        progress = await reply_to(tg, forum, question)
        await answered(tg, forum, "East leads.")
        produced = [m for m in tg.messages(forum) if m.message_id >= progress.message_id]
        assert len(produced) >= 4  # progress, answer, chart, table, code
        assert {m.thread_id for m in produced} == {topic}
        assert {p.thread_id for p in tg.sent_photos} == {topic}
        assert {d.thread_id for d in tg.sent_documents} == {topic}
        assert {a.thread_id for a in tg.chat_actions if a.chat_id == forum.id} == {topic}
        assert tg.general_topic_attempts == []

        # In General the bot must leave message_thread_id out (Telegram refuses id 1).
        llm.enqueue(answer("General answer."))
        calls = len(tg.calls)
        general = tg.send_text(forum, ann, "/analyze@DataLensBot and overall?")
        assert general.thread_id is None
        await reply_to(tg, forum, general)
        await answered(tg, forum, "General answer.")
        sends = [c for c in tg.calls[calls:] if c.method.startswith("send")]
        assert sends
        assert all("message_thread_id" not in c.params for c in sends)
        assert all(c.ok for c in tg.calls)
        assert tg.general_topic_attempts == []


async def test_a_busy_group_under_flood_control_gets_every_reply_and_the_answer(
    tmp_path: Path,
) -> None:
    # One message per 0.1 s and no bursts: concurrent replies in one group meet flood control.
    limits = FloodLimits(group_per_minute=600, group_burst=1)
    async with roomy_world(tmp_path, edit_interval_group=0.2) as world:
        tg, llm = world.tg, world.llm
        ann, *others = [tg.user(name) for name in ("Ann", "Bob", "Cid", "Dee", "Eve")]
        group = tg.group("Busy team", members=[ann, *others])
        document = tg.send_document(
            group, ann, "sales.csv", SALES_CSV, caption="/analyze@DataLensBot"
        )
        await reply_to(tg, group, document)

        gate = asyncio.Event()
        llm.enqueue(answer("The answer.").stall(after=5, gate=gate))
        question = tg.send_text(group, ann, "/analyze@DataLensBot which region leads?")
        progress = await reply_to(tg, group, question)
        await tg.wait_for(lambda: "Writing code" in (progress.text or ""), timeout=10)

        tg.flood = limits
        asked = [tg.send_text(group, user, "/analyze@DataLensBot me too") for user in others]
        await tg.wait_for(lambda: all(replies_to(tg, group, m) for m in asked), timeout=15)
        for message in asked:
            [busy] = replies_to(tg, group, message)
            assert "already running" in busy.text
        assert tg.flood_refusals  # the limits did bite ...
        assert tg.flood_violations == []  # ... and no request was made during a pause

        tg.flood = ROOMY
        gate.set()
        await answered(tg, group, "The answer.")
        assert progress.text.startswith("✅ Done in")
