"""What a chat chose in /settings: the answer language, rich answers, the code file, and
whether the progress message shows the code being written.

Stored per chat (`Store.get_chat_settings`), so the choices survive restarts and are shared
by every bot instance. Handlers and the delivery read them only through this service, as a
frozen `ChatPreferences`; unset choices take the deployment's defaults.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from enum import StrEnum

from bot.config import LANGUAGES
from bot.storage.base import Store

log = logging.getLogger(__name__)


class Choice(StrEnum):
    """The on/off settings of a chat (their names in the store)."""

    RICH_ANSWERS = "rich"
    CODE_FILE = "code_file"
    PROGRESS_CODE = "progress_code"


LANGUAGE = "language"
_ON, _OFF = "on", "off"


@dataclass(frozen=True, slots=True)
class ChatPreferences:
    language: str | None = None  # the chat's answer language; None: each person's own
    rich_answers: bool = False  # may answers go out as rich messages (RICH_ANSWERS=auto)
    code_file: bool = True  # send analysis_code.py after the answer
    progress_code: bool = True  # show the code being written in the progress message

    def choice(self, choice: Choice) -> bool:
        match choice:
            case Choice.RICH_ANSWERS:
                return self.rich_answers
            case Choice.CODE_FILE:
                return self.code_file
            case _:
                return self.progress_code


class Preferences:
    def __init__(self, store: Store, *, rich_answers: bool = False) -> None:
        self._store = store
        self.defaults = ChatPreferences(rich_answers=rich_answers)

    async def of(self, chat_id: int) -> ChatPreferences:
        """The chat's choices; the defaults when the store cannot be read (an answer is
        never lost over a preference)."""
        try:
            stored = await self._store.get_chat_settings(chat_id)
        except Exception:
            log.warning("reading the settings of chat=%s failed", chat_id, exc_info=True)
            return self.defaults
        return self._parse(stored)

    def _parse(self, stored: dict[str, str]) -> ChatPreferences:
        prefs = self.defaults
        language = stored.get(LANGUAGE)
        if language in LANGUAGES:
            prefs = replace(prefs, language=language)

        def flag(choice: Choice, default: bool) -> bool:
            value = stored.get(choice.value)
            return default if value not in (_ON, _OFF) else value == _ON

        return replace(
            prefs,
            rich_answers=flag(Choice.RICH_ANSWERS, prefs.rich_answers),
            code_file=flag(Choice.CODE_FILE, prefs.code_file),
            progress_code=flag(Choice.PROGRESS_CODE, prefs.progress_code),
        )

    async def language(self, chat_id: int) -> str | None:
        """The chat's answer language, if it chose one."""
        return (await self.of(chat_id)).language

    async def set_language(self, chat_id: int, language: str | None) -> ChatPreferences:
        """Choose the chat's answer language (None: each person's own)."""
        if language is not None and language not in LANGUAGES:
            raise ValueError(f"unknown language {language!r}")
        await self._store.set_chat_setting(chat_id, LANGUAGE, language)
        return await self.of(chat_id)

    async def set(self, chat_id: int, choice: Choice, on: bool) -> ChatPreferences:
        await self._store.set_chat_setting(chat_id, choice.value, _ON if on else _OFF)
        return await self.of(chat_id)
