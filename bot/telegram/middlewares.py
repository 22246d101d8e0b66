"""Middlewares: turns and 429 retries for every Bot API request to a chat, the user's
language, access control, and one answer to every button press."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any, Protocol

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
from bot.telegram.outbox import (
    Outbox,
    Priority,
    coalescing_key,
    cost_of,
    granted_chat,
    priority_of,
)

log = logging.getLogger(__name__)


def creates_message(method: TelegramMethod[Any]) -> bool:
    """sendMessage, sendPhoto, sendDocument, sendMediaGroup, copy/forward…: a request that
    leaves something in a chat each time it is carried out. (Chat actions and drafts vanish
    on their own; edits and deletions can be repeated.)"""
    if isinstance(method, SendChatAction | SendMessageDraft):
        return False
    return type(method).__name__.startswith(("Send", "Copy", "Forward"))


class ChatOrder(Protocol):
    """Holds a chat for one request at a time across instances (`RedisLocks`)."""

    def hold(self, key: str | int) -> AbstractAsyncContextManager[None]: ...


class RetryAfterMiddleware(BaseRequestMiddleware):
    """Every request to a chat waits for its turn in the `outbox` (priorities, Telegram's
    per-chat and overall limits; see bot.telegram.outbox), and flood control is honoured:
    on 429 the chat is held for `retry_after` and the same request is sent again (never a
    different one): a 429 means Telegram did not carry it out. The request keeps its turn
    meanwhile, so nothing else is sent to that chat during the pause (a request then is a
    violation Telegram may punish with a longer one).

    A 5xx may come after Telegram did carry the request out (its front end lost the answer),
    so it is repeated, after a short pause, only when a repeat leaves no trace: never for a
    request that creates a message (`creates_message`), which would then appear twice. Those
    errors reach the caller, like a timeout (never repeated here either).

    A chat action (the "typing…" hint) goes out only from spare budget, else it is dropped;
    a progress edit replaced by a newer one of the same message while waiting is dropped
    too (answered `True`).

    With a `chat_order` (several instances), a request to a chat also holds that chat's
    shared lock while it is sent, so two instances' requests to one chat go one at a time,
    in order."""

    def __init__(
        self,
        attempts: int = 5,
        max_wait: float = 120.0,
        outbox: Outbox | None = None,
        chat_order: ChatOrder | None = None,
    ) -> None:
        self.attempts = attempts
        self.max_wait = max_wait
        self.outbox = outbox
        self.chat_order = chat_order

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        chat_id = getattr(method, "chat_id", None)
        outbox = self.outbox
        if outbox is None or not isinstance(chat_id, int | str) or granted_chat() == chat_id:
            async with self._ordered(chat_id):
                return await self._send(make_request, bot, method, chat_id)
        priority = priority_of(method)
        if priority is Priority.SPARE:
            if not await outbox.spare():
                return _DONE  # type: ignore[return-value]
            return await self._send(make_request, bot, method, chat_id)
        key = coalescing_key(method, priority)
        if not await outbox.acquire(chat_id, priority, cost=cost_of(method), key=key):
            return _DONE  # type: ignore[return-value]
        try:
            async with self._ordered(chat_id):
                return await self._send(make_request, bot, method, chat_id, granted=True)
        finally:
            outbox.release(chat_id)

    def _ordered(self, chat_id: Any) -> AbstractAsyncContextManager[None]:
        """The chat's shared lock across instances (none with one instance)."""
        if self.chat_order is None or not isinstance(chat_id, int | str):
            return nullcontext()
        return self.chat_order.hold(chat_id)

    async def _send(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
        chat_id: Any,
        *,
        granted: bool = False,
    ) -> Response[TelegramType]:
        """Send; a 429 is waited out and the same request repeated. A `granted` request (one
        the outbox gave a turn) steps aside while it waits, so ten chats under flood control
        do not stop the bot from answering everyone else."""
        for attempt in range(1, self.attempts + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as error:
                if attempt == self.attempts or error.retry_after > self.max_wait:
                    raise
                log.info(
                    "flood control on %s: waiting %ss", type(method).__name__, error.retry_after
                )
                outbox = self.outbox
                if outbox is not None and isinstance(chat_id, int | str):
                    outbox.hold(chat_id, error.retry_after)
                if outbox is not None and granted:
                    outbox.step_aside()
                    try:
                        await asyncio.sleep(error.retry_after)
                    finally:
                        outbox.step_back()
                else:
                    await asyncio.sleep(error.retry_after)
            except TelegramServerError:
                if attempt == self.attempts or creates_message(method):
                    raise
                await asyncio.sleep(attempt)
        raise AssertionError("unreachable")


_DONE = Response[bool](ok=True, result=True)


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
