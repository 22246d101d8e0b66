"""`python -m bot.healthcheck`: exit 0 when the running bot's /healthz says ok (Docker
HEALTHCHECK). Reads the same environment as the bot; imports nothing heavy."""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    if os.environ.get("WEBHOOK_URL"):
        port = os.environ.get("WEBHOOK_PORT", "8080")
    else:
        port = os.environ.get("HEALTH_PORT", "")
    if not port:
        return 0  # no health endpoint configured: nothing to check
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
