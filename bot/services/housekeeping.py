"""Periodic upkeep: report analyses interrupted by a stop or crash, and remove the files
of chats idle longer than the retention period (locally and remotely)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.services.analysis import AnalysisService
from bot.services.files import ChatBusy, ChatFiles
from bot.storage.base import ActiveAnalysis, Store

log = logging.getLogger(__name__)

InterruptedHandler = Callable[[ActiveAnalysis], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class HousekeepingReport:
    interrupted: int
    expired_chats: int


class Housekeeper:
    def __init__(
        self,
        store: Store,
        files: ChatFiles,
        analyses: AnalysisService,
        *,
        retention: timedelta,
        on_interrupted: InterruptedHandler,
        interval: float = 60.0,
    ) -> None:
        self._store = store
        self._files = files
        self._analyses = analyses
        self.retention = retention
        self.interval = interval
        self._on_interrupted = on_interrupted

    async def report_interrupted(self) -> int:
        stale = await self._analyses.claim_interrupted()
        for analysis in stale:
            try:
                await self._on_interrupted(analysis)
            except Exception:
                log.warning(
                    "could not report interrupted analysis=%s", analysis.analysis_id, exc_info=True
                )
        return len(stale)

    async def expire_idle_chats(self, now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        chats = await self._store.idle_chats(now - self.retention)
        for chat_id in chats:
            if self._analyses.running(chat_id) is not None:
                continue
            if await self._store.get_analysis(chat_id) is not None:
                continue  # an analysis runs on another instance (or awaits its report)
            try:
                removed = await self._files.reset(chat_id)
            except ChatBusy:
                continue  # an analysis began meanwhile
            log.info("retention: removed %d files of idle chat=%s", len(removed), chat_id)
        return len(chats)

    async def run_once(self, now: datetime | None = None) -> HousekeepingReport:
        interrupted = await self.report_interrupted()
        expired = await self.expire_idle_chats(now)
        return HousekeepingReport(interrupted, expired)

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("housekeeping failed; will retry")
            await asyncio.sleep(self.interval)
