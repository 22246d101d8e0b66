"""Building the aiogram objects: the `Bot` (session, request middlewares) and the `Dispatcher`
(routers, middlewares, the services handlers get), plus the command menu. Running them is
`bot.telegram.runners`' job."""

from __future__ import annotations

from typing import Any

from aiogram import Bot, Dispatcher, methods
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.methods.base import Response, TelegramMethod
from aiogram.types import BotCommand, BotCommandScopeAllGroupChats, BotCommandScopeAllPrivateChats

from bot.app import Services
from bot.config import Settings
from bot.telegram.errors import report_error
from bot.telegram.flow import Analyst
from bot.telegram.handlers import get_routers
from bot.telegram.i18n import LANGUAGES, translator
from bot.telegram.middlewares import (
    AccessMiddleware,
    CallbackAnswers,
    LanguageMiddleware,
    RetryAfterMiddleware,
    SendPacer,
)

PRIVATE_COMMANDS = (
    "start",
    "help",
    "dataset",
    "files",
    "cancel",
    "reset",
    "usage",
    "language",
    "settings",
)
GROUP_COMMANDS = ("analyze", "dataset", "files", "cancel", "reset", "usage", "settings", "help")


def response_types() -> list[type[Any]]:
    """`Response[<result type>]` of every API method, built once.

    aiogram parametrizes `Response[...]` for every API call, and pydantic caches such classes
    only weakly: the garbage collector drops them and each is rebuilt (milliseconds of schema
    building on the event loop, a few times per analysis). Whoever keeps this list alive (the
    `Runtime`) stops that."""
    returning: dict[str, Any] = {}
    for name in methods.__all__:
        method = getattr(methods, name)
        is_method = isinstance(method, type) and issubclass(method, TelegramMethod)
        if is_method and method is not TelegramMethod:
            returning.setdefault(repr(method.__returning__), method.__returning__)
    return [Response[result] for result in returning.values()]


def create_bot(settings: Settings) -> Bot:
    api = (
        TelegramAPIServer.from_base(
            settings.telegram_api_base, is_local=settings.telegram_api_local
        )
        if settings.telegram_api_base
        else PRODUCTION
    )
    session = AiohttpSession(api=api)
    session.middleware(RetryAfterMiddleware(pacer=SendPacer(settings.telegram_messages_per_second)))
    return Bot(
        settings.telegram_bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def create_dispatcher(services: Services) -> Dispatcher:
    dp = Dispatcher(
        settings=services.settings,
        people=services.people,
        limits=services.limits,
        files=services.files,
        analyses=services.analyses,
        catalog=services.catalog,
        preferences=services.preferences,
        answers=services.answers,
        analyst=Analyst(
            services.analyses,
            services.catalog,
            services.settings,
            services.preferences,
            services.answers,
        ),
    )
    language = LanguageMiddleware(
        services.people, services.settings.default_language, services.preferences
    )
    dp.message.outer_middleware(language)
    dp.callback_query.outer_middleware(language)
    dp.callback_query.middleware(CallbackAnswers())  # first: it also answers refusals
    access = AccessMiddleware(services.access)
    dp.message.middleware(access)
    dp.callback_query.middleware(access)
    dp.errors.register(report_error)
    dp.include_routers(*get_routers())
    return dp


async def register_commands(bot: Bot, default_language: str) -> None:
    for language in LANGUAGES:
        t = translator(language)
        code = None if language == default_language else language
        for scope, names in (
            (BotCommandScopeAllPrivateChats(), PRIVATE_COMMANDS),
            (BotCommandScopeAllGroupChats(), GROUP_COMMANDS),
        ):
            commands = [BotCommand(command=n, description=t.plain(f"cmd-{n}")) for n in names]
            await bot.set_my_commands(commands, scope=scope, language_code=code)
