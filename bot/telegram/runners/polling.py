"""Long polling (the default), with GET /healthz on HEALTH_PORT when it is set."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.telegram.runners.common import BotRunner, health_app


class PollingRunner(BotRunner):
    mode = "polling"

    async def _serve(self) -> None:
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
