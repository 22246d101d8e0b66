"""Faults that must lose nothing, each reproduced against the real services (real SQLite or
a real Redis, the Responses fake as the model) with storage faults injected by `FlakyStore`.

| fault                                             | what must hold                              |
|---------------------------------------------------|---------------------------------------------|
| the store fails while the answer is recorded      | the answer arrives; the id is saved on retry|
| the store never takes the release of the claim    | no false "interrupted by a restart" later   |
| the code following an analysis crashes            | the engine run stops at once, slot freed    |
| a file removal overlaps a question in the chat    | the removed file is not given to the model  |
| a refund happens on the day after the claim       | the quota goes back to the day it was taken |
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app import Services
from bot.engine.types import FailureReason, TurnFailed, TurnFinished, TurnStarted
from bot.services.analysis import (
    AnalysisRefused,
    AnalysisRequest,
    AnalysisService,
    Quotas,
    RefusalReason,
)
from bot.services.files import ChatFiles
from bot.storage import LocalFileStore
from tests.bot.harness import SALES_CSV, png
from tests.fakes.flaky_store import FlakyStore
from tests.fakes.responses_api import ResponsesFake, Scenario
from tests.services.conftest import ServicesFactory
from tests.services.test_housekeeping import add_upload

OTHER_CSV = b"city,visits\nParis,10\nRome,7\n"


def analyses_on(services: Services, store: FlakyStore, **kwargs: Any) -> AnalysisService:
    """The instance's analyses, built over the faulty store."""
    options: dict[str, Any] = {
        "quotas": Quotas(per_user=5, per_chat=None),
        "conversation_ttl": timedelta(hours=1),
    }
    return AnalysisService(store, services.engine, **(options | kwargs))  # type: ignore[arg-type]


async def finish(analyses: AnalysisService, chat: int, question: str = "Revenue?") -> list[Any]:
    async with analyses.begin(AnalysisRequest(chat, 7, question, "en")) as analysis:
        return [event async for event in analysis.events()]


async def test_a_store_failing_while_the_answer_is_recorded_still_gives_the_answer(
    make_services: ServicesFactory, llm: ResponsesFake
) -> None:
    services = await make_services()
    store = FlakyStore(services.store)
    analyses = analyses_on(services, store)
    chat = 101
    await add_upload(services, chat, "sales.csv", SALES_CSV)
    store.fail("set_last_response", times=2)
    store.fail("record_usage", times=2)
    llm.enqueue(Scenario().code("plot()", images=[png()]).text("East leads."))

    events = await finish(analyses, chat)

    [finished] = [e for e in events if isinstance(e, TurnFinished)]
    assert finished.result.text == "East leads."
    assert len(finished.result.artifacts) == 1  # the chart survives the fault
    # The bookkeeping was retried (after the answer was out): follow-ups continue the chain.
    await analyses.wait_settled()
    conversation = await services.store.get_conversation(chat)
    assert conversation.last_response_id == finished.result.response_id
    usage = await services.store.user_usage(datetime.now(UTC).date(), 7)
    assert usage.input_tokens > 0


async def test_a_store_that_stays_down_still_lets_the_answer_out(
    make_services: ServicesFactory, llm: ResponsesFake
) -> None:
    services = await make_services()
    store = FlakyStore(services.store)
    analyses = analyses_on(services, store)
    chat = 102
    await add_upload(services, chat, "sales.csv", SALES_CSV)
    store.fail("set_last_response")
    store.fail("record_usage")
    llm.enqueue(Scenario().text("Still here."))

    closed = asyncio.Event()

    async def follow() -> list[Any]:
        try:
            return await finish(analyses, chat)
        finally:
            closed.set()

    following = asyncio.create_task(follow())
    async with asyncio.timeout(3):  # the store's retries do not hold the answer back
        await closed.wait()
    events = await following
    assert isinstance(events[-1], TurnFinished)
    assert events[-1].result.text == "Still here."
    assert analyses.running(chat) is None


async def test_a_claim_the_store_would_not_release_is_not_reported_as_interrupted(
    make_services: ServicesFactory, llm: ResponsesFake
) -> None:
    services = await make_services()
    store = FlakyStore(services.store)
    analyses = analyses_on(services, store, lease_seconds=0.3)
    chat = 103
    await add_upload(services, chat, "sales.csv", SALES_CSV)
    store.fail("end_analysis")
    llm.enqueue(Scenario().text("Delivered."))

    events = await finish(analyses, chat)
    assert isinstance(events[-1], TurnFinished)
    assert await services.store.get_analysis(chat) is not None  # the store kept it

    await asyncio.sleep(0.4)  # its lease lapses
    assert await analyses.claim_interrupted() == []  # nothing false to report
    assert await services.store.get_analysis(chat) is None  # and the chat is free again


