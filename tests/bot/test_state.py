"""Per-chat state that survives restarts: files, conversations, interrupted analyses, the
one-analysis-per-chat lock (also across two instances sharing Redis), caps and retention."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.app import build_services
from bot.services.analysis import AnalysisRefused, AnalysisRequest, RefusalReason
from tests.bot.harness import (
    SALES_CSV,
    World,
    bot_world,
    file_ids,
    files_listing,
    lose_download,
    person,
    person_with_sales,
    send_and_wait,
    settings_for,
    text_answer,
    upload,
)
from tests.fakes.responses_api import Scenario
from tests.fakes.telegram_api import Chat, FloodLimits, StoredMessage, User

OTHER_CSV = b"city,visits\nParis,10\nRome,7\nOslo,3\n"


def answered(text: str) -> Any:
    return lambda m: (m.text or "").startswith(text)


async def ask(world: World, chat: Chat, user: User, question: str, answer: str) -> StoredMessage:
    """Ask `question`, which the model answers with `answer` (text only); return the answer."""
    world.llm.enqueue(text_answer(answer))
    return await send_and_wait(world.tg, chat, user, question, predicate=answered(answer))


def progress_messages(world: World, chat: Chat) -> list[StoredMessage]:
    return [m for m in world.tg.messages(chat) if any("Cancel" in b["text"] for b in m.buttons)]


# ---- restart persistence --------------------------------------------------------------------


async def _restart_keeps_files_and_conversation(world: World, **restart: Any) -> None:
    tg, llm = world.tg, world.llm
    ann, chat = await person_with_sales(tg)
    await ask(world, chat, ann, "Total revenue?", "Revenue is 5260.")
    first = llm.response_requests()[-1].json
    [file_id] = file_ids(first)
    [response_id] = [r for r in llm.responses if llm.responses[r]["status"] == "completed"]
    assert len(llm.uploads) == 1

    await world.restart(**restart)

    await ask(world, chat, ann, "And by region?", "East leads.")
    second = llm.response_requests()[-1].json
    assert file_ids(second) == [file_id]
    assert second["previous_response_id"] == response_id
    assert len(llm.uploads) == 1  # the remote copy was reused, not uploaded again

    listing = (await files_listing(tg, chat, ann)).text
    assert "sales.csv" in listing


async def test_files_and_conversation_survive_a_restart(tmp_path: Path) -> None:
    async with bot_world(tmp_path) as world:
        await _restart_keeps_files_and_conversation(world)


async def test_files_and_conversation_survive_a_restart_with_redis(
    tmp_path: Path, redis_url: str
) -> None:
    async with bot_world(tmp_path, redis_url=redis_url) as world:
        await _restart_keeps_files_and_conversation(world, redis_url=redis_url)


# ---- interrupted analyses -------------------------------------------------------------------


async def test_analysis_cut_by_a_restart_is_reported_once_after_it(tmp_path: Path) -> None:
    async with bot_world(tmp_path, shutdown_grace_seconds=0.2) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        llm.enqueue(Scenario().code("print(1)", logs="1\n").text("never").stall(after=3))
        tg.send_text(chat, ann, "A long question about sales")
        progress = await tg.wait_for(lambda: progress_messages(world, chat))
        [progress] = progress

        await world.restart()

        notice = await tg.wait_for_message(chat, contains="restarted before finishing")
        assert notice.message_id == progress.message_id  # the progress message says so
        assert "A long question about sales" in notice.text
        assert "ask again" in notice.text
        assert not notice.buttons  # no Cancel button on a dead analysis

        await world.restart()  # another restart does not repeat it
        assert await world.app.runner.housekeeper.report_interrupted() == 0
        await files_listing(tg, chat, ann)
        notices = [m for m in tg.messages(chat) if "restarted before" in m.text]
        assert notices == [notice]
        assert len([e for e in tg.calls if "restarted before" in e.params.get("text", "")]) == 1


# ---- graceful shutdown ----------------------------------------------------------------------


async def test_stop_lets_a_running_analysis_finish_and_takes_no_new_updates(
    tmp_path: Path,
) -> None:
    async with bot_world(tmp_path, shutdown_grace_seconds=10) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        gate = asyncio.Event()
        llm.enqueue(Scenario().text("Finished after stop.").stall(after=3, gate=gate))
        tg.send_text(chat, ann, "Slow question")
        await tg.wait_for(lambda: progress_messages(world, chat))

        polling_ended = asyncio.Event()
        world.app.runner.dp.shutdown.register(polling_ended.set)
        stopping = asyncio.create_task(world.app.stop())
        await asyncio.wait_for(polling_ended.wait(), timeout=10)
        tg.send_text(chat, ann, "/help")  # arrives after stop was requested
        gate.set()
        answer = await tg.wait_for_message(chat, predicate=answered("Finished after stop."))
        await stopping
        assert answer is not None
        assert not any("How it works" in m.text for m in tg.messages(chat))

        await world.restart()  # the update was not consumed: the next process answers it
        await tg.wait_for_message(chat, contains="How it works")


# ---- one analysis per chat ------------------------------------------------------------------


async def test_concurrent_questions_in_one_chat_make_one_model_request(tmp_path: Path) -> None:
    async with bot_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        gate = asyncio.Event()
        llm.enqueue(Scenario().text("Only one answer.").stall(after=3, gate=gate))
        for question in ("First?", "Second?", "Third?"):
            tg.send_text(chat, ann, question)

        busy = await tg.wait_for(
            lambda: (
                len(b := [m for m in tg.messages(chat) if "already running" in m.text]) == 2 and b
            )
        )
        assert all(any("Cancel" in b["text"] for b in m.buttons) for m in busy)
        gate.set()
        await tg.wait_for_message(chat, predicate=answered("Only one answer."))
        assert len(llm.response_requests()) == 1


async def test_two_instances_sharing_redis_hold_one_lock_and_cancel_across(
    tmp_path: Path, redis_url: str
) -> None:
    async with bot_world(tmp_path / "a", redis_url=redis_url) as world:
        tg, llm = world.tg, world.llm
        world.services.analyses.heartbeat_seconds = 0.05  # notices a remote cancel quickly
        other = await build_services(settings_for(tg, llm, tmp_path / "b", redis_url=redis_url))
        try:
            ann, chat = await person_with_sales(tg)
            llm.enqueue(Scenario().text("never").stall(after=3))
            tg.send_text(chat, ann, "Slow question on instance A")
            [progress] = await tg.wait_for(lambda: progress_messages(world, chat))

            request = AnalysisRequest(chat_id=chat.id, user_id=ann.id, question="From B")
            with pytest.raises(AnalysisRefused) as refused:
                async with other.analyses.begin(request):
                    pass
            running_id = refused.value.analysis_id
            assert refused.value.reason is RefusalReason.BUSY
            assert progress.buttons[0]["callback_data"].endswith(running_id)

            assert await other.analyses.cancel(chat.id, running_id)
            cancelled = await tg.wait_for_message(chat, contains="Cancelled")
            assert cancelled.message_id == progress.message_id
            assert not cancelled.buttons
            assert await llm.wait_for_disconnect()
            assert len(llm.response_requests()) == 1

            await ask(world, chat, ann, "Now?", "Free again.")  # the chat is not stuck
        finally:
            await other.aclose()


# ---- caps -----------------------------------------------------------------------------------


async def test_file_count_cap_refuses_the_extra_file_and_keeps_the_others(
    tmp_path: Path,
) -> None:
    async with bot_world(tmp_path, max_files_per_chat=2) as world:
        tg = world.tg
        ann, chat = await person_with_sales(tg)
        await upload(tg, chat, ann, "cities.csv", OTHER_CSV)
        tg.send_document(chat, ann, "third.csv", b"a,b\n1,2\n3,4\n", mime_type="text/csv")
        refusal = await tg.wait_for_message(chat, contains="maximum")
        assert "already has 2 files" in refusal.text
        assert "/files" in refusal.text

        listing = (await files_listing(tg, chat, ann)).text
        assert "sales.csv" in listing
        assert "cities.csv" in listing
        assert "third.csv" not in listing
        stored = sorted(p.name for p in (tmp_path / "files" / str(chat.id)).iterdir())
        assert stored == ["cities.csv", "sales.csv"]


async def test_chat_bytes_cap_refuses_a_file_that_does_not_fit(tmp_path: Path) -> None:
    cap = len(SALES_CSV) + len(OTHER_CSV) - 1
    async with bot_world(tmp_path, max_chat_bytes=cap) as world:
        tg = world.tg
        ann, chat = await person_with_sales(tg)
        tg.send_document(chat, ann, "cities.csv", OTHER_CSV, mime_type="text/csv")
        refusal = await tg.wait_for_message(chat, contains="does not fit")
        assert f"{len(OTHER_CSV)} B" in refusal.text
        assert f"{cap} B" in refusal.text
        assert f"{len(SALES_CSV)} B are used" in refusal.text

        listing = (await files_listing(tg, chat, ann)).text
        assert "cities.csv" not in listing
        assert [p.name for p in (tmp_path / "files" / str(chat.id)).iterdir()] == ["sales.csv"]


# ---- no half files --------------------------------------------------------------------------


async def test_a_failed_download_leaves_no_file_and_the_chat_unchanged(tmp_path: Path) -> None:
    async with bot_world(tmp_path) as world:
        tg = world.tg
        ann, chat = await person_with_sales(tg)
        sent = tg.send_document(chat, ann, "broken.csv", OTHER_CSV, mime_type="text/csv")
        lose_download(tg, sent)  # Telegram loses it between getFile and the download (404)

        failed = await tg.wait_for_message(chat, contains="could not download")
        assert "broken.csv" in failed.text
        assert "send it again" in failed.text
        assert [p.name for p in (tmp_path / "files" / str(chat.id)).iterdir()] == ["sales.csv"]
        listing = (await files_listing(tg, chat, ann)).text
        assert "sales.csv" in listing
        assert "broken.csv" not in listing


async def test_stop_waits_for_a_reply_held_up_by_flood_control(tmp_path: Path) -> None:
    async with bot_world(tmp_path, flood=FloodLimits(private_burst=1)) as world:
        tg = world.tg
        ann, chat = person(tg)
        tg.send_text(chat, ann, "/help")
        await tg.wait_for_message(chat, contains="How it works")
        tg.send_text(chat, ann, "/language")  # its reply must wait for Telegram's retry_after
        await tg.wait_for(lambda: tg.flood_refusals)

        await world.app.stop()

        assert any("Choose the language" in m.text for m in tg.messages(chat))
        await world.restart()  # so that the world's exit has a running app to stop
