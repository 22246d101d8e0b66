"""The buttons under an answer: a suggested follow-up question (asked in the same
conversation, as if typed) and 📄 Report (the answer as one HTML file)."""

from __future__ import annotations

import html

from aiogram import Bot, Router
from aiogram.types import BufferedInputFile, CallbackQuery, Message

from bot.services.answers import Answers
from bot.telegram.callbacks import FollowUpCb, ReportCb
from bot.telegram.flow import Analyst, Asker, thread_of
from bot.telegram.i18n import Translator
from bot.telegram.middlewares import ButtonAnswer


async def follow_up(
    query: CallbackQuery,
    callback_data: FollowUpCb,
    bot: Bot,
    t: Translator,
    is_admin: bool,
    analyst: Analyst,
    answers: Answers,
    answer: ButtonAnswer,
) -> None:
    message = query.message
    if not isinstance(message, Message):
        answer.say(t.plain("button-outdated"))
        return
    question = await answers.follow_up(message.chat.id, callback_data.analysis, callback_data.index)
    if question is None:
        answer.say(t.plain("button-outdated"), alert=True)
        return
    await answer.send()  # before the analysis: the button's spinner stops now
    # Shown as asked, so the chat reads like a conversation (and a group sees who asked).
    asked = await message.answer(f"❓ {html.escape(question, quote=False)}")
    asker = Asker.of(asked, query.from_user.id, t, is_admin)
    await analyst.run(bot, asker, question)


async def report(
    query: CallbackQuery,
    callback_data: ReportCb,
    bot: Bot,
    t: Translator,
    answers: Answers,
    answer: ButtonAnswer,
) -> None:
    message = query.message
    if not isinstance(message, Message):
        answer.say(t.plain("button-outdated"))
        return
    data = await answers.report(message.chat.id, callback_data.analysis)
    if data is None:
        answer.say(t.plain("report-gone"), alert=True)
        return
    await answer.send()
    await bot.send_document(
        message.chat.id,
        BufferedInputFile(data, f"report_{callback_data.analysis}.html"),
        caption=t("report-caption"),
        message_thread_id=thread_of(message),
        reply_parameters=None,
    )


def create_router() -> Router:
    """A new router with this module's handlers (one per dispatcher)."""
    router = Router(name="answers")
    router.callback_query.register(follow_up, FollowUpCb.filter())
    router.callback_query.register(report, ReportCb.filter())
    return router
