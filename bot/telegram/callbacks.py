"""Inline-button payloads. Each packs into at most 64 bytes (Telegram's limit): ids, never
free text. Data from an old or forged button fails to unpack or names something that is
gone; handlers answer both with a clear message."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData


class Ask(StrEnum):
    OVERVIEW = "overview"
    CORRELATIONS = "correlations"
    ANOMALIES = "anomalies"
    TRENDS = "trends"


class AskCb(CallbackData, prefix="ask"):
    kind: Ask


class DatasetQuestionCb(CallbackData, prefix="dq"):
    dataset: str
    index: int


class DatasetCb(CallbackData, prefix="ds"):
    dataset: str


class RemoveFileCb(CallbackData, prefix="rm"):
    key: str


class ResetCb(CallbackData, prefix="reset"):
    confirm: bool


class CancelCb(CallbackData, prefix="cancel"):
    analysis: str


class LanguageCb(CallbackData, prefix="lang"):
    language: str


class SettingCb(CallbackData, prefix="set"):
    name: str  # "language" or a `Choice` value
    value: str  # a language code or "auto"; "on" / "off"


class FollowUpCb(CallbackData, prefix="fu"):
    analysis: str  # the question itself is in the store (it may not fit in 64 bytes)
    index: int


class ReportCb(CallbackData, prefix="rep"):
    analysis: str
