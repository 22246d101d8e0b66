"""/start, /help, /language."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import CallbackQuery, Message

from bot.catalog import Catalog
from bot.config import Settings
from bot.storage.base import Store
from bot.telegram import keyboards
from bot.telegram.callbacks import LanguageCb
from bot.telegram.i18n import LANGUAGES, Translator, translator


async def start(message: Message, t: Translator, catalog: Catalog) -> None:
    await message.answer(t("welcome"))
    await message.answer(t("welcome-datasets"), reply_markup=keyboards.datasets(t, catalog.all()))


def help_text(t: Translator, settings: Settings, bot_username: str) -> str:
    max_file = settings.max_chat_bytes if settings.telegram_api_local else 20 * 1024 * 1024
    return t(
        "help",
        max_files=settings.max_files_per_chat,
        max_chat_mb=settings.max_chat_bytes // (1024 * 1024),
        max_file_mb=min(max_file, settings.max_chat_bytes) // (1024 * 1024),
        daily_quota=settings.daily_user_quota,
        timeout_min=max(1, round(settings.analysis_timeout_seconds / 60)),
        retention_days=round(settings.file_retention_days),
        bot_username=bot_username,
    )


async def help_(message: Message, bot: Bot, t: Translator, settings: Settings) -> None:
    me = await bot.me()
    await message.answer(help_text(t, settings, me.username or "bot"))


async def language(message: Message, t: Translator) -> None:
    await message.answer(t("language-choose"), reply_markup=keyboards.languages())


async def language_chosen(query: CallbackQuery, callback_data: LanguageCb, store: Store) -> None:
    await store.set_language(query.from_user.id, callback_data.language)
    t = translator(callback_data.language)
    await query.answer(t.plain("language-set"))
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
