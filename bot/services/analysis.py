"""Running analyses: one per chat (a lease in the store), quotas, conversation context,
usage accounting, cancellation and graceful shutdown.

One `Analysis` owns everything of one run — the chat's lease, the quota it counted, the
engine run and the bookkeeping — from the claim to the close::

    try:
        async with analyses.begin(request) as analysis:
            await analysis.set_progress_message(message_id)
            async for event in analysis.events():
                ...                      # render; deliver the answer inside the block
    except AnalysisRefused as refusal:
        ...                              # busy, no files, quota, shutting down

Leaving the block, in any way, closes the analysis exactly once: an engine run still going
is cancelled at once (its provider slot freed, its stream closed), the usage and the new
response id are recorded (retried when the store fails, never at the cost of the answer),
a quota that bought nothing is refunded to the day it was taken, and the lease is released.
The lease holds across bot instances sharing Redis; an analysis whose process died is found
by `claim_interrupted()` and reported to its chat once.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from bot.config import DEFAULT_LANGUAGE
from bot.engine.types import (
    DataFile,
    EngineEvent,
    TurnFailed,
    TurnFinished,
    TurnRequest,
    TurnStarted,
)
from bot.services.files import to_data_file
from bot.services.lease import Lease, is_maintenance
from bot.storage.base import ActiveAnalysis, Store

log = logging.getLogger(__name__)

# How long a question waits for a file removal or reset in the same chat to finish.
MAINTENANCE_WAIT_SECONDS = 5.0
# Bookkeeping (usage, the response id) is retried with these pauses when the store fails.
RECORD_DELAYS = (0.0, 0.2, 1.0, 3.0)
# How long closing waits for the bookkeeping and the release before they go on in the
# background (and the answer is delivered).
SETTLE_WAIT_SECONDS = 1.0


class TurnRunLike(Protocol):
    @property
    def outcome(self) -> TurnFinished | TurnFailed | None: ...

    def __aiter__(self) -> AsyncIterator[EngineEvent]: ...

    def cancel(self, detail: str = ...) -> None: ...

    async def wait(self) -> None: ...


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
    language: str = DEFAULT_LANGUAGE
    thread_id: int | None = None
    is_admin: bool = False


@dataclass(frozen=True, slots=True)
class Quotas:
    per_user: int | None  # analyses per user per day; None = unlimited
    per_chat: int | None


@dataclass(frozen=True, slots=True)
class QuotaClaim:
    """One analysis counted against a user's and a chat's daily quota."""

    day: date  # the day it was counted on: a refund goes back to that day
    user_id: int
    chat_id: int


async def _persist(what: str, analysis_id: str, operation: Callable[[], Awaitable[None]]) -> bool:
    """Run a store write, retrying a failing store; never raises. True when it took."""
    for delay in RECORD_DELAYS:
        if delay:
            await asyncio.sleep(delay)
        try:
            await operation()
            return True
        except Exception:
            log.warning("%s failed analysis=%s", what, analysis_id, exc_info=True)
    log.error("%s given up analysis=%s", what, analysis_id)
    return False


class Analysis:
    """One analysis, from the claim to the close (see the module docstring). Made by
    `AnalysisService.begin()`; iterate `events()` once."""

    def __init__(
        self,
        request: AnalysisRequest,
        turn: TurnRequest,
        *,
        store: Store,
        engine: Engine,
        lease: Lease,
        quota: QuotaClaim,
    ) -> None:
        self.id = lease.id
        self.request = request
        self.started = time.monotonic()
        self.cancelled_by_user = False
        self.interrupted_by_shutdown = False
        self._turn = turn
        self._store = store
        self._engine = engine
        self._lease = lease
        self._quota = quota
        self._run: TurnRunLike | None = None
        self._reached_model = False
        self._recorded: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = asyncio.Event()
        lease.keep_alive(on_lost=self.cancel)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def files(self) -> Sequence[DataFile]:
        """The data files the turn was given."""
        return self._turn.files

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def cancel(self, *, by_user: bool = True) -> None:
        self.cancelled_by_user = self.cancelled_by_user or by_user
        if self._run is not None:
            self._run.cancel("cancelled by the user" if by_user else "the bot is stopping")

    def interrupt(self) -> None:
        """The bot is stopping: end the run; the chat is told after the restart."""
        self.interrupted_by_shutdown = True
        self.cancel(by_user=False)

    async def set_progress_message(self, message_id: int) -> None:
        """Remember the progress message (to edit it if the process dies); best effort."""
        try:
            await self._store.update_analysis(
                self.request.chat_id, self.id, progress_message_id=message_id
            )
        except Exception:
            log.warning("saving the progress message failed analysis=%s", self.id, exc_info=True)

    async def events(self) -> AsyncIterator[EngineEvent]:
        if self._run is not None:
            raise RuntimeError("events() of an analysis is iterated once")
        run = self._run = self._engine.run(self._turn)
        if self.cancelled_by_user or self.interrupted_by_shutdown:
            run.cancel()
        async for event in run:
            if isinstance(event, TurnStarted):
                self._reached_model = True
            elif isinstance(event, TurnFinished | TurnFailed):
                self._record(event)
            yield event

    def _record(self, outcome: TurnFinished | TurnFailed) -> None:
        if self._recorded is None:
            self._recorded = asyncio.create_task(self._bookkeeping(outcome))

    async def _bookkeeping(self, outcome: TurnFinished | TurnFailed) -> None:
        request, quota = self.request, self._quota
        store = self._store
        if isinstance(outcome, TurnFinished):
            result = outcome.result
            usage = result.usage
            await _persist(
                "saving the response id",
                self.id,
                lambda: store.set_last_response(request.chat_id, result.response_id),
            )
            log.info(
                "analysis=%s finished chat=%s in %.1fs tokens_in=%d tokens_out=%d artifacts=%d",
                self.id,
                request.chat_id,
                self.elapsed,
                usage.input_tokens,
                usage.output_tokens,
                len(result.artifacts),
            )
        else:
            usage = outcome.usage
            if outcome.chain_gone:  # never continue from a dead response
                await _persist(
                    "dropping a dead response id",
                    self.id,
                    lambda: store.set_last_response(request.chat_id, None),
                )
            if not self._reached_model and not outcome.code_ran:
                await self._refund()
            log.warning(
                "analysis=%s failed chat=%s after %.1fs reason=%s detail=%s",
                self.id,
                request.chat_id,
                self.elapsed,
                outcome.reason,
                outcome.detail,
            )
        if usage.total_tokens:
            await _persist(
                "recording usage",
                self.id,
                lambda: store.record_usage(
                    quota.day,
                    request.user_id,
                    request.chat_id,
                    usage.input_tokens,
                    usage.output_tokens,
                ),
            )

    async def _refund(self) -> None:
        quota = self._quota
        await _persist(
            "refunding the quota",
            self.id,
            lambda: self._store.refund_quota(quota.day, quota.user_id, quota.chat_id),
        )

    async def close(self) -> asyncio.Task[bool] | None:
        """End the run if it still goes, then settle: finish the bookkeeping and give the
        chat back. Idempotent; never raises. Waits for the settling up to
        `SETTLE_WAIT_SECONDS` (a healthy store takes milliseconds) and returns it when it
        goes on — a failing store is retried in the background, never at the cost of the
        answer. The settling's result is False when the store would not take the release
        (the lease then lapses by itself)."""
        if self._closing:
            await self._closed.wait()
            return None
        self._closing = True
        try:
            run = self._run
            if run is not None:
                if run.outcome is None:  # the consumer left early: stop the turn now
                    run.cancel("abandoned: the analysis was closed")
                try:
                    await run.wait()
                except Exception:
                    log.warning("engine run ended badly analysis=%s", self.id, exc_info=True)
                if run.outcome is not None:
                    self._record(run.outcome)  # a no-op when the consumer saw it
            settling = asyncio.create_task(self._settle(), name=f"settle-{self.id}")
            done, _ = await asyncio.wait({settling}, timeout=SETTLE_WAIT_SECONDS)
            return None if done else settling
        finally:
            self._closed.set()

    async def _settle(self) -> bool:
        if self._run is None:
            # Nothing reached the model (e.g. the progress message could not be sent).
            await self._refund()
        if self._recorded is not None:
            await self._recorded
        return await self._lease.release(leave_for_report=self.interrupted_by_shutdown)


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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._engine = engine
        self.quotas = quotas
        self.conversation_ttl = conversation_ttl
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self._clock = clock
        self._running: dict[int, Analysis] = {}
        self._unreleased: set[str] = set()  # finished, but the store kept their claim
        self._settling: set[asyncio.Task[bool]] = set()  # closings waiting for the store
        self._shutting_down = False

    def running(self, chat_id: int) -> Analysis | None:
        return self._running.get(chat_id)

    @property
    def running_count(self) -> int:
        return len(self._running)

    @asynccontextmanager
    async def begin(self, request: AnalysisRequest) -> AsyncIterator[Analysis]:
        """Claim the chat, count the quota and prepare the turn (AnalysisRefused when it
        cannot); the analysis is closed when the block is left."""
        analysis = await self._open(request)
        chat_id = request.chat_id
        self._running[chat_id] = analysis
        try:
            yield analysis
        finally:
            try:
                settling = await analysis.close()
                if settling is not None:
                    self._settle_later(analysis.id, settling)
            finally:
                if self._running.get(chat_id) is analysis:  # not a newer one that took over
                    del self._running[chat_id]

    def _settle_later(self, analysis_id: str, settling: asyncio.Task[bool]) -> None:
        log.warning("analysis=%s: the store is slow; settling it in the background", analysis_id)
        # Finished: should its claim lapse instead of being released, that is no interruption.
        self._unreleased.add(analysis_id)
        self._settling.add(settling)
        settling.add_done_callback(self._settling.discard)

    async def _claim(self, request: AnalysisRequest, now: datetime) -> Lease:
        claim = ActiveAnalysis(
            chat_id=request.chat_id,
            analysis_id=secrets.token_hex(6),
            user_id=request.user_id,
            question=request.question[:1000],
            started_at=now,
            lease_until=now + timedelta(seconds=self.lease_seconds),
            thread_id=request.thread_id,
            language=request.language,
        )
        deadline = time.monotonic() + MAINTENANCE_WAIT_SECONDS
        while True:
            lease = await Lease.acquire(
                self._store, claim, seconds=self.lease_seconds, heartbeat=self.heartbeat_seconds
            )
            if lease is not None:
                return lease
            current = await self._store.get_analysis(request.chat_id)
            if current is None:
                continue  # released in between
            if is_maintenance(current.analysis_id) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # a file removal or reset: over in a moment
                continue
            raise AnalysisRefused(RefusalReason.BUSY, analysis_id=current.analysis_id)

    async def _open(self, request: AnalysisRequest) -> Analysis:
        if self._shutting_down:
            raise AnalysisRefused(RefusalReason.SHUTTING_DOWN)
        store = self._store
        if not await store.list_files(request.chat_id):  # the common refusal, without a claim
            raise AnalysisRefused(RefusalReason.NO_FILES)
        now = self._clock()
        lease = await self._claim(request, now)
        try:
            # Listed again under the claim: a removal or reset cannot overlap from here on.
            files = await store.list_files(request.chat_id)
            if not files:
                raise AnalysisRefused(RefusalReason.NO_FILES)
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
        except BaseException:
            await lease.release()
            raise
        previous = conversation.last_response_id
        last_used = conversation.last_used_at
        if previous and last_used is not None and now - last_used > self.conversation_ttl:
            previous = None  # idle too long: start fresh
        turn = TurnRequest(
            question=request.question,
            files=[to_data_file(f) for f in files],
            previous_response_id=previous,
            language=request.language,
            analysis_id=lease.id,
            chat_key=str(request.chat_id),
        )
        log.info(
            "analysis=%s begins chat=%s user=%s files=%d follow_up=%s",
            lease.id,
            request.chat_id,
            request.user_id,
            len(files),
            previous is not None,
        )
        return Analysis(
            request,
            turn,
            store=store,
            engine=self._engine,
            lease=lease,
            quota=QuotaClaim(now.date(), request.user_id, request.chat_id),
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
        if current is None or is_maintenance(current.analysis_id):
            return False
        if analysis_id is not None and current.analysis_id != analysis_id:
            return False
        await self._store.end_analysis(chat_id, current.analysis_id)
        return True

    async def claim_interrupted(self) -> list[ActiveAnalysis]:
        """Analyses whose process stopped before finishing; each returned exactly once.
        A claim left by a file removal, or by an analysis that finished but could not
        release it, is taken away silently."""
        stale = await self._store.claim_stale_analyses(self._clock())
        reported = []
        for claim in stale:
            if claim.analysis_id in self._unreleased:
                self._unreleased.discard(claim.analysis_id)
            elif not is_maintenance(claim.analysis_id):
                reported.append(claim)
        return reported

    async def shutdown(self, grace: float) -> None:
        """Stop taking analyses, let running ones finish within `grace` seconds, then
        interrupt the rest (they are reported to their chats after the restart)."""
        self._shutting_down = True
        try:
            await self._stop_running(grace)
        finally:
            await self.wait_settled(timeout=5)  # a slow store's last chance

    async def wait_settled(self, timeout: float | None = None) -> None:
        """Wait for closings whose bookkeeping went on in the background."""
        if self._settling:
            await asyncio.wait(set(self._settling), timeout=timeout)

    async def _stop_running(self, grace: float) -> None:
        running = list(self._running.values())
        if not running:
            return
        log.info("waiting up to %.0fs for %d running analyses", grace, len(running))
        waiters = [asyncio.create_task(a.wait_closed()) for a in running]
        _, pending = await asyncio.wait(waiters, timeout=grace)
        for task in pending:
            task.cancel()
        left = [a for a in running if not a.closed]
        for analysis in left:
            analysis.interrupt()
        if left:
            done = asyncio.gather(*(a.wait_closed() for a in left))
            try:
                await asyncio.wait_for(done, timeout=10)
            except TimeoutError:
                log.warning("%d analyses did not close in time", sum(not a.closed for a in left))
