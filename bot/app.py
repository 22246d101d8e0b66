"""Composition root: builds the services from settings (no Telegram here) and closes them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from bot.catalog import Catalog, load_catalog
from bot.config import Settings
from bot.engine import AnalysisEngine
from bot.services.access import AccessPolicy
from bot.services.analysis import AnalysisService
from bot.services.answers import Answers
from bot.services.files import ChatFiles
from bot.services.limits import Limits
from bot.services.people import People
from bot.services.preferences import Preferences
from bot.storage import LocalFileStore, RedisStore, open_store
from bot.storage.base import Store
from bot.storage.redis_limits import RedisLocks, RedisSemaphore, RedisTokenBucket

log = logging.getLogger(__name__)

SHARED_PREFIX = "dab:shared:"


@dataclass(slots=True)
class SharedLimits:
    """What instances on one Redis share (REDIS_URL set): the Telegram budget of the bot's
    token (`try_take() -> float`: 0.0 a token was taken, else seconds to wait), the analysis
    slots of the model account (MAX_CONCURRENT_ANALYSES for the whole deployment, one FIFO
    queue), and a lock per chat that keeps a chat's requests to Telegram in order."""

    telegram_budget: RedisTokenBucket | None
    analysis_slots: RedisSemaphore
    chat_sends: RedisLocks

    @classmethod
    def for_store(cls, settings: Settings, store: RedisStore) -> SharedLimits:
        client = store.client
        # Names carry no secret: the bot's numeric id (the token's part before ":") and the
        # model account (the Yandex folder, or the provider).
        bot_id = settings.telegram_bot_token.get_secret_value().partition(":")[0]
        account = (
            f"yandex:{settings.yandex_folder_id}"
            if settings.llm_provider == "yandex"
            else f"{settings.llm_provider}:{settings.llm_base_url or 'default'}"
        )
        rate = settings.telegram_messages_per_second
        return cls(
            telegram_budget=(
                RedisTokenBucket(client, f"{SHARED_PREFIX}bucket:telegram:{bot_id}", rate=rate)
                if rate > 0
                else None
            ),
            analysis_slots=RedisSemaphore(
                client,
                f"{SHARED_PREFIX}sem:analyses:{account}",
                settings.max_concurrent_analyses,
                lease=settings.shared_lease_seconds,
            ),
            chat_sends=RedisLocks(client, f"{SHARED_PREFIX}lock:chat:{bot_id}"),
        )


@dataclass(slots=True)
class Services:
    settings: Settings
    store: Store
    engine: AnalysisEngine
    files: ChatFiles
    analyses: AnalysisService
    catalog: Catalog
    access: AccessPolicy
    limits: Limits
    people: People
    preferences: Preferences
    answers: Answers
    shared: SharedLimits | None = None  # None: a single instance (no REDIS_URL)

    async def aclose(self) -> None:
        try:
            try:
                await self.engine.aclose()
            finally:
                if self.shared is not None:  # its slots would otherwise wait for their leases
                    await self.shared.analysis_slots.aclose()
        finally:
            await self.store.close()


async def build_services(settings: Settings, *, catalog: Catalog | None = None) -> Services:
    catalog = catalog or load_catalog(settings.datasets_dir)  # a broken one fails before we open
    store = await open_store(settings)
    try:
        local = LocalFileStore(settings.data_dir / "files")
        await local.cleanup_temp_files()
        shared = SharedLimits.for_store(settings, store) if isinstance(store, RedisStore) else None
        engine = AnalysisEngine.from_settings(
            settings, store, limiter=shared.analysis_slots if shared else None
        )
        try:
            await engine.start()  # CODE_EXECUTION=local: the sandbox self-check
        except BaseException:
            await engine.aclose()
            raise
        limits = Limits.from_settings(settings)
        files = ChatFiles(store, local, engine, limits.files)
        analyses = AnalysisService(
            store,
            engine,
            quotas=limits.quotas,
            conversation_ttl=timedelta(hours=settings.conversation_ttl_hours),
        )
    except BaseException:
        await store.close()
        raise
    return Services(
        settings=settings,
        store=store,
        engine=engine,
        files=files,
        analyses=analyses,
        catalog=catalog,
        access=AccessPolicy.from_settings(settings),
        limits=limits,
        people=People(store),
        preferences=Preferences(store, rich_answers=settings.rich_answers == "auto"),
        answers=Answers(store, local),
        shared=shared,
    )
