"""Error classification and retry policy for calls to the Responses/Files API.

The SDK's own retries are disabled (`max_retries=0` on the client) so that the engine decides
what is retried, how often and how long it waits: only requests that cannot have run any code
are retried (see `AnalysisEngine`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import openai

from bot.engine.types import FailureReason

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: `base_delay * 2**attempt` (±20 % jitter), at least any `Retry-After`
    the server asked for, at most `max_delay`."""

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, error: BaseException | None = None) -> float:
        delay = self.base_delay * (2**attempt) * random.uniform(0.8, 1.2)
        hinted = retry_after_seconds(error)
        if hinted is not None:
            delay = max(delay, hinted)
        return max(0.0, min(delay, self.max_delay))


def retry_after_seconds(error: BaseException | None) -> float | None:
    """The server's `retry-after-ms` / `retry-after` (seconds) hint, if any."""
    if not isinstance(error, openai.APIStatusError):
        return None
    headers = error.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return max(0.0, float(raw) * scale)
        except ValueError:
            continue  # an HTTP date: ignore, use our own backoff
    return None


def is_transient(error: BaseException) -> bool:
    """Connection problems, timeouts, 408/409/429 and 5xx: worth another try."""
    if isinstance(error, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(error, openai.APIStatusError):
        return error.status_code in RETRYABLE_STATUSES or error.status_code >= 500
    return False


def failure_reason(error: BaseException) -> FailureReason:
    """Map an SDK exception that ended a request to a `FailureReason`."""
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        if status == 429:
            return FailureReason.RATE_LIMITED
        if status in (401, 403):
            return FailureReason.AUTH
        if status >= 500 or status in RETRYABLE_STATUSES:
            return FailureReason.UNAVAILABLE
        return FailureReason.BAD_REQUEST
    return FailureReason.UNAVAILABLE


def error_text(error: BaseException) -> str:
    """Everything the server said about an error, for matching and for logs (no secrets)."""
    parts = [str(getattr(error, "message", "") or error)]
    body = getattr(error, "body", None)
    if body is not None:
        try:
            parts.append(json.dumps(body, ensure_ascii=False, default=str))
        except (TypeError, ValueError):
            parts.append(str(body))
    return " ".join(parts)


def describe(error: BaseException) -> str:
    """A short technical description for `TurnFailed.detail` and logs."""
    if isinstance(error, openai.APIStatusError):
        message = getattr(error, "message", "") or ""
        return f"HTTP {error.status_code}: {message}"[:500]
    return f"{type(error).__name__}: {error}"[:500]


async def call_with_retries(
    policy: RetryPolicy,
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
) -> T:
    """Run `call`, retrying transient failures per `policy`; re-raise the last error."""
    attempt = 0
    while True:
        try:
            return await call()
        except openai.APIError as error:
            if not is_transient(error) or attempt >= policy.max_retries:
                raise
            delay = policy.delay(attempt, error)
            attempt += 1
            logger.warning(
                "%s failed (%s); retry %d/%d in %.2fs",
                what,
                describe(error),
                attempt,
                policy.max_retries,
                delay,
            )
            await asyncio.sleep(delay)
