"""`python -m bot check` (in Docker: `docker compose run --rm bot check`): verify a deployment in
one go and print a table. Exit code 0 when nothing failed (warnings and skipped rows allowed),
1 otherwise. Secrets are never printed (every line is redacted on top of that)."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from bot.config import Settings
from bot.logs import secrets_of
from bot.runtime import Runtime
from bot.services.selfcheck import (
    CheckRow,
    Status,
    check_provider,
    check_sandbox,
    check_storage,
)


async def collect(settings: Settings) -> list[CheckRow]:
    from bot.telegram.check import check_telegram  # aiogram imports slowly: only when needed

    telegram, storage, provider, sandbox = await asyncio.gather(
        check_telegram(settings),
        check_storage(settings),
        check_provider(settings),
        check_sandbox(settings),
    )
    return [*telegram, storage, *provider, sandbox]


def render(rows: list[CheckRow], settings: Settings) -> str:
    width = max(len(row.name) for row in rows)
    status_width = max(len(row.status.value) for row in rows)
    lines = []
    for row in rows:
        lines.append(f"{row.name:<{width}}  {row.status.value:<{status_width}}  {row.detail}")
        if row.fix:
            lines.append(f"{'':<{width}}  {'':<{status_width}}  → {row.fix}")
    failed = sum(row.status is Status.FAIL for row in rows)
    warned = sum(row.status is Status.WARN for row in rows)
    lines.append("")
    if failed:
        lines.append(f"{failed} check(s) failed: fix them (→) and run the check again.")
    else:
        lines.append("All checks passed" + (f" ({warned} warning(s))." if warned else "."))
    text = "\n".join(lines)
    for secret in secrets_of(settings):
        text = text.replace(secret, "***")
    return text + "\n"


async def run_checks(settings: Settings, runtime: Runtime, out: TextIO | None = None) -> int:
    """Run every check (a stop signal interrupts them) and print the table; the exit code."""
    out = out or sys.stdout
    runtime.attach_loop()
    print(
        "Checking the deployment (one real analysis turn: up to a few minutes)…",
        file=out,
        flush=True,
    )
    checks = asyncio.create_task(collect(settings))
    stop = asyncio.create_task(runtime.wait_stop())
    try:
        await asyncio.wait({checks, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if not checks.done():
        checks.cancel()
        await asyncio.gather(checks, return_exceptions=True)
        print("interrupted", file=out)
        return 130
    rows = checks.result()
    out.write(render(rows, settings))
    out.flush()
    return 1 if any(row.status is Status.FAIL for row in rows) else 0
