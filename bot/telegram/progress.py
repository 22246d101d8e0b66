"""The live progress message: one message per analysis, edited as engine events arrive.

`ProgressView` turns engine events into the message text (pure, testable); `PacedEditor`
owns the Telegram message and edits it at most once per interval, never with unchanged
text, and never answers a flood error with an extra send (the request middleware waits
out `retry_after` and repeats the same edit).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import time

import telegramify_markdown
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.types import InlineKeyboardMarkup, Message, ReplyParameters

from bot.engine import rewrite_sandbox_links
from bot.engine.types import (
    CodeDelta,
    CodeDone,
    CodeFinished,
    CodeRunning,
    CodeStepStarted,
    EngineEvent,
    ImageOutput,
    Queued,
    TextDelta,
    TurnStarted,
    UploadingFiles,
)
from bot.telegram.i18n import Translator

log = logging.getLogger(__name__)

CODE_TAIL_LINES = 8
CODE_TAIL_CHARS = 700
ANSWER_PREVIEW_CHARS = 900


def format_elapsed(t: Translator, seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return t("elapsed-seconds", seconds=seconds)
    return t("elapsed-minutes", minutes=seconds // 60, seconds=seconds % 60)


def answer_preview(markdown: str) -> str:
    """The end of the answer being written, as plain text: the Markdown markup is dropped
    (the final answer is formatted properly), and `sandbox:` links become file names."""
    tail = rewrite_sandbox_links(markdown[-2 * ANSWER_PREVIEW_CHARS :])
    plain = telegramify_markdown.convert(tail)[0].strip()
    if len(plain) > ANSWER_PREVIEW_CHARS or len(markdown) > 2 * ANSWER_PREVIEW_CHARS:
        return "…" + plain[-ANSWER_PREVIEW_CHARS:]
    return plain


class ProgressView:
    """What the progress message says, derived from the events seen so far."""

    def __init__(self, t: Translator, *, show_code: bool = True) -> None:
        self.t = t
        self.show_code = show_code  # the chat's /settings choice
        self.status = t("progress-uploading")
        self.done_steps: list[int] = []
        self.code = ""
        self.answer = ""
        self.images = 0
        self.show_answer = True  # False while a draft carries the answer
        self._mode = "status"  # "code" shows the code tail, "answer" the answer preview

    def apply(self, event: EngineEvent) -> bool:
        """Update from one event; True when the text may have changed."""
        t = self.t
        match event:
            case Queued(position=position):
                self.status = t("progress-queued", position=position)
            case UploadingFiles():
                self.status = t("progress-uploading")
            case TurnStarted():
                self.status = t("progress-thinking")
            case CodeStepStarted(step=step):
                self.status = t("progress-writing-code", step=step)
                self.code = ""
                self._mode = "code"
            case CodeDelta(step=step, code=code):
                self.status = t("progress-writing-code", step=step)
                self.code = code
                self._mode = "code"
            case CodeDone(step=step, code=code):
                self.code = code
            case CodeRunning(step=step):
                self.status = t("progress-running-code", step=step)
                self._mode = "code"
            case CodeFinished(step=step):
                if step not in self.done_steps:
                    self.done_steps.append(step)
                self._mode = "status"
            case ImageOutput():
                self.images += 1
            case TextDelta(text=text):
                self.status = t("progress-writing-answer")
                self.answer = text
                self._mode = "answer"
            case _:
                return False
        return True

    def render(self) -> str:
        lines = [self.t("progress-step-done", step=s) for s in self.done_steps[-5:]]
        lines.append(f"<b>{self.status}</b>")
        text = "\n".join(lines)
        if self._mode == "code" and self.show_code and self.code.strip():
            tail = self.code.rstrip().splitlines()[-CODE_TAIL_LINES:]
            snippet = "\n".join(tail)[-CODE_TAIL_CHARS:]
            text += f'\n<pre><code class="language-python">{html.escape(snippet)}</code></pre>'
        elif self._mode == "answer" and self.show_answer and self.answer.strip():
            text += "\n\n" + html.escape(answer_preview(self.answer))
        return text


class PacedEditor:
    """Owns one bot message and edits it at most once per `interval` seconds."""

    def __init__(
        self,
        bot: Bot,
        message: Message,
        interval: float,
        *,
        sent_text: str | None = None,
        sent_markup: InlineKeyboardMarkup | None = None,
    ) -> None:
        """`sent_text`/`sent_markup`: what the message shows, as we sent it (its HTML);
        by default read back from `message`."""
        self.bot = bot
        self.message = message
        self.interval = interval
        if sent_text is None:
            sent_text = message.html_text if message.text else ""
            sent_markup = message.reply_markup
        self._sent_text = sent_text
        self._sent_markup = sent_markup
        self._wanted: tuple[str, InlineKeyboardMarkup | None] | None = None
        self._wake = asyncio.Event()
        self._sending = asyncio.Lock()  # held while an edit request is in flight
        self._last_edit = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def send(
        cls,
        bot: Bot,
        chat_id: int,
        text: str,
        *,
        interval: float,
        thread_id: int | None = None,
        reply_to: int | None = None,
        markup: InlineKeyboardMarkup | None = None,
    ) -> PacedEditor:
        message = await bot.send_message(
            chat_id,
            text,
            message_thread_id=thread_id,
            reply_parameters=(
                ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
                if reply_to
                else None
            ),
            reply_markup=markup,
        )
        editor = cls(bot, message, interval, sent_text=text, sent_markup=markup)
        editor.start()
        return editor

    def start(self) -> None:
        """Begin applying `update()`s (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop())

    @property
    def message_id(self) -> int:
        return self.message.message_id

    def update(self, text: str, markup: InlineKeyboardMarkup | None) -> None:
        """Ask for the message to show `text`; coalesces with pending updates."""
        self._wanted = (text, markup)
        self._wake.set()

    async def finish(self, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
        """Stop the background edits and make one last edit (paced like the others)."""
        if self._task is not None:
            # Let an edit in flight end first: it may be waiting out flood control, and
            # cancelling it would send the last edit inside the pause Telegram asked for.
            async with self._sending:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._wanted = (text, markup)
        await self._flush()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        if self._wanted is None:
            return
        delay = self._last_edit + self.interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        wanted, self._wanted = self._wanted, None
        if wanted is None:
            return
        text, markup = wanted
        if text == self._sent_text and markup == self._sent_markup:
            return
        async with self._sending:
            try:
                await self.bot.edit_message_text(
                    text=text,
                    chat_id=self.message.chat.id,
                    message_id=self.message.message_id,
                    reply_markup=markup,
                )
            except TelegramRetryAfter as error:
                # The request middleware already waited and retried; give up on this edit
                # (a later one will carry newer text) and keep the pace slower.
                log.warning("progress edit flood-limited: retry after %ss", error.retry_after)
                self._last_edit = time.monotonic() + error.retry_after
                self._wanted = self._wanted or wanted
                self._wake.set()
                return
            except TelegramBadRequest as error:
                if "not modified" not in error.message:
                    log.warning("progress edit failed: %s", error.message)
            except Exception as error:  # a network error, a proxy's non-JSON 5xx page...
                # One failed edit must not end the edits (nor the analysis): a later edit
                # carries newer text, and the final one closes the message.
                log.warning("progress edit failed: %s: %s", type(error).__name__, error)
                self._last_edit = time.monotonic()
                return
            self._last_edit = time.monotonic()
            self._sent_text, self._sent_markup = text, markup
