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
from bot.storage import LocalFileStore, open_store
from bot.storage.base import Store

log = logging.getLogger(__name__)


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
        catalog=catalog or load_catalog(settings.datasets_dir),
        access=AccessPolicy.from_settings(settings),
        limits=limits,
        people=People(store),
        preferences=Preferences(store, rich_answers=settings.rich_answers == "auto"),
        answers=Answers(store, local),
    )
