"""Composition root: builds the services from settings (no Telegram here) and closes them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from bot.catalog import Catalog, load_catalog
from bot.config import Settings
from bot.engine import AnalysisEngine
from bot.services.access import AccessPolicy
from bot.services.analysis import AnalysisService, Quotas
from bot.services.files import ChatFiles, FileLimits
from bot.storage import LocalFileStore, open_store
from bot.storage.base import Store

log = logging.getLogger(__name__)

TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # cloud Bot API getFile limit


@dataclass(slots=True)
class Services:
    settings: Settings
    store: Store
    engine: AnalysisEngine
    files: ChatFiles
    analyses: AnalysisService
    catalog: Catalog
    access: AccessPolicy

    async def aclose(self) -> None:
        try:
            await self.engine.aclose()
        finally:
            await self.store.close()


async def build_services(settings: Settings, *, catalog: Catalog | None = None) -> Services:
    store = await open_store(settings)
    try:
        local = LocalFileStore(settings.data_dir / "files")
        await local.cleanup_temp_files()
        engine = AnalysisEngine.from_settings(settings, store)
        try:
            await engine.start()  # CODE_EXECUTION=local: the sandbox self-check
        except BaseException:
            await engine.aclose()
            raise
        limits = FileLimits(
            max_files=settings.max_files_per_chat,
            max_chat_bytes=settings.max_chat_bytes,
            max_download_bytes=None if settings.telegram_api_local else TELEGRAM_DOWNLOAD_LIMIT,
        )
        files = ChatFiles(store, local, engine, limits)
        analyses = AnalysisService(
            store,
            engine,
            quotas=Quotas(per_user=settings.daily_user_quota, per_chat=settings.daily_chat_quota),
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
        catalog=catalog or load_catalog(),
        access=AccessPolicy.from_settings(settings),
    )
