"""/settings: one message with buttons for the chat's answer language, rich answers, the
code file and the code in the progress message. In groups only the group's admins may
change them (asked from Telegram at each press); in a private chat, the person.

The answer language: in a private chat it is the person's own language (the same choice as
/language). In a group it is the group's: once chosen, the bot answers everyone there in it;
"each person's own" (the default) answers each member in their language.
"""

from __future__ import annotations

import contextlib
import logging

from aiogram import Bot, Router
from aiogram.enums import ChatMemberStatus, ChatType
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Chat, Message

from bot.config import LANGUAGES, Settings
from bot.services.people import People
from bot.services.preferences import ChatPreferences, Choice, Preferences
from bot.telegram import keyboards
from bot.telegram.callbacks import SettingCb
from bot.telegram.i18n import Translator, pick_language, translator
from bot.telegram.middlewares import ButtonAnswer

log = logging.getLogger(__name__)

ADMIN_STATUSES = {ChatMemberStatus.CREATOR, ChatMemberStatus.ADMINISTRATOR}


def settings_text(t: Translator, prefs: ChatPreferences, *, private: bool) -> str:
    if private:
        language = keyboards.LANGUAGE_LABELS[t.language]
    elif prefs.language is not None:
        language = keyboards.LANGUAGE_LABELS[prefs.language]
    else:
        language = t.plain("settings-language-own")
    lines = [
        t("settings-title"),
        "",
        t("settings-language", value=language),
        t("settings-rich", value=keyboards.on_off(t, prefs.rich_answers)),
        t("settings-code-file", value=keyboards.on_off(t, prefs.code_file)),
        t("settings-progress-code", value=keyboards.on_off(t, prefs.progress_code)),
    ]
    if not private:
        lines += ["", t("settings-admins-only")]
    return "\n".join(lines)


async def may_change(bot: Bot, chat: Chat, user_id: int) -> bool:
    """Anyone in a private chat; in groups the group's admins (asked each time: admins
    change, and Telegram is the authority)."""
    if chat.type == ChatType.PRIVATE:
        return True
    try:
        member = await bot.get_chat_member(chat.id, user_id)
    except TelegramAPIError as error:
        log.warning("getChatMember failed chat=%s: %s", chat.id, error)
        return False
    return member.status in ADMIN_STATUSES


async def show_settings(message: Message, t: Translator, preferences: Preferences) -> None:
    private = message.chat.type == ChatType.PRIVATE
    prefs = await preferences.of(message.chat.id)
    await message.answer(
        settings_text(t, prefs, private=private),
        reply_markup=keyboards.settings(t, prefs, private=private),
    )


async def setting_pressed(
    query: CallbackQuery,
    callback_data: SettingCb,
    bot: Bot,
    t: Translator,
    people: People,
    preferences: Preferences,
    settings: Settings,
    answer: ButtonAnswer,
) -> None:
    message = query.message
    if not isinstance(message, Message):
        answer.say(t.plain("button-outdated"))
        return
    chat = message.chat
    private = chat.type == ChatType.PRIVATE
    if not await may_change(bot, chat, query.from_user.id):
        answer.say(t.plain("settings-not-admin"), alert=True)
        return
    name, value = callback_data.name, callback_data.value
    try:
        if name == "language" and private and value in LANGUAGES:
            await people.set_language(query.from_user.id, value)
            t = translator(value)
        elif name == "language" and not private and (value in LANGUAGES or value == "auto"):
            chosen = None if value == "auto" else value
            await preferences.set_language(chat.id, chosen)
            if chosen is not None:
                t = translator(chosen)
            else:  # each person's own: this person's, as the language middleware finds it
                own = await people.language(query.from_user.id)
                default = settings.default_language
                t = translator(own or pick_language(query.from_user.language_code, default))
        elif name in {c.value for c in Choice} and value in ("on", "off"):
            await preferences.set(chat.id, Choice(name), value == "on")
        else:
            answer.say(t.plain("button-outdated"), alert=True)
            return
    except Exception:
        log.warning("saving a setting failed chat=%s", chat.id, exc_info=True)
        answer.say(t.plain("settings-failed"), alert=True)
        return
    answer.say(t.plain("settings-saved"))
    prefs = await preferences.of(chat.id)
    with contextlib.suppress(TelegramBadRequest):  # e.g. pressed twice: "not modified"
        await message.edit_text(
            settings_text(t, prefs, private=private),
            reply_markup=keyboards.settings(t, prefs, private=private),
        )


def create_router() -> Router:
    """A new router with this module's handlers (one per dispatcher)."""
    router = Router(name="settings")
    router.message.register(show_settings, Command("settings"))
    router.callback_query.register(setting_pressed, SettingCb.filter())
    return router
