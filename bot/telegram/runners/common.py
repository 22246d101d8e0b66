"""What the polling and webhook runners share: waiting for Telegram at start-up, the lifecycle
hooks on the dispatcher (`dp.startup`: command menu, housekeeping, GC freeze; `dp.shutdown`:
housekeeping stops), then letting running analyses and updates in flight finish; the health
endpoint; stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import TelegramObject, User
from aiohttp import web

from bot.app import Services
from bot.common import cancel_and_wait
from bot.config import Settings
from bot.runtime import Runtime, retry_until_ready
from bot.services.housekeeping import Housekeeper
from bot.telegram.factory import create_dispatcher, register_commands
from bot.telegram.flow import report_interrupted

log = logging.getLogger(__name__)


def telegram_unreachable(error: BaseException) -> bool:
    """Errors that say nothing about our request, only that Telegram (or the way to it) is
    down for now: worth waiting out at start-up."""
    return isinstance(
        error, TelegramNetworkError | TelegramServerError | TelegramRetryAfter | ClientDecodeError
    )


def health_app(services: Services) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        try:
            ok = await asyncio.wait_for(services.store.ping(), timeout=3)
        except Exception:
            ok = False
        body = {
            "status": "ok" if ok else "storage unavailable",
            "running_analyses": services.analyses.running_count,
        }
        return web.json_response(body, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    return app


class InFlightUpdates(BaseMiddleware):
    """Counts the updates being handled, so a stop can let them finish (a reply waiting out
    Telegram's flood control, a download) instead of cutting them off."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        self.count += 1
        self._idle.clear()
        try:
            return await handler(event, data)
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


class BotRunner:
    """Owns the bot's lifetime; `stop()` (or a signal noted by the runtime) begins a graceful
    shutdown. Subclasses serve updates (`_serve`): long polling or a webhook.

    With a `runtime` (the process's owner, from `python -m bot`), stop signals reach this runner
    and startup objects are frozen for the garbage collector; without one (tests, benchmarks)
    the runner keeps a private one that only carries `stop()`."""

    mode = ""

    def __init__(
        self, settings: Settings, services: Services, bot: Bot, runtime: Runtime | None = None
    ) -> None:
        self.settings = settings
        self.services = services
        self.bot = bot
        self.runtime = runtime or Runtime()
        self._owns_process = runtime is not None
        self.dp = create_dispatcher(services)
        self.in_flight = InFlightUpdates()
        self.dp.update.outer_middleware(self.in_flight)
        self.dp.startup.register(self._on_startup)
        self.dp.shutdown.register(self._on_shutdown)
        self.housekeeper = Housekeeper(
            services.store,
            services.files,
            services.analyses,
            retention=timedelta(days=settings.file_retention_days),
            on_interrupted=lambda analysis: report_interrupted(bot, analysis),
        )
        self._housekeeping: asyncio.Task[None] | None = None

    def stop(self) -> None:
        self.runtime.request_stop("stop()")

    async def wait_for_telegram(self) -> User:
        """getMe until Telegram answers (capped backoff, one log line per attempt). A refused
        token is no outage: TelegramUnauthorizedError propagates."""
        return await retry_until_ready(
            "Telegram",
            self.bot.me,
            self.runtime,
            transient=telegram_unreachable,
            hint="check the network, TELEGRAM_API_BASE or a proxy",
        )

    async def run(self) -> None:
        """Serve until stopped; the bot's HTTP session is closed at the end in any case."""
        try:
            me = await self.wait_for_telegram()
            log.info("bot @%s starting (%s mode)", me.username, self.mode)
            try:
                await self._serve()
            finally:
                await self._drain()
        finally:
            await self.bot.session.close()
            log.info("bot stopped")

    async def _serve(self) -> None:
        raise NotImplementedError

    # ---- dispatcher lifecycle hooks ----------------------------------------------------------

    async def _on_startup(self, bot: Bot) -> None:
        await register_commands(bot, self.settings.default_language)
        if self._owns_process:
            self.runtime.freeze_startup_objects()
        self._housekeeping = asyncio.create_task(
            self.housekeeper.run_forever(), name="housekeeping"
        )

    async def _on_shutdown(self) -> None:
        """No more updates are taken (emitted when polling ends or the webhook server is
        closed); what is still running is drained by `_drain` afterwards."""
        if self._housekeeping is not None:
            await cancel_and_wait(self._housekeeping)
            self._housekeeping = None

    async def _drain(self) -> None:
        """Running analyses get SHUTDOWN_GRACE_SECONDS to finish, then are interrupted."""
        grace = self.settings.shutdown_grace_seconds
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await self.services.analyses.shutdown(grace)
        # The other updates in flight get the rest of the grace period (and a moment for
        # interrupted analyses to wrap up).
        if not await self.in_flight.wait_idle(max(deadline - loop.time(), 1.0)):
            log.warning("stopping with %d updates still being handled", self.in_flight.count)
