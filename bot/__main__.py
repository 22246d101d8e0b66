"""`python -m bot`: start the bot (long polling, or a webhook when WEBHOOK_URL is set).
`python -m bot check`: verify a deployment (Telegram, webhook, provider, storage) and exit."""

from __future__ import annotations

import asyncio
import sys

from bot.runtime import Runtime


def main(argv: list[str] | None = None) -> int:
    runtime = Runtime()
    # First thing: a SIGTERM from `docker stop` during the slow start-up is noted, not lost.
    runtime.install_signal_handlers()
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] not in ("check", "serve"):
        print("usage: python -m bot [serve | check]", file=sys.stderr)
        return 2

    from bot.config import ConfigError, load_settings_or_exit
    from bot.logs import setup_logging

    settings = load_settings_or_exit()
    setup_logging(settings)
    try:
        if args and args[0] == "check":
            from bot.check import run_checks

            return asyncio.run(run_checks(settings, runtime))
        if runtime.stop_requested:
            return 0
        from bot.telegram.runners import serve  # after the settings check: aiogram imports slowly

        return asyncio.run(serve(settings, runtime))
    except ConfigError as error:  # e.g. CODE_EXECUTION=local on a host that cannot sandbox
        print(error, file=sys.stderr)
        return 2
    finally:
        runtime.close()


if __name__ == "__main__":
    sys.exit(main())
