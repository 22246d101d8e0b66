"""A chat's files do not change under a running analysis, whichever instance runs it."""

from __future__ import annotations

import pytest

from bot.services.analysis import AnalysisRequest
from bot.services.files import ChatBusy
from tests.bot.harness import SALES_CSV
from tests.services.conftest import ServicesFactory
from tests.services.test_housekeeping import add_upload


async def test_remove_and_reset_wait_for_an_analysis_on_another_instance(
    make_services: ServicesFactory,
) -> None:
    this, other = await make_services(), await make_services()
    chat = 404
    await add_upload(this, chat, "sales.csv", SALES_CSV)
    [record] = await this.files.list_files(chat)
    async with other.analyses.begin(AnalysisRequest(chat, 7, "Long question", "en")):
        with pytest.raises(ChatBusy):
            await this.files.remove(chat, record.file_key)
        with pytest.raises(ChatBusy):
            await this.files.reset(chat)
        assert len(await this.files.list_files(chat)) == 1
    assert await this.files.remove(chat, record.file_key) is not None
    assert await this.files.list_files(chat) == []
