"""Durable state: the `Store` contract, its SQLite and Redis implementations, and the
local copies of the chats' files."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from redis import exceptions as redis_errors

from bot.storage.base import (
    DATASET_SCOPE,
    FOLLOW_UPS_KEPT,
    ActiveAnalysis,
    Conversation,
    FollowUps,
    QuotaCheck,
    Store,
    StoredFile,
    UsageTotals,
    remote_scope,
)
from bot.storage.files import LocalFileStore, safe_filename
from bot.storage.redis import RedisStore
from bot.storage.sqlite import SchemaTooNewError, SqliteStore

if TYPE_CHECKING:
    from bot.config import Settings

__all__ = [
    "DATASET_SCOPE",
    "FOLLOW_UPS_KEPT",
    "ActiveAnalysis",
    "Conversation",
    "FollowUps",
    "LocalFileStore",
    "QuotaCheck",
    "RedisStore",
    "SchemaTooNewError",
    "SqliteStore",
    "Store",
    "StoredFile",
    "UsageTotals",
    "open_store",
    "remote_scope",
    "safe_filename",
    "store_unavailable",
]

SQLITE_FILE_NAME = "state.sqlite3"


async def open_store(settings: Settings) -> Store:
    """Open the configured store: Redis when REDIS_URL is set, else SQLite in DATA_DIR.

    Creates DATA_DIR. The caller closes the store on shutdown.
    """
    await asyncio.to_thread(settings.data_dir.mkdir, parents=True, exist_ok=True)
    store: Store
    if settings.redis_url is not None:
        store = RedisStore(settings.redis_url.get_secret_value())
    else:
        store = SqliteStore(settings.data_dir / SQLITE_FILE_NAME)
    await store.open()
    return store


def store_unavailable(error: BaseException) -> bool:
    """The store's server cannot be reached for now (Redis down or not started yet, a
    network blip): worth retrying, unlike a wrong password or a schema too new."""
    if isinstance(error, redis_errors.AuthenticationError | redis_errors.AuthorizationError):
        return False
    return isinstance(
        error,
        redis_errors.ConnectionError | redis_errors.TimeoutError | ConnectionError | TimeoutError,
    )
