"""The outbound scheduler: every request the bot makes to a chat waits here for its turn.

A request's turn comes when
- nothing more urgent is waiting (`Priority`: replies to what a person just did, then final
  answers and their files, then progress edits, and chat actions only from spare budget;
  arrival order within a priority),
- its chat has no other request in flight (requests to one chat keep their order, and a 429
  pause holds the whole chat),
- its chat's allowance has a token (`ChatLimits`: Telegram's documented per-chat limits —
  about one message a second in a private chat with a short burst, 20 a minute in a group;
  edits count like messages),
- and the overall budget gives one (`SendBudget`: about 30 messages a second per bot).

So a 429 only happens when Telegram is stricter than documented; it is still waited out and
the same request repeated (`RetryAfterMiddleware`).

How a request gets its priority, explicitly:
- chat actions are always `SPARE`, drafts are `PROGRESS`;
- otherwise the `sending_as(priority)` context the caller runs in (the analysis flow marks
  its final answer `RESULT`; `PacedEditor` marks its edits `PROGRESS`);
- otherwise `INTERACTIVE`: a handler answering an update (a command, a button, an upload's
  preview, the first progress message of a question).

Progress edits are coalesced: `PacedEditor` waits for its turn with `turn()` and renders the
text only once it has it, so what goes out is the latest state and nothing is rendered for
states nobody will see; an edit of a message queued while an older edit of the same message
still waits replaces it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from aiogram import Bot
from aiogram.methods import (
    EditMessageCaption,
    EditMessageReplyMarkup,
    EditMessageText,
    SendChatAction,
    SendMediaGroup,
    SendMessageDraft,
    TelegramMethod,
)

log = logging.getLogger(__name__)

SLOW_REPLY = 1.0  # seconds: a reply to a person that waited longer is logged


class Priority(IntEnum):
    INTERACTIVE = 0  # a reply to what a person just did
    RESULT = 1  # final answers and their photos and files
    PROGRESS = 2  # progress edits (coalesced per message)
    SPARE = 3  # chat actions: sent only when nothing waits and the budget has a token


_priority: ContextVar[Priority | None] = ContextVar("send_priority", default=None)
_granted: ContextVar[int | str | None] = ContextVar("send_granted_chat", default=None)


@contextlib.contextmanager
def sending_as(priority: Priority) -> Iterator[None]:
    """Requests made inside (and in tasks started inside) go out with `priority`."""
    token = _priority.set(priority)
    try:
        yield
    finally:
        _priority.reset(token)


def priority_of(method: TelegramMethod[Any]) -> Priority:
    if isinstance(method, SendChatAction):
        return Priority.SPARE
    if isinstance(method, SendMessageDraft):
        return Priority.PROGRESS
    chosen = _priority.get()
    return Priority.INTERACTIVE if chosen is None else chosen


def coalescing_key(method: TelegramMethod[Any], priority: Priority) -> tuple[Any, ...] | None:
    """Progress requests that a newer one of the same key makes pointless."""
    if priority is not Priority.PROGRESS:
        return None
    if isinstance(method, EditMessageText | EditMessageCaption | EditMessageReplyMarkup):
        return ("edit", method.chat_id, method.message_id)
    if isinstance(method, SendMessageDraft):
        return ("draft", method.chat_id, method.draft_id)
    return None


def cost_of(method: TelegramMethod[Any]) -> int:
    """Messages a request leaves (an album of N counts N against the limits)."""
    if isinstance(method, SendMediaGroup):
        return max(1, len(method.media))
    return 1


# ---- the overall budget --------------------------------------------------------------------


class SendBudget(Protocol):
    """The bot's overall allowance (one token is one message). One process uses a
    `TokenBucket`; instances sharing a token share a budget kept elsewhere (e.g. Redis)."""

    async def try_take(self) -> float:
        """Take a token: 0.0 when taken, else the seconds to wait before trying again."""
        ...


class TokenBucket:
    """`per_second` tokens a second, at most `burst` saved up."""

    def __init__(
        self, per_second: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.per_second = per_second
        self.burst = max(1.0, burst)
        self.clock = clock
        self._tokens = self.burst
        self._updated = clock()

    async def try_take(self) -> float:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.per_second)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.per_second


# ---- per-chat allowances -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatLimits:
    """Telegram's per-chat limits as documented (its real ones are undocumented and vary):
    about one message a second in a private chat with short bursts, 20 a minute in a group.
    The bursts are kept small so that a Telegram a little stricter still lets them through."""

    private_per_second: float = 1.0
    private_burst: float = 3.0
    group_per_minute: float = 20.0
    group_burst: float = 3.0


def is_private(chat_id: int | str) -> bool:
    """User (private) chats have positive ids; groups, supergroups and channels negative
    ones (or an @username)."""
    return isinstance(chat_id, int) and chat_id > 0


@dataclass(slots=True)
class _Chat:
    per_second: float
    capacity: float
    tokens: float
    updated: float
    blocked_until: float = 0.0
    busy: bool = False
    waiting: int = 0

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now

    def ready_in(self, now: float) -> float:
        self.refill(now)
        short = 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.per_second
        return max(short, self.blocked_until - now)

    def idle(self, now: float) -> bool:
        self.refill(now)
        return (
            not self.busy
            and not self.waiting
            and self.tokens >= self.capacity
            and now >= self.blocked_until
        )


@dataclass(eq=False, slots=True)
class _Ticket:
    priority: Priority
    seq: int
    chat_id: int | str
    cost: int
    key: tuple[Any, ...] | None
    future: asyncio.Future[bool] = field(repr=False)

    @property
    def order(self) -> tuple[int, int]:
        return (self.priority, self.seq)


class Outbox:
    """Hands out turns to requests to chats (see the module's docstring)."""

    def __init__(
        self,
        budget: SendBudget | None,
        limits: ChatLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_in_flight: int = 10,
    ) -> None:
        self.budget = budget
        self.limits = limits or ChatLimits()
        self.clock = clock
        # Requests granted but not answered yet. Telegram counts a request when it arrives:
        # a slow network (or a Telegram that stalls) delivers granted requests in a bunch,
        # and this many at most.
        self.max_in_flight = max_in_flight
        self._in_flight = 0
        self._waiting: list[_Ticket] = []  # sorted by (priority, seq)
        self._chats: dict[int | str, _Chat] = {}
        self._seq = itertools.count()
        self._debt = 0  # budget tokens an album still owes
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.granted: list[tuple[Priority, int | str]] = []  # for tests: the order of turns
        self.record = False

    # ---- what requests call --------------------------------------------------------------

    def waiting(self) -> int:
        return len(self._waiting)

    async def acquire(
        self,
        chat_id: int | str,
        priority: Priority,
        *,
        cost: int = 1,
        key: tuple[Any, ...] | None = None,
    ) -> bool:
        """Wait for the chat's turn. True: the caller may send now and must `release`;
        False: a newer request with the same `key` took this one's place (nothing to send)."""
        loop = asyncio.get_running_loop()
        if key is not None:
            for older in self._waiting:
                if older.key == key and not older.future.done():
                    older.future.set_result(False)
                    self._drop(older)
                    break
        ticket = _Ticket(priority, next(self._seq), chat_id, cost, key, loop.create_future())
        bisect.insort(self._waiting, ticket, key=lambda t: t.order)
        self._chat(chat_id).waiting += 1
        self._kick(loop)
        asked = self.clock()
        try:
            granted = await ticket.future
            waited = self.clock() - asked
            if priority is Priority.INTERACTIVE and waited > SLOW_REPLY:
                log.info(
                    "a reply to chat=%s waited %.1f s for its turn (%d waiting, %d in flight)",
                    chat_id,
                    waited,
                    len(self._waiting),
                    self._in_flight,
                )
            return granted
        except asyncio.CancelledError:
            if ticket.future.done() and not ticket.future.cancelled() and ticket.future.result():
                self.release(chat_id)  # granted just as the caller gave up
            elif ticket in self._waiting:
                self._drop(ticket)
            raise

    def release(self, chat_id: int | str) -> None:
        self._in_flight -= 1
        self._wake.set()
        chat = self._chats.get(chat_id)
        if chat is None:
            return
        chat.busy = False
        if chat.idle(self.clock()):
            del self._chats[chat_id]
        self._wake.set()

    def step_aside(self) -> None:
        """A granted request waits out a 429: meanwhile it is not in flight, so other chats'
        requests are not held up by it (its own chat stays busy: nothing goes there)."""
        self._in_flight -= 1
        self._wake.set()

    def step_back(self) -> None:
        """The request that stepped aside is sent again."""
        self._in_flight += 1

    def hold(self, chat_id: int | str, seconds: float) -> None:
        """Telegram asked for a pause in this chat (a 429): nothing goes there meanwhile."""
        chat = self._chat(chat_id)
        chat.blocked_until = max(chat.blocked_until, self.clock() + seconds)
        chat.tokens = min(chat.tokens, 0.0)

    async def spare(self) -> bool:
        """Take a token for something optional (a chat action) only if nothing waits."""
        if self._waiting or self._debt:
            return False
        return self.budget is None or await self.budget.try_take() == 0.0

    # ---- the scheduler -------------------------------------------------------------------

    def _chat(self, chat_id: int | str) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            limits, now = self.limits, self.clock()
            if is_private(chat_id):
                rate, burst = limits.private_per_second, limits.private_burst
            else:
                rate, burst = limits.group_per_minute / 60, limits.group_burst
            chat = self._chats[chat_id] = _Chat(rate, burst, burst, now)
        return chat

    def _drop(self, ticket: _Ticket) -> None:
        self._waiting.remove(ticket)
        self._wake.set()
        chat = self._chats.get(ticket.chat_id)
        if chat is not None:
            chat.waiting -= 1
            if chat.idle(self.clock()):
                del self._chats[ticket.chat_id]

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not loop:  # a new event loop: what the old one left is void
            self._waiting = [t for t in self._waiting if t.future.get_loop() is loop]
            self._chats.clear()
            for ticket in self._waiting:
                self._chat(ticket.chat_id).waiting += 1
            self._in_flight = 0
            self._debt = 0
            self._loop = loop
            self._wake = asyncio.Event()
            self._task = None
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="outbox")

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(seconds, 0.001))

    def _next(self) -> tuple[_Ticket | None, float]:
        """The most urgent ticket whose chat can take a request now, else the seconds until
        one can."""
        if self._in_flight >= self.max_in_flight:
            return None, 60.0  # until a request in flight is answered
        now = self.clock()
        soonest = 60.0
        for ticket in self._waiting:
            if ticket.future.done():  # its caller gave up; it leaves the queue itself
                continue
            chat = self._chats[ticket.chat_id]
            if chat.busy:
                continue
            wait = chat.ready_in(now)
            if wait <= 0:
                return ticket, 0.0
            soonest = min(soonest, wait)
        return None, soonest

    async def _take_budget(self) -> float:
        if self.budget is None:
            return 0.0
        while self._debt:
            wait = await self.budget.try_take()
            if wait:
                return wait
            self._debt -= 1
        return await self.budget.try_take()

    async def _run(self) -> None:
        while self._waiting:
            try:
                await self._turn()
            except Exception:  # never leave the waiting requests without a scheduler
                log.exception("the outbound scheduler failed; going on")
                await asyncio.sleep(0.1)

    async def _turn(self) -> None:
        """Grant one turn, or wait until one may be granted."""
        self._wake.clear()
        ticket, wait = self._next()
        if ticket is None:
            await self._sleep(wait)
            return
        wait = await self._take_budget()
        if wait:
            await self._sleep(wait)  # a more urgent request may arrive meanwhile
            return
        if ticket not in self._waiting or ticket.future.done():
            return  # cancelled or replaced while the budget answered (the token is lost)
        self._waiting.remove(ticket)
        chat = self._chats[ticket.chat_id]
        chat.waiting -= 1
        chat.busy = True
        self._in_flight += 1
        chat.tokens -= ticket.cost
        self._debt += ticket.cost - 1
        if self.record:
            self.granted.append((ticket.priority, ticket.chat_id))
        ticket.future.set_result(True)


def outbox_of(bot: Bot) -> Outbox | None:
    for middleware in bot.session.middleware:
        outbox = getattr(middleware, "outbox", None)
        if isinstance(outbox, Outbox):
            return outbox
    return None


def granted_chat() -> int | str | None:
    """The chat whose turn the current context already holds (see `turn`)."""
    return _granted.get()


@contextlib.asynccontextmanager
async def turn(bot: Bot, chat_id: int, priority: Priority) -> AsyncIterator[None]:
    """Wait for a turn to send to `chat_id`, then build and send the request inside: the
    request middleware sees the turn is taken and sends at once. For callers that should
    decide what to send only when it can go out (progress edits)."""
    outbox = outbox_of(bot)
    if outbox is None:
        with sending_as(priority):
            yield
        return
    await outbox.acquire(chat_id, priority)
    granted = _granted.set(chat_id)
    try:
        with sending_as(priority):
            yield
    finally:
        _granted.reset(granted)
        outbox.release(chat_id)
