"""Inline keyboards."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.catalog import Dataset
from bot.storage.base import StoredFile
from bot.telegram.callbacks import (
    Ask,
    AskCb,
    CancelCb,
    DatasetCb,
    DatasetQuestionCb,
    LanguageCb,
    RemoveFileCb,
    ResetCb,
)
from bot.telegram.i18n import Translator

ASK_LABELS = {
    Ask.OVERVIEW: "ask-overview",
    Ask.CORRELATIONS: "ask-correlations",
    Ask.ANOMALIES: "ask-anomalies",
    Ask.TRENDS: "ask-trends",
}


def example_questions(t: Translator, dataset: Dataset | None = None) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if dataset is not None:
        for index, question in enumerate(dataset.questions_for(t.language)):
            builder.button(
                text=_label(question),
                callback_data=DatasetQuestionCb(dataset=dataset.id, index=index),
            )
    for kind, key in ASK_LABELS.items():
        builder.button(text=t.plain(key), callback_data=AskCb(kind=kind))
    rows = [1] * (len(dataset.questions_for(t.language)) if dataset else 0)
    builder.adjust(*rows, 2, 2)
    return builder.as_markup()


def _label(question: str, limit: int = 60) -> str:
    return question if len(question) <= limit else question[: limit - 1] + "…"


def datasets(t: Translator, items: Sequence[Dataset]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for dataset in items:
        builder.button(text=dataset.title(t.language), callback_data=DatasetCb(dataset=dataset.id))
    builder.adjust(2)
    return builder.as_markup()


def files(t: Translator, items: Sequence[StoredFile]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for record in items:
        builder.button(
            text=t.plain("files-remove-button", name=_label(record.original_name, 40)),
            callback_data=RemoveFileCb(key=record.file_key),
        )
    builder.adjust(1)
    return builder.as_markup()


def reset_confirm(t: Translator) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=t.plain("reset-confirm-yes"), callback_data=ResetCb(confirm=True))
    builder.button(text=t.plain("reset-confirm-no"), callback_data=ResetCb(confirm=False))
    return builder.as_markup()


def cancel(t: Translator, analysis_id: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=t.plain("cancel-button"), callback_data=CancelCb(analysis=analysis_id))
    return builder.as_markup()


def languages() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text="🇷🇺 Русский", callback_data=LanguageCb(language="ru"))
    builder.button(text="🇬🇧 English", callback_data=LanguageCb(language="en"))
    return builder.as_markup()
