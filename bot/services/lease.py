"""A chat's claim: one holder per chat at a time, across every instance sharing the store.

An analysis holds its chat's claim while it runs; removing a file or resetting the chat
holds it for the moment that takes, so the two never overlap (an analysis must not upload a
file that is being deleted, or a remote copy would outlive it). The claim is a lease in the
store, renewed by a heartbeat while held: a holder whose process died loses it when the
lease lapses, and `Store.claim_stale_analyses` hands the lapsed analysis to exactly one
instance to report.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.common import cancel_and_wait
from bot.storage.base import ActiveAnalysis, Store

log = logging.getLogger(__name__)

# Claims taken for file maintenance (remove, reset) carry this id prefix: they are never
# reported as interrupted analyses and never cancelled by /cancel.
MAINTENANCE_PREFIX = "files-"
MAINTENANCE_LEASE_SECONDS = 60.0
# Releasing is retried this many times (seconds between tries) before it is left to lapse.
RELEASE_DELAYS = (0.0, 0.2, 1.0, 3.0)


def is_maintenance(analysis_id: str) -> bool:
    return analysis_id.startswith(MAINTENANCE_PREFIX)


def maintenance_claim(chat_id: int, now: datetime | None = None) -> ActiveAnalysis:
    now = now or datetime.now(UTC)
    return ActiveAnalysis(
        chat_id=chat_id,
        analysis_id=MAINTENANCE_PREFIX + secrets.token_hex(4),
        user_id=0,
        question="",
        started_at=now,
        lease_until=now + timedelta(seconds=MAINTENANCE_LEASE_SECONDS),
    )


class Lease:
    """The claim on one chat. `acquire()` takes it (or returns None: someone holds it);
    `keep_alive()` renews it until `release()`; `on_lost` is called when a renewal finds
    the claim gone (cancelled from another instance, or taken over after it lapsed)."""

    def __init__(
        self,
        store: Store,
        claim: ActiveAnalysis,
        *,
        seconds: float,
        heartbeat: float,
    ) -> None:
        self.store = store
        self.claim = claim
        self.seconds = seconds
        self.heartbeat = heartbeat
        self._renewing: asyncio.Task[None] | None = None
        self._released = False

    @property
    def chat_id(self) -> int:
        return self.claim.chat_id

    @property
    def id(self) -> str:
        return self.claim.analysis_id

    @classmethod
    async def acquire(
        cls, store: Store, claim: ActiveAnalysis, *, seconds: float, heartbeat: float
    ) -> Lease | None:
        if await store.try_begin_analysis(claim):
            return cls(store, claim, seconds=seconds, heartbeat=heartbeat)
        return None

    def keep_alive(self, on_lost: Callable[[], None]) -> None:
        if self._renewing is None and not self._released:
            self._renewing = asyncio.create_task(self._renew(on_lost), name=f"lease-{self.id}")

    async def _renew(self, on_lost: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            until = datetime.now(UTC) + timedelta(seconds=self.seconds)
            try:
                still_ours = await self.store.renew_analysis(self.chat_id, self.id, until)
            except Exception:
                log.warning("lease renewal failed analysis=%s", self.id, exc_info=True)
                continue
            if not still_ours:
                log.info("analysis=%s lost its claim", self.id)
                on_lost()
                return

    async def _stop_renewing(self) -> None:
        if self._renewing is not None:
            await cancel_and_wait(self._renewing)

    async def release(self, *, leave_for_report: bool = False) -> bool:
        """Give the chat back (idempotent; never raises). With `leave_for_report` the
        claim stays with a lapsed lease, for `claim_stale_analyses` to report after a
        restart. A failing store is retried a few times; True when the store took it."""
        if self._released:
            return True
        self._released = True
        await self._stop_renewing()
        for delay in RELEASE_DELAYS:
            if delay:
                await asyncio.sleep(delay)
            try:
                if leave_for_report:
                    await self.store.renew_analysis(self.chat_id, self.id, datetime.now(UTC))
                else:
                    await self.store.end_analysis(self.chat_id, self.id)
                return True
            except Exception:
                log.warning("releasing the claim failed analysis=%s", self.id, exc_info=True)
        log.error(
            "analysis=%s: the claim could not be released; it lapses in %.0fs",
            self.id,
            self.seconds,
        )
        return False
