"""`python -m bot.healthcheck`: exit 0 only when the running bot's /healthz says ok (Docker
HEALTHCHECK). Reads the bot's own settings, so it asks the port the bot listens on: WEBHOOK_PORT
in webhook mode, HEALTH_PORT in polling mode. No port, nothing listening, a configuration the
bot cannot start with, or a 503 (storage down): unhealthy, with the reason on stderr."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from bot.config import ConfigError, load_settings

ANY_ADDRESS = ("0.0.0.0", "::", "")  # noqa: S104 - compared, not bound


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"unhealthy: the bot cannot start with this configuration\n{error}", file=sys.stderr)
        return 1
    port = settings.webhook_port if settings.use_webhook else settings.health_port
    if port is None:
        print(
            "unhealthy: no health endpoint to ask; set HEALTH_PORT (the Docker image sets 8081: "
            "do not override it with an empty HEALTH_PORT= in .env)",
            file=sys.stderr,
        )
        return 1
    host = "127.0.0.1" if settings.webhook_host in ANY_ADDRESS else settings.webhook_host
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=4) as response:
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as error:
        print(f"unhealthy: /healthz answered {error.code}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"unhealthy: nothing answers on port {port} ({error})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
