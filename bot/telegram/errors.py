"""The dispatcher's error handler: an exception no handler caught is logged once, with the
update it came from, and the person is told in their language instead of meeting silence."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ErrorEvent, User

from bot.config import Settings
from bot.telegram.i18n import pick_language, translator

log = logging.getLogger(__name__)


async def report_error(
    event: ErrorEvent, bot: Bot, settings: Settings, event_from_user: User | None = None
) -> bool:
    update = event.update
    log.error(
        "update %s failed: %s",
        update.update_id,
        event.exception,
        exc_info=(type(event.exception), event.exception, event.exception.__traceback__),
    )
    message = update.message or (
        update.callback_query.message if update.callback_query is not None else None
    )
    if message is None:
        return True
    # The update failed, maybe before the saved language was read: Telegram's language.
    code = event_from_user.language_code if event_from_user else None
    t = translator(pick_language(code, settings.default_language))
    try:
        await bot.send_message(
            message.chat.id,
            t("fail-internal"),
            message_thread_id=message.message_thread_id
            if getattr(message, "is_topic_message", False)
            else None,
        )
    except TelegramAPIError as error:  # e.g. Telegram itself is the trouble
        log.warning("telling chat=%s about an error failed: %s", message.chat.id, error)
    return True
