"""Delivering a finished analysis: the answer as formatted text, charts as photos (albums),
other files as documents, and the code the model ran as one `.py` document.

Formatting: the model's Markdown goes through telegramify-markdown, which yields plain text
plus entities (no escaping class of bugs, UTF-16 offsets), split into messages of at most
4096 characters without breaking entities. If Telegram still rejects the formatting, the
same chunk is sent as plain text. A flood error is never answered with another send.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import telegramify_markdown
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardMarkup,
    InputMediaDocument,
    InputMediaPhoto,
    Message,
    MessageEntity,
    ReplyParameters,
)
from PIL import Image

from bot.engine.types import Artifact, CodeStep
from bot.telegram.i18n import Translator

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
ALBUM_LIMIT = 10
PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_SIDES = 10_000
PHOTO_MAX_RATIO = 20
DOCUMENT_MAX_BYTES = 50 * 1024 * 1024
MAX_ENTITIES = 100
PHOTO_TYPES = {"image/png", "image/jpeg", "image/webp", "image/gif"}
_INVISIBLE = " \t\r\n\u200b\u200c\u200d\u2060\ufeff"


def format_size(t: Translator, size: int) -> str:
    if size < 1024:
        return t("size-bytes", value=size)
    if size < 1024 * 1024:
        return t("size-kb", value=round(size / 1024))
    return t("size-mb", value=round(size / 1024 / 1024, 1))


def markdown_chunks(markdown: str) -> list[tuple[str, list[MessageEntity]]]:
    """Markdown → [(text, entities)] chunks that each fit one Telegram message."""
    text, entities = telegramify_markdown.convert(markdown)
    chunks = telegramify_markdown.split_entities(text, entities, MESSAGE_LIMIT)
    result = []
    for chunk_text, chunk_entities in chunks:
        converted = [MessageEntity(**e.to_dict()) for e in chunk_entities[:MAX_ENTITIES]]
        result.append((chunk_text, converted))
    return result


def photo_ok(artifact: Artifact) -> bool:
    """True when Telegram accepts the picture as a photo (else send it as a document)."""
    if artifact.mime_type not in PHOTO_TYPES or len(artifact.data) > PHOTO_MAX_BYTES:
        return False
    try:
        with Image.open(io.BytesIO(artifact.data)) as image:
            width, height = image.size
    except Exception:
        return False
    if width <= 0 or height <= 0:
        return False
    ratio = max(width, height) / min(width, height)
    return width + height <= PHOTO_MAX_SIDES and ratio <= PHOTO_MAX_RATIO


def code_document(steps: Sequence[CodeStep], t: Translator) -> bytes:
    parts = []
    for step in steps:
        parts.append(f"# ---- {t.plain('code-step', step=step.step)} ----\n{step.code.rstrip()}\n")
    return "\n".join(parts).encode("utf-8")


@dataclass(slots=True)
class Destination:
    chat_id: int
    thread_id: int | None = None
    reply_to: int | None = None

    def reply(self) -> ReplyParameters | None:
        if self.reply_to is None:
            return None
        return ReplyParameters(message_id=self.reply_to, allow_sending_without_reply=True)


async def send_answer(
    bot: Bot,
    to: Destination,
    markdown: str,
    t: Translator,
    *,
    markup: InlineKeyboardMarkup | None = None,
) -> list[Message]:
    """Send the model's Markdown answer, formatted, in as many messages as needed; `markup`
    goes under the last of them."""
    if not markdown.strip():
        markdown = t.plain("answer-empty")
    chunks = await asyncio.to_thread(markdown_chunks, markdown)
    # Telegram refuses a message without visible text: an answer made only of markup (an
    # HTML comment, a zero-width space) must not leave the user with nothing at all.
    chunks = [(text, entities) for text, entities in chunks if text.strip(_INVISIBLE)]
    if not chunks:
        chunks = [(t.plain("answer-empty"), [])]
    sent: list[Message] = []
    for number, (text, entities) in enumerate(chunks, 1):
        reply = to.reply() if not sent else None
        buttons = markup if number == len(chunks) else None
        try:
            message = await bot.send_message(
                to.chat_id,
                text,
                entities=entities or None,
                parse_mode=None,
                message_thread_id=to.thread_id,
                reply_parameters=reply,
                reply_markup=buttons,
            )
        except TelegramBadRequest as error:
            log.warning("formatted answer rejected (%s); sending plain text", error.message)
            message = await bot.send_message(
                to.chat_id,
                text,
                parse_mode=None,
                message_thread_id=to.thread_id,
                reply_parameters=reply,
                reply_markup=buttons,
            )
        sent.append(message)
    return sent


async def send_artifacts(
    bot: Bot,
    to: Destination,
    artifacts: Sequence[Artifact],
    code_steps: Sequence[CodeStep],
    t: Translator,
) -> None:
    """Charts as photos (albums of up to 10), other files and oversized pictures as
    documents, then the code as one .py document."""
    checks = await asyncio.to_thread(lambda: [photo_ok(a) for a in artifacts])
    photos = [a for a, ok in zip(artifacts, checks, strict=True) if ok]
    documents = [a for a, ok in zip(artifacts, checks, strict=True) if not ok]
    too_big = [a for a in documents if len(a.data) > DOCUMENT_MAX_BYTES]
    documents = [a for a in documents if len(a.data) <= DOCUMENT_MAX_BYTES]

    for group in _batches(photos, ALBUM_LIMIT):
        if len(group) == 1:
            item = group[0]
            await bot.send_photo(
                to.chat_id,
                BufferedInputFile(item.data, item.name),
                caption=_caption(t, item),
                parse_mode=None,
                message_thread_id=to.thread_id,
            )
        else:
            await bot.send_media_group(
                to.chat_id,
                [
                    InputMediaPhoto(
                        media=BufferedInputFile(a.data, a.name),
                        caption=_caption(t, a),
                        parse_mode=None,
                    )
                    for a in group
                ],
                message_thread_id=to.thread_id,
            )

    for group in _batches(documents, ALBUM_LIMIT):
        if len(group) == 1:
            item = group[0]
            await bot.send_document(
                to.chat_id,
                BufferedInputFile(item.data, item.name),
                message_thread_id=to.thread_id,
            )
        else:
            await bot.send_media_group(
                to.chat_id,
                [InputMediaDocument(media=BufferedInputFile(a.data, a.name)) for a in group],
                message_thread_id=to.thread_id,
            )

    for item in too_big:
        await bot.send_message(
            to.chat_id,
            t("artifact-too-big", name=item.name, size=format_size(t, len(item.data))),
            message_thread_id=to.thread_id,
        )

    steps = [s for s in code_steps if s.code.strip()]
    if steps:
        await bot.send_document(
            to.chat_id,
            BufferedInputFile(code_document(steps, t), "analysis_code.py"),
            caption=t("code-file-caption", steps=len(steps)),
            message_thread_id=to.thread_id,
        )


def _caption(t: Translator, artifact: Artifact) -> str:
    return t.plain("chart-caption", name=artifact.name)[:CAPTION_LIMIT]


def _batches(items: Sequence[Artifact], size: int) -> list[list[Artifact]]:
    """Split into groups of at most `size`, avoiding a lonely last item when possible
    (11 → 6 + 5 rather than 10 + 1, so both go as albums)."""
    if not items:
        return []
    count = -(-len(items) // size)
    base, extra = divmod(len(items), count)
    groups, start = [], 0
    for index in range(count):
        end = start + base + (1 if index < extra else 0)
        groups.append(list(items[start:end]))
        start = end
    return groups
