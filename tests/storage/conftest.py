"""Store fixtures: every behaviour test runs against both backends (SQLite on a temp file,
Redis on the real server from tests/fixtures/redis_server.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bot.storage import RedisStore, SqliteStore, Store

StoreFactory = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["sqlite", "redis"])
async def open_new_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    """Opens a new store instance on the same backing data each time it is called (two
    instances = two processes sharing the state); all are closed at the end."""
    opened: list[Store] = []
    if request.param == "sqlite":
        path = tmp_path / "state.sqlite3"

        def make() -> Store:
            return SqliteStore(path)
    else:
        url = request.getfixturevalue("redis_url")

        def make() -> Store:
            return RedisStore(url, prefix="test:")

    async def factory() -> Store:
        store = make()
        await store.open()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_new_store: StoreFactory) -> Store:
    return await open_new_store()
