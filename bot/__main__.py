"""`python -m bot`: start the bot (long polling, or a webhook when WEBHOOK_URL is set)."""

from __future__ import annotations

import asyncio

from bot.config import load_settings_or_exit
from bot.logs import setup_logging


def main() -> None:
    settings = load_settings_or_exit()
    setup_logging(settings)
    from bot.telegram.runner import serve  # after the settings check: aiogram imports slowly

    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