async def test_a_consumer_that_crashes_stops_its_engine_run_at_once(
    make_services: ServicesFactory, llm: ResponsesFake
) -> None:
    services = await make_services(max_concurrent_analyses=1)
    chat, other = 104, 105
    await add_upload(services, chat, "sales.csv", SALES_CSV)
    await add_upload(services, other, "cities.csv", OTHER_CSV)
    llm.enqueue(Scenario().text("never").stall(after=3, seconds=60))
    llm.enqueue(Scenario().text("The next one runs."))

    class RenderingBug(Exception):
        pass

    async def follow_with_a_bug() -> None:
        async with services.analyses.begin(AnalysisRequest(chat, 7, "Slow?", "en")) as analysis:
            async for event in analysis.events():
                if isinstance(event, TurnStarted):
                    raise RenderingBug

    with pytest.raises(RenderingBug):
        await follow_with_a_bug()

    assert await llm.wait_for_disconnect(timeout=2)  # the stream was closed, not left to run
    assert services.engine.busy == 0  # and the only slot is free: the next turn starts now
    async with asyncio.timeout(5):
        events = await finish(services.analyses, other)
    assert isinstance(events[-1], TurnFinished)


async def test_a_question_waits_for_a_file_removal_in_the_same_chat(
    make_services: ServicesFactory, llm: ResponsesFake
) -> None:
    services = await make_services()
    store = FlakyStore(services.store)
    local = LocalFileStore(services.settings.data_dir / "files")
    files = ChatFiles(store, local, services.engine, services.files.limits)  # type: ignore[arg-type]
    analyses = analyses_on(services, store)
    chat = 106
    await add_upload(services, chat, "sales.csv", SALES_CSV)
    await add_upload(services, chat, "cities.csv", OTHER_CSV)
    sales, cities = await services.files.list_files(chat)
    llm.enqueue(Scenario().text("Only cities."))
    # Warm the remote copies, so that the removal has one to delete.
    await finish(analyses, chat, "Warm up?")
    llm.enqueue(Scenario().text("Only cities."))

    entered, release = store.hold("remove_file")
    removing = asyncio.create_task(files.remove(chat, sales.file_key))
    await entered.wait()  # the removal holds the chat, mid-way
    asking = asyncio.create_task(finish(analyses, chat, "What is left?"))
    await asyncio.sleep(0.2)
    assert not asking.done()  # the question waits for the removal
    release.set()
    assert (await removing) is not None
    events = await asking

    assert isinstance(events[-1], TurnFinished)
    last = llm.response_requests()[-1].json
    sent = last["tools"][0]["container"]["file_ids"]
    assert len(sent) == 1  # only the remaining file,
    assert sent[0] in llm.files  # whose remote copy is alive
    assert [f.stored_name for f in await services.files.list_files(chat)] == [cities.stored_name]


async def test_a_quota_refund_goes_back_to_the_day_it_was_taken(
    make_services: ServicesFactory, llm: ResponsesFake
) -> None:
    services = await make_services()
    midnight = datetime(2026, 11, 30, tzinfo=UTC)
    now = [midnight - timedelta(seconds=1)]
    analyses = analyses_on(
        services, FlakyStore(services.store), clock=lambda: now[0], quotas=Quotas(1, None)
    )
    chat = 107
    await add_upload(services, chat, "sales.csv", SALES_CSV)
    llm.enqueue(Scenario().http_error(503))  # never reaches the model: refunded

    async with analyses.begin(AnalysisRequest(chat, 7, "Late question", "en")) as analysis:
        now[0] = midnight + timedelta(seconds=1)  # the day turns while it runs
        events = [event async for event in analysis.events()]
    assert isinstance(events[-1], TurnFailed)
    assert events[-1].reason is not FailureReason.CANCELLED

    before, after = midnight.date() - timedelta(days=1), midnight.date()
    assert (await services.store.user_usage(before, 7)).analyses == 0
    assert (await services.store.user_usage(after, 7)).analyses == 0
    # The day before midnight has its one analysis back: asking then is allowed again.
    now[0] = midnight - timedelta(seconds=1)
    llm.enqueue(Scenario().text("Allowed."))
    events = await finish(analyses, chat)
    assert isinstance(events[-1], TurnFinished)
    with pytest.raises(AnalysisRefused) as refused:
        await finish(analyses, chat)
    assert refused.value.reason is RefusalReason.QUOTA_USER
