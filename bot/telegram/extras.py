"""What goes under an answer besides its text: the follow-up buttons and 📄 Report.
`Analyst` calls `keep_answer` once per delivered answer."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup

from bot.engine.types import TurnResult
from bot.services.analysis import Analysis
from bot.services.answers import Answers
from bot.services.report import ReportLabels
from bot.telegram import keyboards
from bot.telegram.i18n import Translator


def report_labels(t: Translator) -> ReportLabels:
    return ReportLabels(
        lang=t.language,
        title=t.plain("report-title"),
        question=t.plain("report-question"),
        answer=t.plain("report-answer"),
        charts=t.plain("report-charts"),
        files_made=t.plain("report-files-made"),
        steps=t.plain("report-steps"),
        step=t.plain("report-step"),
        code=t.plain("report-code"),
        output=t.plain("report-output"),
        no_output=t.plain("report-no-output"),
        data=t.plain("report-data"),
        rows_columns=t.plain("report-rows-columns"),
        took=t.plain("report-took"),
        tokens=t.plain("report-tokens"),
        made=t.plain("report-made"),
    )


async def keep_answer(
    answers: Answers, t: Translator, analysis: Analysis, result: TurnResult, elapsed: str
) -> InlineKeyboardMarkup | None:
    """Save the answer's follow-ups and write its report; the buttons for them (None when
    there is nothing to offer)."""
    kept = await answers.keep(
        analysis.request.chat_id,
        analysis.id,
        question=analysis.request.question,
        result=result,
        files=analysis.files,
        elapsed=elapsed,
        labels=report_labels(t),
    )
    return keyboards.answer_buttons(t, kept)
