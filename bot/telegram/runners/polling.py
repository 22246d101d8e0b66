"""Long polling (the default), with GET /healthz on HEALTH_PORT when it is set.

Only one process may poll a token: Telegram ends a pending getUpdates with 409 Conflict when
another one starts. Two pollers would take turns ending each other's polls (each update goes
to one of them at random) for as long as both run. `PollConflictGuard` ends that: a process
that meets a conflict within its first `CONFLICT_GRACE_SECONDS` of polling is the newcomer
and exits (code 1) with one clear log line; an established one waits a moment and polls
again, which ends the newcomer's poll so that it sees the conflict and leaves."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramConflictError
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiohttp import web

from bot.runtime import Runtime
from bot.telegram.runners.common import BotRunner, health_app

log = logging.getLogger(__name__)

CONFLICT_GRACE_SECONDS = 30.0


class PollingConflict(Exception):
    """Another process polls the same token (409 Conflict): this one gave way."""


class PollConflictGuard(BaseRequestMiddleware):
    def __init__(self, runtime: Runtime, grace: float = CONFLICT_GRACE_SECONDS) -> None:
        self.runtime = runtime
        self.grace = grace
        self.conflict: str | None = None
        self._started: float | None = None

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if not isinstance(method, GetUpdates):
            return await make_request(bot, method)
        loop = asyncio.get_running_loop()
        if self.conflict is not None:
            await asyncio.Event().wait()  # polling is being stopped: never poll again
        if self._started is None:
            self._started = loop.time()
        try:
            return await make_request(bot, method)
        except TelegramConflictError as error:
            if loop.time() - self._started > self.grace:
                log.warning("getUpdates conflict (%s): polling again", error.message)
                raise  # aiogram waits a moment and polls again
            self.conflict = error.message
            log.error(
                "another process is already running this bot (Telegram: %s); stop it, or run "
                "several instances with WEBHOOK_URL behind one address; exiting",
                error.message,
            )
            self.runtime.request_stop("getUpdates conflict")
            await asyncio.Event().wait()  # until polling is stopped (cancelled)
            raise AssertionError("unreachable") from None


class PollingRunner(BotRunner):
    mode = "polling"

    async def _serve(self) -> None:
        guard = PollConflictGuard(self.runtime)
        self.bot.session.middleware(guard)
        health = None
        if self.settings.health_port:
            health = web.AppRunner(health_app(self.services))
            await health.setup()
            await web.TCPSite(health, self.settings.webhook_host, self.settings.health_port).start()
        try:
            await self.bot.delete_webhook(drop_pending_updates=False)
            # start_polling emits dp.startup before the first poll and dp.shutdown after the last.
            polling = asyncio.create_task(
                self.dp.start_polling(self.bot, handle_signals=False, close_bot_session=False)
            )
            stop = asyncio.create_task(self.runtime.wait_stop())
            try:
                done, _ = await asyncio.wait({polling, stop}, return_when=asyncio.FIRST_COMPLETED)
                if polling in done:
                    polling.result()  # polling died: surface the error
                    return
                await self.dp.stop_polling()
                await polling
            finally:
                stop.cancel()
        finally:
            if health is not None:
                await health.cleanup()
        if guard.conflict is not None:
            raise PollingConflict(guard.conflict)
