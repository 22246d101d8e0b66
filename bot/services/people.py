"""What the bot keeps about people: their language preference and their usage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bot.config import LANGUAGES
from bot.storage.base import Store, UsageTotals


@dataclass(frozen=True, slots=True)
class Stats:
    """Totals across every user and chat, for admins."""

    today: UsageTotals
    week: UsageTotals  # the last seven days, today included


class People:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def language(self, user_id: int) -> str | None:
        """The language the user chose with /language, if any."""
        return await self._store.get_language(user_id)

    async def set_language(self, user_id: int, language: str) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"unknown language {language!r}")
        await self._store.set_language(user_id, language)

    async def usage_today(self, user_id: int) -> UsageTotals:
        return await self._store.user_usage(_today(), user_id)

    async def stats(self) -> Stats:
        today = _today()
        return Stats(
            today=await self._store.total_usage(today, today),
            week=await self._store.total_usage(today - timedelta(days=6), today),
        )


def _today() -> date:
    return datetime.now(UTC).date()
