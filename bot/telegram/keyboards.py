"""Inline keyboards."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.catalog import Dataset
from bot.services.answers import KeptAnswer
from bot.services.preferences import ChatPreferences, Choice
from bot.storage.base import StoredFile
from bot.telegram.callbacks import (
    Ask,
    AskCb,
    CancelCb,
    DatasetCb,
    DatasetQuestionCb,
    FollowUpCb,
    LanguageCb,
    RemoveFileCb,
    ReportCb,
    ResetCb,
    SettingCb,
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


LANGUAGE_LABELS = {"ru": "🇷🇺 Русский", "en": "🇬🇧 English"}
CHOICE_BUTTONS = {
    Choice.RICH_ANSWERS: "settings-button-rich",
    Choice.CODE_FILE: "settings-button-code-file",
    Choice.PROGRESS_CODE: "settings-button-progress-code",
}


def on_off(t: Translator, value: bool) -> str:
    return t.plain("settings-on") if value else t.plain("settings-off")


def settings(t: Translator, prefs: ChatPreferences, *, private: bool) -> InlineKeyboardMarkup:
    """/settings: the answer language (in groups also "each person's own"), then one toggle
    per choice. The current language is marked ✓."""
    builder = InlineKeyboardBuilder()
    current = t.language if private else (prefs.language or "auto")
    languages = list(LANGUAGE_LABELS.items())
    if not private:
        languages.insert(0, ("auto", t.plain("settings-button-language-own")))
    for code, label in languages:
        mark = "✓ " if code == current else ""
        builder.button(text=mark + label, callback_data=SettingCb(name="language", value=code))
    for choice, key in CHOICE_BUTTONS.items():
        value = prefs.choice(choice)
        builder.button(
            text=t.plain(key, value=on_off(t, value)),
            callback_data=SettingCb(name=choice.value, value="off" if value else "on"),
        )
    builder.adjust(len(languages), 1, 1, 1)
    return builder.as_markup()


def answer_buttons(t: Translator, kept: KeptAnswer) -> InlineKeyboardMarkup | None:
    """Under an answer: its follow-up questions (one per row), then 📄 Report."""
    builder = InlineKeyboardBuilder()
    for index, question in enumerate(kept.follow_ups):
        builder.button(
            text=_label(question, 64),
            callback_data=FollowUpCb(analysis=kept.analysis_id, index=index),
        )
    if kept.report:
        builder.button(
            text=t.plain("report-button"), callback_data=ReportCb(analysis=kept.analysis_id)
        )
    if not kept.follow_ups and not kept.report:
        return None
    builder.adjust(1)
    return builder.as_markup()
