"""Documents, /files (with remove buttons) and /reset (with a confirmation)."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiohttp import ClientError

from bot.services.files import ChatBusy, ChatFiles, FileRejected, RejectReason
from bot.tabular import TableError
from bot.telegram import keyboards
from bot.telegram.callbacks import RemoveFileCb, ResetCb
from bot.telegram.flow import Analyst, Asker, is_group
from bot.telegram.i18n import Translator
from bot.telegram.middlewares import ButtonAnswer
from bot.telegram.preview import added_text
from bot.telegram.render import format_size

log = logging.getLogger(__name__)


def caption_question(message: Message, bot_username: str) -> str | None:
    """The question in a document's caption: any caption in a private chat; in groups
    only after /analyze or /analyze@<bot>."""
    caption = (message.caption or "").strip()
    if not caption:
        return None
    if caption.startswith("/"):
        command, _, rest = caption.partition(" ")
        name, _, mention = command[1:].partition("@")
        if name.lower() != "analyze" or (mention and mention.lower() != bot_username.lower()):
            return None
        return rest.strip() or None
    return None if is_group(message) else caption


def _reject_text(t: Translator, error: FileRejected, name: str) -> str:
    d = error.details
    match error.reason:
        case RejectReason.TOO_BIG:
            return t(
                "file-too-big",
                name=name,
                size=format_size(t, d["size"]),
                limit=format_size(t, d["limit"]),
            )
        case RejectReason.TOO_MANY_FILES:
            return t("file-too-many", limit=d["limit"])
        case _:
            return t(
                "file-chat-full",
                size=format_size(t, d["size"]),
                limit=format_size(t, d["limit"]),
                used=format_size(t, d["used"]),
            )


async def document(
    message: Message,
    bot: Bot,
    t: Translator,
    files: ChatFiles,
    analyst: Analyst,
    is_admin: bool,
) -> None:
    doc = message.document
    assert doc is not None
    name = doc.file_name or "file"
    chat_id = message.chat.id
    try:
        await files.check_can_add(chat_id, doc.file_size)
    except FileRejected as error:
        await message.reply(_reject_text(t, error, name))
        return
    temp = files.new_temp_path(chat_id)
    try:
        await bot.download(doc, destination=temp)
    except (TelegramAPIError, ClientError, OSError) as error:  # ClientError: the file server
        log.warning("download failed chat=%s: %s", chat_id, error)
        await files.discard_temp(temp)
        await message.reply(t("file-download-failed", name=name))
        return
    try:
        added = await files.add_upload(chat_id, name, temp)
    except TableError as error:
        await message.reply(t(f"file-error-{error.code.value.lower()}", name=name, limit=2000))
        return
    except FileRejected as error:
        await message.reply(_reject_text(t, error, name))
        return
    except OSError as error:  # e.g. /reset removed the chat's folder while this file arrived
        log.warning("storing an upload failed chat=%s: %s", chat_id, error)
        await message.reply(t("file-download-failed", name=name))
        return
    count = len(await files.list_files(chat_id))
    if added.duplicate:
        await message.reply(t("file-duplicate", name=added.record.original_name))
    else:
        await message.reply(
            added_text(t, added, count), reply_markup=keyboards.example_questions(t)
        )
    me = await bot.me()
    question = caption_question(message, me.username or "")
    if question and message.from_user is not None:
        asker = Asker.of(message, message.from_user.id, t, is_admin)
        await analyst.run(bot, asker, question)


async def list_files(message: Message, t: Translator, files: ChatFiles) -> None:
    items = await files.list_files(message.chat.id)
    if not items:
        await message.answer(t("files-empty"))
        return
    lines = [t("files-header", count=len(items), total=format_size(t, sum(f.size for f in items)))]
    for index, record in enumerate(items, 1):
        key = "files-item-dataset" if record.dataset_id else "files-item"
        lines.append(
            t(
                key,
                index=index,
                name=record.original_name,
                rows=record.rows,
                cols=len(record.columns),
                size=format_size(t, record.size),
            )
        )
    await message.answer("\n".join(lines), reply_markup=keyboards.files(t, items))


async def remove_file(
    query: CallbackQuery,
    callback_data: RemoveFileCb,
    t: Translator,
    files: ChatFiles,
    answer: ButtonAnswer,
) -> None:
    if not isinstance(query.message, Message):
        answer.say(t.plain("button-outdated"))
        return
    chat_id = query.message.chat.id
    try:
        removed = await files.remove(chat_id, callback_data.key)
    except ChatBusy:  # the analysis may be uploading this very file
        answer.say(t.plain("file-remove-busy"), alert=True)
        return
    if removed is None:
        answer.say(t.plain("file-already-removed"))
        return
    await query.message.answer(t("file-removed", name=removed.original_name))
    remaining = await files.list_files(chat_id)
    if remaining:
        await query.message.edit_reply_markup(reply_markup=keyboards.files(t, remaining))
    else:
        await query.message.edit_text(t("files-empty"))


async def reset(message: Message, t: Translator, files: ChatFiles) -> None:
    count = len(await files.list_files(message.chat.id))
    await message.answer(t("reset-confirm", count=count), reply_markup=keyboards.reset_confirm(t))


async def reset_confirmed(
    query: CallbackQuery,
    callback_data: ResetCb,
    t: Translator,
    files: ChatFiles,
    answer: ButtonAnswer,
) -> None:
    if not isinstance(query.message, Message):
        answer.say(t.plain("button-outdated"))
        return
    if not callback_data.confirm:
        await query.message.edit_text(t("reset-kept"))
        return
    try:
        await files.reset(query.message.chat.id)
    except ChatBusy:
        await query.message.edit_text(t("reset-busy"))
        return
    await query.message.edit_text(t("reset-done"))


def create_router() -> Router:
    """A new router with this module's handlers (one per dispatcher)."""
    router = Router(name="files")
    router.message.register(document, F.document)
    router.message.register(list_files, Command("files"))
    router.callback_query.register(remove_file, RemoveFileCb.filter())
    router.message.register(reset, Command("reset"))
    router.callback_query.register(reset_confirmed, ResetCb.filter())
    return router
