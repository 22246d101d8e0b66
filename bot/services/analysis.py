"""Running analyses: one per chat (enforced by the store), quotas, conversation context,
usage accounting, cancellation and graceful shutdown.

The Telegram layer calls `begin()`, renders the events of `Analysis.events()` and finally
calls `Analysis.close()`. The per-chat claim is a lease in the store, renewed while the
analysis runs, so it holds across bot instances sharing Redis, and an analysis whose
process died is found later by `claim_interrupted()` and reported to its chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from bot.engine.types import (
    EngineEvent,
    TurnFailed,
    TurnFinished,
    TurnRequest,
    TurnStarted,
)
from bot.services.files import to_data_file
from bot.storage.base import ActiveAnalysis, Store

log = logging.getLogger(__name__)


class TurnRunLike(Protocol):
    def __aiter__(self) -> AsyncIterator[EngineEvent]: ...

    def cancel(self) -> None: ...


class Engine(Protocol):
    def run(self, request: TurnRequest) -> TurnRunLike: ...


class RefusalReason(StrEnum):
    NO_FILES = "no_files"
    BUSY = "busy"
    QUOTA_USER = "quota_user"
    QUOTA_CHAT = "quota_chat"
    SHUTTING_DOWN = "shutting_down"


class AnalysisRefused(Exception):
    def __init__(self, reason: RefusalReason, *, limit: int = 0, analysis_id: str = "") -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.limit = limit
        self.analysis_id = analysis_id  # the running one, for BUSY


@dataclass(frozen=True, slots=True)
class AnalysisRequest:
    chat_id: int
    user_id: int
    question: str
    language: str = "ru"
    thread_id: int | None = None
    is_admin: bool = False


@dataclass(frozen=True, slots=True)
class Quotas:
    per_user: int | None  # analyses per user per day; None = unlimited
    per_chat: int | None


def _today() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class Analysis:
    """One running analysis. Iterate `events()` once, then `close()`."""

    id: str
    request: AnalysisRequest
    _service: AnalysisService
    _turn: TurnRequest
    started: float = field(default_factory=time.monotonic)
    interrupted_by_shutdown: bool = False
    cancelled_by_user: bool = False
    _run: TurnRunLike | None = None
    _done: asyncio.Event = field(default_factory=asyncio.Event)
    _reached_model: bool = False
    _closed: bool = False

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def cancel(self, *, by_user: bool = True) -> None:
        self.cancelled_by_user = self.cancelled_by_user or by_user
        if self._run is not None:
            self._run.cancel()

    async def set_progress_message(self, message_id: int) -> None:
        await self._service._store.update_analysis(
            self.request.chat_id, self.id, progress_message_id=message_id
        )

    async def events(self) -> AsyncIterator[EngineEvent]:
        service = self._service
        self._run = service._engine.run(self._turn)
        if self.cancelled_by_user or self.interrupted_by_shutdown:
            self._run.cancel()
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            async for event in self._run:
                if isinstance(event, TurnStarted):
                    self._reached_model = True
                elif isinstance(event, TurnFinished):
                    await service._finished(self, event)
                elif isinstance(event, TurnFailed):
                    await service._failed(self, event)
                yield event
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _heartbeat(self) -> None:
        service = self._service
        while True:
            await asyncio.sleep(service.heartbeat_seconds)
            lease = datetime.now(UTC) + timedelta(seconds=service.lease_seconds)
            try:
                still_ours = await service._store.renew_analysis(
                    self.request.chat_id, self.id, lease
                )
            except Exception:
                log.warning("lease renewal failed analysis=%s", self.id, exc_info=True)
                continue
            if not still_ours:  # cancelled from another instance (or taken over)
                log.info("analysis=%s lost its claim: cancelling", self.id)
                self.cancel()
                return

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        service = self._service
        chat_id = self.request.chat_id
        try:
            if self._run is None:
                # events() never ran (e.g. the progress message could not be sent): nothing
                # reached the model, so the analysis does not count.
                try:
                    await service._store.refund_quota(
                        datetime.now(UTC).date(), self.request.user_id, chat_id
                    )
                except Exception:
                    log.warning("quota refund failed analysis=%s", self.id, exc_info=True)
            if self.interrupted_by_shutdown:
                # Leave the claim with an expired lease: after the restart (or on another
                # instance) claim_interrupted() finds it and tells the chat.
                await service._store.renew_analysis(chat_id, self.id, datetime.now(UTC))
            else:
                await service._store.end_analysis(chat_id, self.id)
        finally:
            if service._running.get(chat_id) is self:  # not a newer one that took over
                del service._running[chat_id]
            self._done.set()


class AnalysisService:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        *,
        quotas: Quotas,
        conversation_ttl: timedelta,
        lease_seconds: float = 45.0,
        heartbeat_seconds: float = 5.0,
    ) -> None:
        self._store = store
        self._engine = engine
        self.quotas = quotas
        self.conversation_ttl = conversation_ttl
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self._running: dict[int, Analysis] = {}
        self._shutting_down = False

    def running(self, chat_id: int) -> Analysis | None:
        return self._running.get(chat_id)

    @property
    def running_count(self) -> int:
        return len(self._running)

    async def begin(self, request: AnalysisRequest) -> Analysis:
        """Claim the chat, count the quota and prepare the turn; raise AnalysisRefused."""
        if self._shutting_down:
            raise AnalysisRefused(RefusalReason.SHUTTING_DOWN)
        store = self._store
        files = await store.list_files(request.chat_id)
        if not files:
            raise AnalysisRefused(RefusalReason.NO_FILES)
        now = datetime.now(UTC)
        analysis_id = secrets.token_hex(6)
        claim = ActiveAnalysis(
            chat_id=request.chat_id,
            analysis_id=analysis_id,
            user_id=request.user_id,
            question=request.question[:1000],
            started_at=now,
            lease_until=now + timedelta(seconds=self.lease_seconds),
            thread_id=request.thread_id,
            language=request.language,
        )
        if not await store.try_begin_analysis(claim):
            current = await store.get_analysis(request.chat_id)
            raise AnalysisRefused(
                RefusalReason.BUSY, analysis_id=current.analysis_id if current else ""
            )
        try:
            exempt = request.is_admin
            quota = await store.try_consume_quota(
                now.date(),
                request.user_id,
                request.chat_id,
                None if exempt else self.quotas.per_user,
                None if exempt else self.quotas.per_chat,
            )
            if not quota.allowed:
                if quota.limited_by == "chat":
                    raise AnalysisRefused(RefusalReason.QUOTA_CHAT, limit=self.quotas.per_chat or 0)
                raise AnalysisRefused(RefusalReason.QUOTA_USER, limit=self.quotas.per_user or 0)
            conversation = await store.get_conversation(request.chat_id)
            previous = conversation.last_response_id
            last_used = conversation.last_used_at
            if previous and last_used is not None and now - last_used > self.conversation_ttl:
                previous = None  # idle too long: start fresh
        except BaseException:
            await store.end_analysis(request.chat_id, analysis_id)
            raise
        turn = TurnRequest(
            question=request.question,
            files=[to_data_file(f) for f in files],
            previous_response_id=previous,
            language=request.language,
            analysis_id=analysis_id,
            chat_key=str(request.chat_id),
        )
        analysis = Analysis(id=analysis_id, request=request, _service=self, _turn=turn)
        self._running[request.chat_id] = analysis
        log.info(
            "analysis=%s begins chat=%s user=%s files=%d follow_up=%s",
            analysis_id,
            request.chat_id,
            request.user_id,
            len(files),
            previous is not None,
        )
        return analysis

    async def _finished(self, analysis: Analysis, event: TurnFinished) -> None:
        request = analysis.request
        result = event.result
        await self._store.set_last_response(request.chat_id, result.response_id)
        await self._store.record_usage(
            datetime.now(UTC).date(),
            request.user_id,
            request.chat_id,
            result.usage.input_tokens,
            result.usage.output_tokens,
        )
        log.info(
            "analysis=%s finished chat=%s in %.1fs tokens_in=%d tokens_out=%d artifacts=%d",
            analysis.id,
            request.chat_id,
            analysis.elapsed,
            result.usage.input_tokens,
            result.usage.output_tokens,
            len(result.artifacts),
        )

    async def _failed(self, analysis: Analysis, event: TurnFailed) -> None:
        request = analysis.request
        day = datetime.now(UTC).date()
        if event.usage.total_tokens:
            await self._store.record_usage(
                day,
                request.user_id,
                request.chat_id,
                event.usage.input_tokens,
                event.usage.output_tokens,
            )
        if not analysis._reached_model and not event.code_ran:
            await self._store.refund_quota(day, request.user_id, request.chat_id)
        log.warning(
            "analysis=%s failed chat=%s after %.1fs reason=%s detail=%s",
            analysis.id,
            request.chat_id,
            analysis.elapsed,
            event.reason,
            event.detail,
        )

    async def cancel(self, chat_id: int, analysis_id: str | None = None) -> bool:
        """Cancel the chat's analysis (the given one, or whichever runs). Works across
        instances: removing the claim makes the owning instance cancel at its next
        heartbeat."""
        local = self._running.get(chat_id)
        if local is not None and (analysis_id is None or local.id == analysis_id):
            local.cancel()
            return True
        current = await self._store.get_analysis(chat_id)
        if current is None or (analysis_id is not None and current.analysis_id != analysis_id):
            return False
        await self._store.end_analysis(chat_id, current.analysis_id)
        return True

    async def claim_interrupted(self) -> list[ActiveAnalysis]:
        """Analyses whose process stopped before finishing; each returned exactly once."""
        return await self._store.claim_stale_analyses(datetime.now(UTC))

    async def shutdown(self, grace: float) -> None:
        """Stop taking analyses, let running ones finish within `grace` seconds, then
        interrupt the rest (they are reported to their chats after the restart)."""
        self._shutting_down = True
        running = list(self._running.values())
        if not running:
            return
        log.info("waiting up to %.0fs for %d running analyses", grace, len(running))
        waiters = [asyncio.create_task(a._done.wait()) for a in running]
        _, pending = await asyncio.wait(waiters, timeout=grace)
        for task in pending:
            task.cancel()
        for analysis in running:
            if not analysis._done.is_set():
                analysis.interrupted_by_shutdown = True
                analysis.cancel(by_user=False)
        left = [a._done.wait() for a in running if not a._done.is_set()]
        if left:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*left), timeout=10)
