"""A FIFO limit on simultaneous turns, with queue positions reported to the waiters.

`TurnLimiter` is the in-process limiter. The engine only uses `acquire`, `release`, `running`
and `queued` (`ConcurrencyLimiter`), so a deployment-wide one replaces it with REDIS_URL set:
`bot.storage.redis_limits.RedisSemaphore` shares e.g. Yandex's "3 concurrent Code Interpreter
runs" between several bot processes (`bot.app` passes it as `AnalysisEngine(limiter=...)`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

PositionCallback = Callable[[int], None]


class ConcurrencyLimiter(Protocol):
    """What the engine needs of a limiter (`TurnLimiter` here; a deployment-wide one lives
    in storage and is injected through `AnalysisEngine(limiter=...)`)."""

    @property
    def running(self) -> int: ...

    @property
    def queued(self) -> int: ...

    async def acquire(self, on_position: PositionCallback | None = None) -> None: ...

    def release(self) -> None: ...


@dataclass(eq=False, slots=True)
class _Waiter:
    future: asyncio.Future[None]
    on_position: PositionCallback | None
    position: int = field(default=0)


class TurnLimiter:
    """At most `limit` turns run at once; the others wait in arrival order.

    `acquire(on_position)` returns when the caller may run. While it waits, `on_position` is
    called (synchronously, from the event loop) with the caller's 1-based queue position whenever
    it changes, first right after queueing. Every successful `acquire` must be paired with one
    `release`. A waiter cancelled while queued leaves the queue (the others move up).
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._limit = limit
        self._running = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def running(self) -> int:
        """Turns holding a slot now."""
        return self._running

    @property
    def queued(self) -> int:
        """Turns waiting for a slot."""
        return len(self._waiters)

    async def acquire(self, on_position: PositionCallback | None = None) -> None:
        if self._running < self._limit and not self._waiters:
            self._running += 1
            return
        waiter = _Waiter(asyncio.get_running_loop().create_future(), on_position)
        self._waiters.append(waiter)
        self._notify_positions()
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                # The slot was handed over just as we were cancelled: pass it on.
                self.release()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                self._notify_positions()
            raise

    def release(self) -> None:
        if self._running <= 0:
            raise RuntimeError("release() without acquire()")
        self._running -= 1
        while self._waiters and self._running < self._limit:
            waiter = self._waiters.popleft()
            if waiter.future.done():  # cancelled while queued
                continue
            self._running += 1
            waiter.future.set_result(None)
        self._notify_positions()

    def _notify_positions(self) -> None:
        for index, waiter in enumerate(self._waiters, start=1):
            if waiter.position != index:
                waiter.position = index
                if waiter.on_position is not None:
                    waiter.on_position(index)
