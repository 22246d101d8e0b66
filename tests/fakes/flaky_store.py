"""A real store with faults injected: chosen methods fail a number of times, or wait at a
gate, before the real store does the work. For tests of what the bot does when its storage
misbehaves (a full disk, Redis going away), which a healthy SQLite file or redis-server
cannot be made to do on cue."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from bot.storage.base import Store


class StoreDown(Exception):
    """The injected failure."""


class FlakyStore:
    def __init__(self, store: Store) -> None:
        self.real = store
        self.calls: list[str] = []
        self._failures: dict[str, int] = {}
        self._gates: dict[str, tuple[asyncio.Event, asyncio.Event]] = {}

    def fail(self, method: str, times: int = 1_000_000) -> None:
        """The next `times` calls of `method` raise StoreDown (by default: every call)."""
        self._failures[method] = times

    def heal(self, method: str) -> None:
        self._failures.pop(method, None)

    def hold(self, method: str) -> tuple[asyncio.Event, asyncio.Event]:
        """The next call of `method` waits: returns (entered, release)."""
        gate = (asyncio.Event(), asyncio.Event())
        self._gates[method] = gate
        return gate

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.real, name)
        if not asyncio.iscoroutinefunction(attribute):
            return attribute
        return functools.partial(self._call, name, attribute)

    async def _call(
        self, name: str, method: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> Any:
        self.calls.append(name)
        gate = self._gates.pop(name, None)
        if gate is not None:
            entered, release = gate
            entered.set()
            await release.wait()
        left = self._failures.get(name, 0)
        if left > 0:
            self._failures[name] = left - 1
            raise StoreDown(f"{name}: the store is down")
        return await method(*args, **kwargs)
