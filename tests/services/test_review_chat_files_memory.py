"""What the file service keeps in memory per chat does not grow with every chat that ever
sent a file (a long-running bot meets millions of chats)."""

from __future__ import annotations

import asyncio

from tests.bot.harness import SALES_CSV
from tests.services.conftest import ServicesFactory


async def test_per_chat_bookkeeping_is_dropped_once_a_chat_is_idle(
    make_services: ServicesFactory,
) -> None:
    services = await make_services()
    files = services.files
    dataset = services.catalog.all()[0]

    async def add(chat_id: int) -> None:
        temp = files.new_temp_path(chat_id)
        await asyncio.to_thread(temp.write_bytes, SALES_CSV)
        await files.add_upload(chat_id, "sales.csv", temp)
        await files.add_dataset(chat_id, dataset)

    await asyncio.gather(*(add(chat_id) for chat_id in range(1, 41)))

    for chat_id in range(1, 41):
        assert len(await files.list_files(chat_id)) == 2
    assert len(files._locks) == 0  # one entry per chat seen, before
