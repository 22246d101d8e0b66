"""The answer streamed as it is written, as a Telegram draft (private chats only).

`sendMessageDraft` shows an ephemeral preview under the chat (about 30 s unless renewed); the
answer itself is kept only by the final `sendMessage`, which also removes the draft. One draft
id per analysis, derived from the analysis id, so a stop pressed on any instance finds the
analysis (`analysis_id_of`). Drafts carry `can_stop`: the stop button delivers a
`stopped_message_generation` update, handled like ⏹ Cancel.

`DraftStreamer` sends at most one draft per `interval`, always the newest text, never two at
once, and gives up for good at the first error (the caller then falls back to the progress
message's answer preview). The text is the Markdown converted as for the final message; past
Telegram's 4096 characters the draft shows the tail, after an ellipsis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import telegramify_markdown
from aiogram import Bot
from aiogram.types import MessageEntity
from telegramify_markdown import utf16_len

from bot.engine import rewrite_sandbox_links

log = logging.getLogger(__name__)

DRAFT_INTERVAL = 0.7  # seconds between drafts; Telegram publishes no limit (see the notes)
DRAFT_LIMIT = 4096  # characters (UTF-16 code units) of draft text
MAX_ENTITIES = 100
ELLIPSIS = "…"
KEEPALIVE = 20.0  # seconds: a draft not renewed vanishes after about 30
_ID_DIGITS = 12  # analysis ids are 12 hex digits (48 bits: a valid Bot API integer)


def draft_id_of(analysis_id: str) -> int | None:
    """The draft id of an analysis (None when its id cannot be one)."""
    if len(analysis_id) != _ID_DIGITS:
        return None
    try:
        value = int(analysis_id, 16)
    except ValueError:
        return None
    return value or None


def analysis_id_of(draft_id: int) -> str | None:
    """The analysis a draft belongs to (the inverse of `draft_id_of`)."""
    if not 0 < draft_id < 16**_ID_DIGITS:
        return None
    return f"{draft_id:0{_ID_DIGITS}x}"


def draft_text(markdown: str) -> tuple[str, list[MessageEntity]]:
    """The draft for the answer so far: formatted like the final message, and when longer than
    a draft may be, its last part after an ellipsis (entities cut by the start are dropped)."""
    text, entities = telegramify_markdown.convert(rewrite_sandbox_links(markdown))
    if utf16_len(text) > DRAFT_LIMIT:
        keep = DRAFT_LIMIT - utf16_len(ELLIPSIS)
        cut_units = utf16_len(text) - keep
        # Find the character index where the kept tail starts (never inside a surrogate pair).
        units, index = 0, 0
        while units < cut_units:
            units += 2 if ord(text[index]) > 0xFFFF else 1
            index += 1
        shift = utf16_len(ELLIPSIS) - units
        text = ELLIPSIS + text[index:]
        kept = []
        for entity in entities:
            if entity.offset >= units:
                entity.offset += shift
                kept.append(entity)
        entities = kept
    converted = [MessageEntity(**e.to_dict()) for e in entities[:MAX_ENTITIES]]
    return text, converted


class DraftStreamer:
    """Streams one analysis's answer to a private chat as a draft."""

    def __init__(
        self,
        bot: Bot,
        chat_id: int,
        draft_id: int,
        *,
        thread_id: int | None = None,
        interval: float = DRAFT_INTERVAL,
        keepalive: float = KEEPALIVE,
    ) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.draft_id = draft_id
        self.thread_id = thread_id
        self.interval = interval
        self.keepalive = keepalive
        self.failed = False  # a draft was refused or lost: the chat is back on the edit path
        self.stopped = False  # the user pressed the draft's stop button
        self.sent = 0
        self._wanted: str | None = None
        self._shown = ""
        self._shown_entities: list[MessageEntity] = []
        self._wake = asyncio.Event()
        self._sending = asyncio.Lock()
        self._last = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def active(self) -> bool:
        """True while drafts carry the answer."""
        return not (self.failed or self.stopped or self._closed)

    def update(self, markdown: str) -> None:
        """Show `markdown` (the whole answer so far); coalesces with a pending update."""
        if not self.active:
            return
        self._wanted = markdown
        if self._task is None:
            self._task = asyncio.create_task(self._loop())
        self._wake.set()

    def stop(self) -> None:
        """The user stopped the draft: send nothing more, at once."""
        self.stopped = True
        self._end()

    async def close(self) -> None:
        """Send nothing more; returns once a draft in flight has been answered, so that the
        final message surely comes after the last draft."""
        self._closed = True
        async with self._sending:
            self._end()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _end(self) -> None:
        self._closed = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _loop(self) -> None:
        while self.active:
            try:
                await asyncio.wait_for(self._wake.wait(), self.keepalive)
            except TimeoutError:
                # Nothing new for a while (code running): renew the draft before Telegram
                # drops it, so the answer so far and its stop button stay.
                if self._shown:
                    await self._send(self._shown, self._shown_entities)
                continue
            self._wake.clear()
            delay = self._last + self.interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            markdown, self._wanted = self._wanted, None
            if markdown is None or not self.active:
                continue
            text, entities = await asyncio.to_thread(draft_text, markdown)
            if text != self._shown and text.strip():
                await self._send(text, entities)

    async def _send(self, text: str, entities: list[MessageEntity]) -> None:
        async with self._sending:
            if not self.active:
                return
            try:
                await self.bot.send_message_draft(
                    chat_id=self.chat_id,
                    draft_id=self.draft_id,
                    text=text,
                    entities=entities or None,
                    parse_mode=None,
                    message_thread_id=self.thread_id,
                    can_stop=True,
                )
            except Exception as error:  # any refusal, a flood error, a network error
                log.warning(
                    "draft failed in chat=%s (%s: %s); back to the progress message",
                    self.chat_id,
                    type(error).__name__,
                    error,
                )
                self.failed = True
                return
            self._last = time.monotonic()
            self._shown, self._shown_entities = text, entities
            self.sent += 1
