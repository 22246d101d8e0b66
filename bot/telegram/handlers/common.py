"""/start, /help, /language."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import CallbackQuery, Message

from bot.catalog import Catalog
from bot.services.limits import Limits
from bot.services.people import People
from bot.telegram import keyboards
from bot.telegram.callbacks import LanguageCb
from bot.telegram.i18n import LANGUAGES, Translator, translator
from bot.telegram.middlewares import ButtonAnswer


async def start(message: Message, t: Translator, catalog: Catalog) -> None:
    await message.answer(t("welcome"))
    await message.answer(t("welcome-datasets"), reply_markup=keyboards.datasets(t, catalog.all()))


def help_text(t: Translator, limits: Limits, bot_username: str) -> str:
    mib = 1024 * 1024
    return t(
        "help",
        max_files=limits.files.max_files,
        max_chat_mb=limits.files.max_chat_bytes // mib,
        max_file_mb=limits.max_file_bytes // mib,
        daily_quota=limits.quotas.per_user,
        timeout_min=max(1, round(limits.analysis_timeout_seconds / 60)),
        retention_days=round(limits.file_retention_days),
        bot_username=bot_username,
    )


async def help_(message: Message, bot: Bot, t: Translator, limits: Limits) -> None:
    me = await bot.me()
    await message.answer(help_text(t, limits, me.username or "bot"))


async def language(message: Message, t: Translator) -> None:
    await message.answer(t("language-choose"), reply_markup=keyboards.languages())


async def language_chosen(
    query: CallbackQuery, callback_data: LanguageCb, people: People, answer: ButtonAnswer
) -> None:
    await people.set_language(query.from_user.id, callback_data.language)
    t = translator(callback_data.language)
    answer.say(t.plain("language-set"))
    if isinstance(query.message, Message):
        await query.message.edit_text(t("language-set"))


def create_router() -> Router:
    """A new router with this module's handlers (one per dispatcher)."""
    router = Router(name="common")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    router.message.register(language, Command("language"))
    router.callback_query.register(language_chosen, LanguageCb.filter(F.language.in_(LANGUAGES)))
    return router
