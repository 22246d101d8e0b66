"""/usage for everyone, /stats for admins."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.services.analysis import AnalysisService
from bot.services.limits import Limits
from bot.services.people import People
from bot.telegram.i18n import Translator


async def usage(
    message: Message, t: Translator, people: People, limits: Limits, is_admin: bool
) -> None:
    if message.from_user is None:
        return
    totals = await people.usage_today(message.from_user.id)
    args = {
        "analyses": totals.analyses,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
    }
    if is_admin:
        await message.answer(t("usage-unlimited", **args))
    else:
        await message.answer(t("usage", limit=limits.quotas.per_user, **args))


async def stats(
    message: Message, t: Translator, people: People, analyses: AnalysisService, is_admin: bool
) -> None:
    if not is_admin:
        await message.answer(t("stats-denied"))
        return
    totals = await people.stats()
    day, week = totals.today, totals.week
    await message.answer(
        t(
            "stats",
            today_analyses=day.analyses,
            today_users=day.users,
            today_chats=day.chats,
            today_in=day.input_tokens,
            today_out=day.output_tokens,
            week_analyses=week.analyses,
            week_users=week.users,
            week_chats=week.chats,
            week_in=week.input_tokens,
            week_out=week.output_tokens,
            running=analyses.running_count,
        )
    )


def create_router() -> Router:
    """A new router with this module's handlers (one per dispatcher)."""
    router = Router(name="admin")
    router.message.register(usage, Command("usage"))
    router.message.register(stats, Command("stats"))
    return router
