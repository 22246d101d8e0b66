"""Running the bot: `serve()` is `python -m bot`; `make_runner()` picks long polling
(`PollingRunner`) or a webhook (`WebhookRunner`) from the settings."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramUnauthorizedError

from bot.app import Services, build_services
from bot.config import Settings
from bot.runtime import Runtime, StartupAborted, retry_until_ready
from bot.storage import store_unavailable
from bot.telegram.factory import create_bot, response_types
from bot.telegram.runners.common import BotRunner, InFlightUpdates, health_app
from bot.telegram.runners.polling import PollingRunner
from bot.telegram.runners.webhook import WebhookRunner

__all__ = [
    "BotRunner",
    "InFlightUpdates",
    "PollingRunner",
    "WebhookRunner",
    "health_app",
    "make_runner",
    "serve",
]

log = logging.getLogger(__name__)


def make_runner(
    settings: Settings, services: Services, bot: Bot, runtime: Runtime | None = None
) -> BotRunner:
    runner_class = WebhookRunner if settings.use_webhook else PollingRunner
    return runner_class(settings, services, bot, runtime)


async def serve(settings: Settings, runtime: Runtime) -> int:
    """Run until SIGINT/SIGTERM; the exit code. Storage and Telegram are waited for at start-up
    (a container may start before Redis or the network), and a stop during that wait ends
    the process cleanly."""
    runtime.attach_loop()
    runtime.keep_alive(response_types())
    try:
        services = await retry_until_ready(
            "storage",
            lambda: build_services(settings),
            runtime,
            transient=store_unavailable,
            hint="check REDIS_URL and that Redis is running",
        )
    except StartupAborted:
        log.info("stopped before the start-up finished")
        return 0
    try:
        runner = make_runner(settings, services, create_bot(settings), runtime)
        await runner.run()
    except StartupAborted:
        log.info("stopped before the start-up finished")
    except TelegramUnauthorizedError:
        log.error(
            "Telegram refuses TELEGRAM_BOT_TOKEN (401 Unauthorized): copy the token again from "
            "@BotFather (or /revoke it there and use the new one)"
        )
        return 1
    finally:
        await services.aclose()
    return 0
