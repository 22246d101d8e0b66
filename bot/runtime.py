"""Process-wide state of a running bot, with one owner: `Runtime` starts it and closes it.

- the stop request: SIGINT/SIGTERM handlers are installed first thing (`install_signal_handlers`),
  before the slow imports, so a stop in the first seconds is never lost; the async code waits on
  it (`wait_stop`, `stop_requested`);
- the worker process that parses big uploads (`bot.tabular`), shut down on close;
- the garbage-collector freeze of what is alive after startup (`freeze_startup_objects`);
- objects that must stay referenced for the process's life (`keep_alive`, e.g. the pydantic
  classes aiogram builds for every API call).

`retry_until_ready` retries a start-up step (Telegram, Redis) with a capped backoff, one log line
per attempt, until it works or a stop is requested.

No aiogram here: the Telegram layer hands its own objects in.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StartupAborted(Exception):
    """A stop was requested while a start-up step was still waiting to succeed."""


class Runtime:
    """Owns the process-wide state; `close()` releases it (idempotent)."""

    def __init__(self) -> None:
        self._stop_signal: str | None = None
        self._stop_event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kept: list[Any] = []
        self._frozen = False
        self._closed = False

    # ---- stopping -----------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """Plain handlers that note the stop; call before anything slow (imports, settings)."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)

    def attach_loop(self) -> None:
        """Route the stop signals through the running event loop from now on."""
        self._event()
        assert self._loop is not None
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.add_signal_handler(sig, self._on_signal, sig, None)

    def _event(self) -> asyncio.Event:
        if self._stop_event is None:
            self._loop = asyncio.get_running_loop()
            self._stop_event = asyncio.Event()
            if self._stop_signal is not None:
                self._stop_event.set()
        return self._stop_event

    def _on_signal(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if self._stop_signal is None:
            log.info("received %s: shutting down", name)
        self.request_stop(name)

    def request_stop(self, reason: str = "requested") -> None:
        """Safe from a signal handler: the loop is woken through its self-pipe."""
        if self._stop_signal is None:
            self._stop_signal = reason
        event, loop = self._stop_event, self._loop
        if event is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    @property
    def stop_requested(self) -> bool:
        return self._stop_signal is not None

    async def wait_stop(self) -> None:
        await self._event().wait()

    async def sleep_unless_stopped(self, seconds: float) -> bool:
        """Sleep; True when the time passed, False as soon as a stop is requested."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wait_stop(), seconds)
        return not self.stop_requested

    # ---- process-wide objects -------------------------------------------------------------------

    def keep_alive(self, objects: list[Any]) -> None:
        self._kept.extend(objects)

    def freeze_startup_objects(self) -> None:
        """Exempt what is alive after startup (~260,000 objects, mostly the libraries' pydantic
        models) from garbage collection. Otherwise every full collection scans them all, and
        under load that held the event loop for ~200 ms every ten seconds or so."""
        if not self._frozen:
            self._frozen = True
            gc.collect()
            gc.freeze()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        from bot.tabular import shutdown_parsing_pool  # imported late: signals come first

        shutdown_parsing_pool()
        if self._frozen:
            gc.unfreeze()
        self._kept.clear()
        if self._loop is not None and not self._loop.is_closed():
            for sig in STOP_SIGNALS:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    self._loop.remove_signal_handler(sig)


async def retry_until_ready(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    runtime: Runtime,
    *,
    transient: Callable[[BaseException], bool],
    hint: str = "",
    first_delay: float = 1.0,
    max_delay: float = 30.0,
) -> T:
    """Run `attempt` until it succeeds. A transient error is logged in one line (no traceback)
    and retried after 1, 2, 4 … `max_delay` seconds, for as long as it takes: a restart policy
    would loop anyway, and this way the process stays up and says why. Any other error
    propagates. A stop request ends the wait with `StartupAborted`."""
    delay = first_delay
    number = 1
    while True:
        if runtime.stop_requested:
            raise StartupAborted(what)
        try:
            return await attempt()
        except Exception as error:
            if not transient(error):
                raise
            log.warning(
                "%s unavailable (attempt %d: %s): retrying in %gs%s",
                what,
                number,
                describe_error(error),
                delay,
                f"; {hint}" if hint else "",
            )
        if not await runtime.sleep_unless_stopped(delay):
            raise StartupAborted(what)
        delay = min(delay * 2, max_delay)
        number += 1


def describe_error(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if len(text) > 200:
        text = text[:200] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
