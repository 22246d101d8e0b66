"""An analysis whose lease lapsed (its renewals failed) may be taken over by a new one in the
same chat; when the old one closes, the new one must still count as running here (or /reset,
file removal and a graceful stop would ignore it)."""

from __future__ import annotations

import asyncio

from bot.services.analysis import AnalysisRequest
from tests.services.conftest import ServicesFactory
from tests.services.test_housekeeping import add_upload

SALES = b"region,revenue\nEast,10\nWest,7\n"


async def test_closing_a_taken_over_analysis_leaves_the_new_one_running(
    make_services: ServicesFactory,
) -> None:
    services = await make_services()
    analyses = services.analyses
    chat = 606
    await add_upload(services, chat, "sales.csv", SALES)

    analyses.lease_seconds, analyses.heartbeat_seconds = 0.05, 3600.0  # never renewed
    async with analyses.begin(AnalysisRequest(chat, 7, "First", "en")):
        await asyncio.sleep(0.1)  # its lease lapses
        analyses.lease_seconds = 45.0
        opening = analyses.begin(AnalysisRequest(chat, 8, "Second", "en"))
        new = await opening.__aenter__()

    assert analyses.running(chat) is new
    claim = await services.store.get_analysis(chat)
    assert claim is not None
    assert claim.analysis_id == new.id
    await opening.__aexit__(None, None, None)
    assert analyses.running(chat) is None
    assert await services.store.get_analysis(chat) is None
