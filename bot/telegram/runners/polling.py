"""Long polling (the default), with GET /healthz on HEALTH_PORT when it is set.

Only one process may poll a token: Telegram ends a pending getUpdates with 409 Conflict when
another one starts. Two pollers would take turns ending each other's polls (each update goes
to one of them at random) for as long as both run. `PollConflictGuard` ends that: the first
409 goes to the process that was polling already (its pending poll is ended by the
newcomer's); it polls again at once, which ends the newcomer's first poll. A process whose
poll is ended before any of its polls went through is the newcomer: it says so in one log
line and exits with code 1. A 409 because a webhook is set (another instance runs in
webhook mode) also ends polling."""

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

CONFLICT_LOG_INTERVAL = 60.0  # seconds between warnings while an older instance keeps fighting


class PollingConflict(Exception):
    """Another process polls the same token (409 Conflict): this one gave way."""


class PollConflictGuard(BaseRequestMiddleware):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.conflict: str | None = None
        self._polled = False  # a poll of ours went through
        self._warned_at = float("-inf")

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if not isinstance(method, GetUpdates):
            return await make_request(bot, method)
        while self.conflict is None:
            try:
                response = await make_request(bot, method)
            except TelegramConflictError as error:
                if self._polled and "webhook" not in error.message:
                    self._warn(error.message)
                    continue  # we were here first: poll again, ending the newcomer's poll
                self._give_way(error.message)
                break
            self._polled = True
            return response
        await asyncio.Event().wait()  # polling is being stopped: never poll again
        raise AssertionError("unreachable")

    def _warn(self, message: str) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._warned_at >= CONFLICT_LOG_INTERVAL:
            self._warned_at = now
            log.warning("another process polls this bot's token (Telegram: %s)", message)

    def _give_way(self, message: str) -> None:
        self.conflict = message
        log.error(
            "another process is already running this bot (Telegram: %s); stop it, or run "
            "several instances with WEBHOOK_URL behind one address; exiting",
            message,
        )
        self.runtime.request_stop("getUpdates conflict")


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
