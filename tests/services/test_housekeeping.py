"""Retention and interrupted analyses, through the real services and a real backend."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.app import Services
from bot.engine.types import TurnStarted
from bot.services.analysis import AnalysisRequest
from bot.services.housekeeping import Housekeeper
from bot.storage.base import ActiveAnalysis
from tests.bot.harness import SALES_CSV
from tests.fakes.responses_api import ResponsesFake, Scenario
from tests.services.conftest import ServicesFactory

OTHER_CSV = b"city,visits\nParis,10\nRome,7\nOslo,3\n"
RETENTION = timedelta(days=30)


async def add_upload(services: Services, chat_id: int, name: str, data: bytes) -> None:
    temp = services.files.new_temp_path(chat_id)
    await asyncio.to_thread(temp.write_bytes, data)
    await services.files.add_upload(chat_id, name, temp)


async def run_turn(services: Services, llm: ResponsesFake, chat_id: int, answer: str) -> None:
    llm.enqueue(Scenario().text(answer))
    async with services.analyses.begin(AnalysisRequest(chat_id, 7, "Total?", "en")) as analysis:
        events = [type(e).__name__ async for e in analysis.events()]
    assert events[-1] == "TurnFinished", events


def housekeeper(services: Services, reported: list[ActiveAnalysis] | None = None) -> Housekeeper:
    async def report(analysis: ActiveAnalysis) -> None:
        if reported is not None:
            reported.append(analysis)

    return Housekeeper(
        services.store,
        services.files,
        services.analyses,
        retention=RETENTION,
        on_interrupted=report,
    )


def deleted_remote_ids(llm: ResponsesFake) -> list[str]:
    return [r.path.rsplit("/", 1)[1] for r in llm.requests if r.method == "DELETE"]


async def test_idle_chats_lose_their_files_locally_and_remotely_active_ones_keep_them(
    make_services: ServicesFactory, llm: ResponsesFake, tmp_path: Path
) -> None:
    services = await make_services()
    idle, active = 101, 202
    dataset = services.catalog.all()[0]
    await add_upload(services, idle, "sales.csv", SALES_CSV)
    await services.files.add_dataset(idle, dataset)
    await run_turn(services, llm, idle, "Idle chat's answer.")
    [idle_upload, dataset_copy] = [f.id for f in llm.uploads]
    cutoff = datetime.now(UTC)  # the active chat's activity comes after it
    await add_upload(services, active, "cities.csv", OTHER_CSV)
    await run_turn(services, llm, active, "Active chat's answer.")
    active_upload = llm.uploads[-1].id

    expired = await housekeeper(services).expire_idle_chats(now=cutoff + RETENTION)

    assert expired == 1
    assert await services.files.list_files(idle) == []
    assert not (tmp_path / "data" / "files" / str(idle)).exists()
    assert deleted_remote_ids(llm) == [idle_upload]  # the shared dataset copy stays
    assert dataset_copy in llm.files
    assert (await services.store.get_conversation(idle)).last_response_id is None

    [kept] = await services.files.list_files(active)
    assert await asyncio.to_thread(Path(kept.path).read_bytes) == OTHER_CSV
    assert active_upload in llm.files
    assert (await services.store.get_conversation(active)).last_response_id is not None

    await run_turn(services, llm, active, "Still works.")  # the active chat is untouched
    assert llm.response_requests()[-1].json["tools"][0]["container"]["file_ids"] == [active_upload]


async def test_retention_spares_a_chat_whose_analysis_runs_on_another_instance(
    make_services: ServicesFactory, llm: ResponsesFake, backend: dict[str, str]
) -> None:
    this, other = await make_services(), await make_services()
    chat = 303
    await add_upload(this, chat, "sales.csv", SALES_CSV)
    async with other.analyses.begin(AnalysisRequest(chat, 7, "Long question", "en")):
        future = datetime.now(UTC) + RETENTION + timedelta(days=1)
        await housekeeper(this).expire_idle_chats(now=future)
        assert len(await this.files.list_files(chat)) == 1


async def test_conversation_idle_longer_than_its_ttl_starts_fresh(
    make_services: ServicesFactory, llm: ResponsesFake
) -> None:
    ttl_hours = 0.05 / 3600  # 50 ms
    services = await make_services(conversation_ttl_hours=ttl_hours)
    chat = 404
    await add_upload(services, chat, "sales.csv", SALES_CSV)
    await run_turn(services, llm, chat, "First.")
    await asyncio.sleep(0.1)  # the conversation expires
    await run_turn(services, llm, chat, "Second.")
    first, second = (r.json for r in llm.response_requests())
    assert "previous_response_id" not in first
    assert second.get("previous_response_id") is None
    assert second["tools"][0]["container"]["file_ids"] == first["tools"][0]["container"]["file_ids"]


async def test_an_interrupted_analysis_is_reported_by_exactly_one_instance(
    make_services: ServicesFactory, llm: ResponsesFake
) -> None:
    first = await make_services()
    chat = 505
    await add_upload(first, chat, "sales.csv", SALES_CSV)
    llm.enqueue(Scenario().text("never").stall(after=2))
    started = asyncio.Event()

    async def drain() -> None:
        request = AnalysisRequest(chat, 7, "Cut short", "en")
        async with first.analyses.begin(request) as analysis:
            await analysis.set_progress_message(42)
            async for event in analysis.events():
                if isinstance(event, TurnStarted):
                    started.set()

    draining = asyncio.create_task(drain())
    await asyncio.wait_for(started.wait(), timeout=5)
    await first.analyses.shutdown(grace=0)
    await draining

    reported: list[ActiveAnalysis] = []
    a, b = await make_services(), await make_services()
    counts = await asyncio.gather(
        housekeeper(a, reported).report_interrupted(),
        housekeeper(b, reported).report_interrupted(),
        housekeeper(first, reported).report_interrupted(),
    )
    assert sorted(counts) == [0, 0, 1]
    [stale] = reported
    assert (stale.chat_id, stale.question, stale.progress_message_id) == (chat, "Cut short", 42)
    assert stale.language == "en"
