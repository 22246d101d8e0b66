"""Stopping a background task for sure."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[Any], give_up_after: float = 10.0) -> None:
    """Cancel `task` and wait for it to end, cancelling again while it goes on: on Python 3.11
    `asyncio.wait_for` (inside redis-py's connection pool, for one) can swallow a cancellation
    that arrives as its inner wait completes, and the task would then sleep on (housekeeping:
    a minute) with the shutdown waiting for it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_after
    while not task.done() and loop.time() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=0.2)
    if not task.done():
        log.warning("%s did not stop when cancelled", task.get_name())
        return
    if not task.cancelled() and task.exception() is not None:
        log.warning("%s failed", task.get_name(), exc_info=task.exception())
