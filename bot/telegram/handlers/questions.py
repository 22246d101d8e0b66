"""Questions: any text in a private chat, /analyze everywhere, replies to the bot in
groups, example-question buttons; /cancel and the Cancel button."""

from __future__ import annotations

import contextlib
import html

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message, MessageGenerationStopped

from bot.services.analysis import AnalysisService
from bot.telegram.callbacks import AskCb, CancelCb
from bot.telegram.flow import Analyst, Asker
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import ASK_LABELS
from bot.telegram.middlewares import ButtonAnswer


async def _ask(
    message: Message,
    question: str,
    bot: Bot,
    t: Translator,
    is_admin: bool,
    analyst: Analyst,
) -> None:
    if message.from_user is None:
        return
    asker = Asker.of(message, message.from_user.id, t, is_admin)
    await analyst.run(bot, asker, question)


async def analyze(
    message: Message,
    command: CommandObject,
    bot: Bot,
    t: Translator,
    is_admin: bool,
    analyst: Analyst,
) -> None:
    question = (command.args or "").strip()
    if not question:
        me = await bot.me()
        await message.reply(t("analyze-empty", bot_username=me.username or "bot"))
        return
    await _ask(message, question, bot, t, is_admin, analyst)


async def cancel_command(message: Message, t: Translator, analyses: AnalysisService) -> None:
    if await analyses.cancel(message.chat.id):
        await message.reply(t("cancel-requested"))
    else:
        await message.reply(t("cancel-none"))


async def cancel_button(
    query: CallbackQuery,
    callback_data: CancelCb,
    t: Translator,
    analyses: AnalysisService,
    answer: ButtonAnswer,
) -> None:
    if query.message is None:
        answer.say(t.plain("button-outdated"))
        return
    chat_id = query.message.chat.id
    runs_here = analyses.running(chat_id) is not None
    if not await analyses.cancel(chat_id, callback_data.analysis):
        answer.say(t.plain("cancel-outdated"))
        return
    answer.say(t.plain("cancel-requested"))
    await answer.send()
    if not runs_here and isinstance(query.message, Message):
        # It runs on another instance (which will stop it within seconds) or its process
        # died: either way this progress message is finished; drop its Cancel button.
        with contextlib.suppress(TelegramBadRequest):
            await query.message.edit_text(t("progress-cancelled"))


async def generation_stopped(update: MessageGenerationStopped, analyst: Analyst) -> None:
    """Telegram's stop button under a streamed answer: like ⏹ Cancel (the progress message
    then says so; the button itself gives no feedback to answer)."""
    await analyst.stop_generation(update.chat.id, update.draft_id)


async def example_question(
    query: CallbackQuery,
    callback_data: AskCb,
    bot: Bot,
    t: Translator,
    is_admin: bool,
    analyst: Analyst,
    answer: ButtonAnswer,
) -> None:
    if not isinstance(query.message, Message):
        answer.say(t.plain("button-outdated"))
        return
    await answer.send()  # before the analysis: the button's spinner stops now
    question = t.plain(f"{ASK_LABELS[callback_data.kind]}-q")
    asked = await query.message.answer(f"❓ {html.escape(question, quote=False)}")
    asker = Asker.of(asked, query.from_user.id, t, is_admin)
    await analyst.run(bot, asker, question)


async def text_question(
    message: Message,
    bot: Bot,
    t: Translator,
    is_admin: bool,
    analyst: Analyst,
) -> None:
    """Any text in a private chat, or a reply to the bot in a group: a question."""
    await _ask(message, message.text or "", bot, t, is_admin, analyst)


async def private_other(message: Message, t: Translator) -> None:
    """Stickers, photos, unknown commands… in a private chat: say what works."""
    await message.answer(t("unsupported-content"))


async def stale_button(query: CallbackQuery, t: Translator, answer: ButtonAnswer) -> None:
    """Callback data that no handler understands: an old or forged button."""
    answer.say(t.plain("button-outdated"), alert=True)


def create_router() -> Router:
    """A new router with this module's handlers (one per dispatcher)."""
    router = Router(name="questions")
    router.message.register(analyze, Command("analyze"))
    router.message.register(cancel_command, Command("cancel"))
    router.callback_query.register(cancel_button, CancelCb.filter())
    # Registering it puts stopped_message_generation into allowed_updates (polling and webhook).
    router.stopped_message_generation.register(generation_stopped)
    router.callback_query.register(example_question, AskCb.filter())
    router.message.register(
        text_question, F.chat.type == ChatType.PRIVATE, F.text, ~F.text.startswith("/")
    )
    router.message.register(
        text_question,
        F.chat.type.in_({ChatType.GROUP, ChatType.SUPERGROUP}),
        F.text,
        ~F.text.startswith("/"),
        F.reply_to_message.from_user.id == F.bot.id,
    )
    router.message.register(private_other, F.chat.type == ChatType.PRIVATE)
    router.callback_query.register(stale_button)
    return router
