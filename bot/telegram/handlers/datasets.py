"""/dataset: the bundled sample datasets, added to the chat like an upload."""

from __future__ import annotations

import html

from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.catalog import Catalog
from bot.services.files import ChatFiles, FileRejected
from bot.telegram import keyboards
from bot.telegram.callbacks import DatasetCb, DatasetQuestionCb
from bot.telegram.flow import Analyst, Asker
from bot.telegram.handlers.files import added_text
from bot.telegram.i18n import Translator
from bot.telegram.middlewares import ButtonAnswer


def catalog_text(t: Translator, catalog: Catalog) -> str:
    lines = [t("datasets-header")]
    for dataset in catalog.all():
        lines.append(
            t(
                "datasets-item",
                title=dataset.title(t.language),
                description=dataset.description(t.language),
                rows=dataset.rows,
            )
        )
    return "\n".join(lines)


async def show_catalog(message: Message, t: Translator, catalog: Catalog) -> None:
    await message.answer(
        catalog_text(t, catalog), reply_markup=keyboards.datasets(t, catalog.all())
    )


async def add_dataset(
    query: CallbackQuery,
    callback_data: DatasetCb,
    t: Translator,
    catalog: Catalog,
    files: ChatFiles,
    answer: ButtonAnswer,
) -> None:
    dataset = catalog.get(callback_data.dataset)
    if dataset is None or not isinstance(query.message, Message):
        answer.say(t.plain("dataset-unknown"), alert=True)
        return
    await answer.send()  # the spinner stops before the preview is worked out
    chat_id = query.message.chat.id
    try:
        added = await files.add_dataset(chat_id, dataset)
    except FileRejected as error:
        await query.message.answer(t("file-too-many", limit=error.details.get("limit", 0)))
        return
    if added.duplicate:
        await query.message.answer(t("file-duplicate", name=dataset.title(t.language)))
        return
    count = len(await files.list_files(chat_id))
    text = (
        added_text(t, added, count)
        + "\n"
        + t("dataset-source", attribution=dataset.attribution, license=dataset.license)
    )
    await query.message.answer(text, reply_markup=keyboards.example_questions(t, dataset))


async def dataset_question(
    query: CallbackQuery,
    callback_data: DatasetQuestionCb,
    bot: Bot,
    t: Translator,
    catalog: Catalog,
    analyst: Analyst,
    is_admin: bool,
    answer: ButtonAnswer,
) -> None:
    dataset = catalog.get(callback_data.dataset)
    questions = dataset.questions_for(t.language) if dataset else []
    if not isinstance(query.message, Message) or not 0 <= callback_data.index < len(questions):
        answer.say(t.plain("button-outdated"), alert=True)
        return
    await answer.send()  # before the analysis: the button's spinner stops now
    question = questions[callback_data.index]
    asked = await query.message.answer(f"❓ {html.escape(question, quote=False)}")
    asker = Asker.of(asked, query.from_user.id, t, is_admin)
    await analyst.run(bot, asker, question)


def create_router() -> Router:
    """A new router with this module's handlers (one per dispatcher)."""
    router = Router(name="datasets")
    router.message.register(show_catalog, Command("dataset", "datasets"))
    router.callback_query.register(add_dataset, DatasetCb.filter())
    router.callback_query.register(dataset_question, DatasetQuestionCb.filter())
    return router
