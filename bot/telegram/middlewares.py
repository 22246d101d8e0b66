"""Middlewares: 429 retries for every Bot API request, the user's language, access control,
and one answer to every button press."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter, TelegramServerError
from aiogram.methods import SendChatAction, SendMessageDraft, TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import CallbackQuery, Message, TelegramObject

from bot.services.access import AccessPolicy
from bot.services.people import People
from bot.services.preferences import Preferences
from bot.telegram.i18n import pick_language, translator

log = logging.getLogger(__name__)

CHAT_ACTION_MAX_BACKLOG = 0.5  # seconds


def creates_message(method: TelegramMethod[Any]) -> bool:
    """sendMessage, sendPhoto, sendDocument, sendMediaGroup, copy/forward…: a request that
    leaves something in a chat each time it is carried out. (Chat actions and drafts vanish
    on their own; edits and deletions can be repeated.)"""
    if isinstance(method, SendChatAction | SendMessageDraft):
        return False
    return type(method).__name__.startswith(("Send", "Copy", "Forward"))


class _ChatTurn:
    """Requests to one chat take turns (see RetryAfterMiddleware)."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class SendPacer:
    """Spaces the bot's requests to chats so that together they stay under Telegram's
    overall limit (about 30 messages a second): each request reserves the next free slot,
    first come first served."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0

    def backlog(self) -> float:
        """Seconds until a request made now could go out."""
        return max(0.0, self._next - asyncio.get_running_loop().time())

    async def wait(self) -> None:
        if not self.interval:
            return
        now = asyncio.get_running_loop().time()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class RetryAfterMiddleware(BaseRequestMiddleware):
    """Honour Telegram's flood control: on 429 wait `retry_after` and send the same
    request again (never a different one): a 429 means Telegram did not carry it out.

    A 5xx may come after Telegram did carry the request out (its front end lost the answer),
    so it is repeated, after a short pause, only when a repeat leaves no trace: never for a
    request that creates a message (`creates_message`), which would then appear twice. Those
    errors reach the caller, like a timeout (never repeated here either).

    Requests to the same chat go one at a time, so while one waits out a 429 nothing else
    is sent to that chat (a request during the pause is a violation that Telegram may punish
    with a longer one), and concurrent replies do not keep colliding until their retries
    run out and a message is lost.

    With a `pacer`, requests to chats are also spaced to respect the overall limit. A chat
    action (the "typing…" hint) is dropped rather than queued when the bot is that busy."""

    def __init__(
        self, attempts: int = 5, max_wait: float = 120.0, pacer: SendPacer | None = None
    ) -> None:
        self.attempts = attempts
        self.max_wait = max_wait
        self.pacer = pacer
        self._chats: dict[int | str, _ChatTurn] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        chat_id = getattr(method, "chat_id", None)
        if not isinstance(chat_id, int | str):
            return await self._send(make_request, bot, method)
        if (
            isinstance(method, SendChatAction)
            and self.pacer is not None
            and self.pacer.backlog() > CHAT_ACTION_MAX_BACKLOG
        ):
            return Response[bool](ok=True, result=True)  # type: ignore[return-value]
        turn = self._chats.setdefault(chat_id, _ChatTurn())
        turn.users += 1
        try:
            async with turn.lock:
                return await self._send(make_request, bot, method)
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._chats[chat_id]

    async def _send(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        chat_bound = isinstance(getattr(method, "chat_id", None), int | str)
        for attempt in range(1, self.attempts + 1):
            if chat_bound and self.pacer is not None:
                await self.pacer.wait()
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as error:
                if attempt == self.attempts or error.retry_after > self.max_wait:
                    raise
                log.info(
                    "flood control on %s: waiting %ss", type(method).__name__, error.retry_after
                )
                await asyncio.sleep(error.retry_after)
            except TelegramServerError:
                if attempt == self.attempts or creates_message(method):
                    raise
                await asyncio.sleep(attempt)
        raise AssertionError("unreachable")


class LanguageMiddleware(BaseMiddleware):
    """Puts `lang` and `t` (a Translator) into handler data: in a group that chose an
    answer language in /settings, that one; else the user's saved choice, else their
    Telegram language, else DEFAULT_LANGUAGE."""

    def __init__(
        self, people: People, default: str, preferences: Preferences | None = None
    ) -> None:
        self.people = people
        self.default = default
        self.preferences = preferences

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user = data.get("event_from_user")
        chat = data.get("event_chat")
        lang = self.default
        chat_lang = None
        if self.preferences is not None and chat is not None and chat.type != "private":
            chat_lang = await self.preferences.language(chat.id)  # never raises
        if chat_lang is not None:
            lang = chat_lang
        elif user is not None:
            try:
                saved = await self.people.language(user.id)
            except Exception:  # the store is down: answer in Telegram's language meanwhile
                log.warning("reading the language of user=%s failed", user.id, exc_info=True)
                saved = None
            lang = saved or pick_language(user.language_code, self.default)
        data["lang"] = lang
        data["t"] = translator(lang)
        return await handler(event, data)


class AccessMiddleware(BaseMiddleware):
    """Runs after routing (inner middleware), so only updates a handler would act on are
    checked, before any work. Strangers get a polite refusal, at most once per
    `refusal_interval` per user and chat, never silence and never an error."""

    def __init__(self, policy: AccessPolicy, refusal_interval: float = 600.0) -> None:
        self.policy = policy
        self.refusal_interval = refusal_interval
        self._refused: dict[tuple[int, int], float] = {}

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user = data.get("event_from_user")
        chat = data.get("event_chat")
        if user is None or chat is None:
            return None
        data["is_admin"] = self.policy.is_admin(user.id)
        if self.policy.is_allowed(user.id, chat.id):
            return await handler(event, data)
        log.info("access denied user=%s chat=%s", user.id, chat.id)
        t = data["t"]
        if chat.type == "private":
            text = t("access-denied", user_id=str(user.id))
        else:
            text = t("access-denied-group", chat_id=str(chat.id))
        if isinstance(event, CallbackQuery):
            data["answer"].say(t.plain("access-denied-alert"), alert=True)  # CallbackAnswers
            return None
        if isinstance(event, Message) and self._should_refuse(user.id, chat.id):
            await event.reply(text)
        return None

    def _should_refuse(self, user_id: int, chat_id: int) -> bool:
        now = time.monotonic()
        if len(self._refused) > 10_000:
            self._refused = {
                k: v for k, v in self._refused.items() if now - v < self.refusal_interval
            }
        last = self._refused.get((user_id, chat_id))
        if last is not None and now - last < self.refusal_interval:
            return False
        self._refused[(user_id, chat_id)] = now
        return True


class ButtonAnswer:
    """How a button press is answered: the toast (or alert) Telegram shows over the chat.
    A handler sets `text` and `alert`, or calls `send()` itself before long work (the
    spinner on the button must not wait for a whole analysis); `CallbackAnswers` sends it
    after the handler otherwise — exactly once per press, even when the handler fails."""

    def __init__(self, query: CallbackQuery) -> None:
        self.query = query
        self.text: str | None = None
        self.alert = False
        self.sent = False

    def say(self, text: str, *, alert: bool = False) -> None:
        self.text, self.alert = text, alert

    async def send(self) -> None:
        if self.sent:
            return
        self.sent = True
        try:
            await self.query.answer(self.text, show_alert=self.alert or None)
        except TelegramBadRequest as error:  # e.g. "query is too old": nothing to show now
            log.info("answering a button press failed: %s", error)


class CallbackAnswers(BaseMiddleware):
    """Answers every callback query once (inner middleware: only queries a handler takes;
    the stale-button handler takes the rest). Handlers get `answer: ButtonAnswer`."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not isinstance(event, CallbackQuery):
            return await handler(event, data)
        answer = data["answer"] = ButtonAnswer(event)
        try:
            return await handler(event, data)
        finally:
            await answer.send()
