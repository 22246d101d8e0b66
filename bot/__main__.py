"""`python -m bot`: start the bot (long polling, or a webhook when WEBHOOK_URL is set)."""

from __future__ import annotations

import asyncio
import sys

from bot.config import ConfigError, load_settings_or_exit
from bot.logs import setup_logging


def main() -> None:
    settings = load_settings_or_exit()
    setup_logging(settings)
    from bot.telegram.runner import serve  # after the settings check: aiogram imports slowly

    try:
        asyncio.run(serve(settings))
    except ConfigError as error:  # e.g. CODE_EXECUTION=local on a host that cannot sandbox
        print(error, file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
