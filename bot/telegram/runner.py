"""Running the bot: long polling (default) or a webhook, the health endpoint, periodic
housekeeping, and a graceful shutdown on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

from aiogram import BaseMiddleware, Bot, Dispatcher, methods
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.methods.base import Response, TelegramMethod
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    TelegramObject,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.app import Services, build_services
from bot.config import Settings
from bot.services.housekeeping import Housekeeper
from bot.telegram.errors import report_error
from bot.telegram.flow import Analyst, report_interrupted
from bot.telegram.handlers import get_routers
from bot.telegram.i18n import LANGUAGES, translator
from bot.telegram.middlewares import (
    AccessMiddleware,
    CallbackAnswers,
    LanguageMiddleware,
    RetryAfterMiddleware,
    SendPacer,
)

log = logging.getLogger(__name__)

PRIVATE_COMMANDS = (
    "start",
    "help",
    "dataset",
    "files",
    "cancel",
    "reset",
    "usage",
    "language",
    "settings",
)
GROUP_COMMANDS = ("analyze", "dataset", "files", "cancel", "reset", "usage", "settings", "help")


# aiogram parametrizes `Response[<result type>]` for every API call, and pydantic caches such
# classes only weakly: the garbage collector drops them and each is rebuilt (milliseconds of
# schema building on the event loop, a few times per analysis). Strong references stop that.
_RESPONSE_TYPES: list[type[Any]] = []


def _pin_response_types() -> None:
    if _RESPONSE_TYPES:
        return
    returning: dict[str, Any] = {}
    for name in methods.__all__:
        method = getattr(methods, name)
        is_method = isinstance(method, type) and issubclass(method, TelegramMethod)
        if is_method and method is not TelegramMethod:
            returning.setdefault(repr(method.__returning__), method.__returning__)
    _RESPONSE_TYPES.extend(Response[result] for result in returning.values())


_frozen = False


def _freeze_startup_objects() -> None:
    """Exempt what is alive after startup (~260,000 objects, mostly the libraries' pydantic
    models) from garbage collection. Otherwise every full collection scans them all, and
    under load that held the event loop for ~200 ms every ten seconds or so. Once per process."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def create_bot(settings: Settings) -> Bot:
    _pin_response_types()
    api = (
        TelegramAPIServer.from_base(
            settings.telegram_api_base, is_local=settings.telegram_api_local
        )
        if settings.telegram_api_base
        else PRODUCTION
    )
    session = AiohttpSession(api=api)
    session.middleware(RetryAfterMiddleware(pacer=SendPacer(settings.telegram_messages_per_second)))
    return Bot(
        settings.telegram_bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def create_dispatcher(services: Services) -> Dispatcher:
    dp = Dispatcher(
        settings=services.settings,
        people=services.people,
        limits=services.limits,
        files=services.files,
        analyses=services.analyses,
        catalog=services.catalog,
        preferences=services.preferences,
        answers=services.answers,
        analyst=Analyst(
            services.analyses,
            services.catalog,
            services.settings,
            services.preferences,
            services.answers,
        ),
    )
    language = LanguageMiddleware(
        services.people, services.settings.default_language, services.preferences
    )
    dp.message.outer_middleware(language)
    dp.callback_query.outer_middleware(language)
    dp.callback_query.middleware(CallbackAnswers())  # first: it also answers refusals
    access = AccessMiddleware(services.access)
    dp.message.middleware(access)
    dp.callback_query.middleware(access)
    dp.errors.register(report_error)
    dp.include_routers(*get_routers())
    return dp


async def register_commands(bot: Bot, default_language: str) -> None:
    for language in LANGUAGES:
        t = translator(language)
        code = None if language == default_language else language
        for scope, names in (
            (BotCommandScopeAllPrivateChats(), PRIVATE_COMMANDS),
            (BotCommandScopeAllGroupChats(), GROUP_COMMANDS),
        ):
            commands = [BotCommand(command=n, description=t.plain(f"cmd-{n}")) for n in names]
            await bot.set_my_commands(commands, scope=scope, language_code=code)


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
    """Owns the bot's lifetime; `stop()` (or a signal) begins a graceful shutdown."""

    def __init__(self, settings: Settings, services: Services, bot: Bot) -> None:
        self.settings = settings
        self.services = services
        self.bot = bot
        self.dp = create_dispatcher(services)
        self.in_flight = InFlightUpdates()
        self.dp.update.outer_middleware(self.in_flight)
        self._stop = asyncio.Event()
        self.housekeeper = Housekeeper(
            services.store,
            services.files,
            services.analyses,
            retention=timedelta(days=settings.file_retention_days),
            on_interrupted=lambda analysis: report_interrupted(bot, analysis),
        )

    def stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("received %s: shutting down", sig.name)
        self.stop()

    async def run(self) -> None:
        settings = self.settings
        me = await self.bot.me()
        log.info(
            "bot @%s starting (%s mode)",
            me.username,
            "webhook" if settings.use_webhook else "polling",
        )
        await register_commands(self.bot, settings.default_language)
        _freeze_startup_objects()
        housekeeping = asyncio.create_task(self.housekeeper.run_forever())
        try:
            if settings.use_webhook:
                await self._run_webhook()
            else:
                await self._run_polling()
        finally:
            housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeping
            loop = asyncio.get_running_loop()
            deadline = loop.time() + settings.shutdown_grace_seconds
            await self.services.analyses.shutdown(settings.shutdown_grace_seconds)
            # The other updates in flight get the rest of the grace period (and a moment
            # for interrupted analyses to wrap up).
            if not await self.in_flight.wait_idle(max(deadline - loop.time(), 1.0)):
                log.warning("stopping with %d updates still being handled", self.in_flight.count)
            await self.bot.session.close()
            log.info("bot stopped")

    async def _run_polling(self) -> None:
        health = None
        if self.settings.health_port:
            health = web.AppRunner(health_app(self.services))
            await health.setup()
            await web.TCPSite(health, self.settings.webhook_host, self.settings.health_port).start()
        await self.bot.delete_webhook(drop_pending_updates=False)
        polling = asyncio.create_task(
            self.dp.start_polling(self.bot, handle_signals=False, close_bot_session=False)
        )
        stop = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait({polling, stop}, return_when=asyncio.FIRST_COMPLETED)
            if polling in done:
                polling.result()  # polling died: surface the error
                return
            await self.dp.stop_polling()
            await polling
        finally:
            stop.cancel()
            if health is not None:
                await health.cleanup()

    async def _run_webhook(self) -> None:
        settings = self.settings
        assert settings.webhook_url
        assert settings.webhook_secret
        secret = settings.webhook_secret.get_secret_value()
        path = urlparse(settings.webhook_url).path or "/"
        app = health_app(self.services)
        SimpleRequestHandler(dispatcher=self.dp, bot=self.bot, secret_token=secret).register(
            app, path=path
        )
        runner = web.AppRunner(app, shutdown_timeout=5)
        await runner.setup()
        await web.TCPSite(runner, settings.webhook_host, settings.webhook_port).start()
        await self.dp.emit_startup(bot=self.bot)
        await self.bot.set_webhook(
            settings.webhook_url,
            secret_token=secret,
            allowed_updates=self.dp.resolve_used_update_types(),
        )
        log.info("webhook listening on %s:%s%s", settings.webhook_host, settings.webhook_port, path)
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()  # stop taking updates; running analyses go on
            await self.dp.emit_shutdown(bot=self.bot)


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM."""
    services = await build_services(settings)
    try:
        bot = create_bot(settings)
        runner = BotRunner(settings, services, bot)
        runner.install_signal_handlers()
        await runner.run()
    finally:
        await services.aclose()
