"""`open_store` picks the backend from the settings."""

from __future__ import annotations

from pathlib import Path

from bot.config import Settings
from bot.storage import RedisStore, SqliteStore, open_store


def settings(data_dir: Path, redis_url: str | None = None) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_bot_token="123:abc",
        llm_provider="openai",
        openai_api_key="sk-test",
        data_dir=data_dir,
        redis_url=redis_url,
    )


async def test_sqlite_in_data_dir_by_default(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = await open_store(settings(data_dir))
    try:
        assert isinstance(store, SqliteStore)
        assert await store.ping()
        assert (data_dir / "state.sqlite3").is_file()
    finally:
        await store.close()


async def test_redis_when_configured(tmp_path: Path, redis_url: str) -> None:
    store = await open_store(settings(tmp_path / "data", redis_url))
    try:
        assert isinstance(store, RedisStore)
        assert await store.ping()
        assert redis_url not in repr(store)
        assert (tmp_path / "data").is_dir()
    finally:
        await store.close()
