"""`ping()` answers what /healthz needs: False when the backend is gone, never raises."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis.exceptions

from bot.storage import RedisStore, SqliteStore
from tests.fixtures.redis_server import RedisServer, start_redis_server, stop_redis_server


async def test_redis_ping_turns_false_when_the_server_goes_away(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # a private server, so stopping it does not disturb the shared one
    own = start_redis_server(shutil.which("redis-server") or "redis-server", tmp_path)
    store = RedisStore(own.url)
    try:
        await store.open()
        assert await store.ping()
        stop_redis_server(own.process)
        assert not await store.ping()
    finally:
        stop_redis_server(own.process)
        await store.close()


async def test_redis_open_fails_when_unreachable_without_showing_the_password() -> None:
    store = RedisStore("redis://:s3cret-pass@127.0.0.1:1/0")
    with pytest.raises(redis.exceptions.ConnectionError) as error:
        await store.open()
    assert "s3cret-pass" not in str(error.value)
    assert "s3cret-pass" not in repr(store)
    assert not await store.ping()


async def test_sqlite_ping_is_false_once_closed(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.sqlite3")
    await store.open()
    assert await store.ping()
    await store.close()
    assert not await store.ping()
