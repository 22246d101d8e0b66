"""A webhook (when WEBHOOK_URL is set): Telegram POSTs updates to WEBHOOK_PORT, which also
serves GET /healthz."""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.telegram.runners.common import BotRunner, health_app

log = logging.getLogger(__name__)


class WebhookRunner(BotRunner):
    mode = "webhook"

    async def _serve(self) -> None:
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
        started = False
        try:
            await web.TCPSite(runner, settings.webhook_host, settings.webhook_port).start()
            await self.dp.emit_startup(bot=self.bot)
            started = True
            await self.bot.set_webhook(
                settings.webhook_url,
                secret_token=secret,
                allowed_updates=self.dp.resolve_used_update_types(),
            )
            log.info(
                "webhook listening on %s:%s%s", settings.webhook_host, settings.webhook_port, path
            )
            await self.runtime.wait_stop()
        finally:
            await runner.cleanup()  # stop taking updates; running analyses go on
            if started:
                await self.dp.emit_shutdown(bot=self.bot)
