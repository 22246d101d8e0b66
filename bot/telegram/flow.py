"""One analysis as the chat sees it: refusals, the live progress message, the results."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import InlineKeyboardMarkup, Message
from aiogram.utils.chat_action import ChatActionSender

from bot.catalog import Catalog
from bot.config import Settings
from bot.engine.types import FailureReason, TextDelta, TurnFailed, TurnFinished, TurnResult
from bot.services.analysis import (
    Analysis,
    AnalysisRefused,
    AnalysisRequest,
    AnalysisService,
    RefusalReason,
)
from bot.services.answers import Answers
from bot.services.preferences import ChatPreferences, Preferences
from bot.storage.base import ActiveAnalysis
from bot.telegram import keyboards
from bot.telegram.drafts import DraftStreamer, analysis_id_of, draft_id_of
from bot.telegram.extras import keep_answer
from bot.telegram.i18n import Translator, translator
from bot.telegram.progress import PacedEditor, ProgressView, format_elapsed
from bot.telegram.render import Destination, send_answer, send_artifacts
from bot.telegram.rich import send_rich_answer

log = logging.getLogger(__name__)


def thread_of(message: Message) -> int | None:
    """The forum topic to answer in: never the General topic (id 1, which must be
    omitted), and only for real topic messages (not reply threads of plain groups)."""
    if message.is_topic_message and message.message_thread_id not in (None, 1):
        return message.message_thread_id
    return None


def is_group(message: Message) -> bool:
    return message.chat.type in ("group", "supergroup")


@dataclass(frozen=True, slots=True)
class Asker:
    """Who asks, where, and in which language."""

    chat_id: int
    user_id: int
    thread_id: int | None
    reply_to: int | None
    group: bool
    is_admin: bool
    t: Translator

    @classmethod
    def of(cls, message: Message, user_id: int, t: Translator, is_admin: bool) -> Asker:
        return cls(
            chat_id=message.chat.id,
            user_id=user_id,
            thread_id=thread_of(message),
            reply_to=message.message_id,
            group=is_group(message),
            is_admin=is_admin,
            t=t,
        )


@dataclass(frozen=True, slots=True)
class _Seen:
    """What following an analysis left: its outcome and the progress message."""

    result: TurnResult | None
    failure: TurnFailed | None
    editor: PacedEditor | None
    stopped: bool = False  # the user pressed the draft's stop button


class Analyst:
    """Runs an analysis as the chat sees it. One per dispatcher; handlers get it as
    `analyst` and call `await analyst.run(bot, asker, question)`."""

    def __init__(
        self,
        analyses: AnalysisService,
        catalog: Catalog,
        settings: Settings,
        preferences: Preferences,
        answers: Answers,
    ) -> None:
        self.analyses = analyses
        self.catalog = catalog
        self.settings = settings
        self.preferences = preferences
        self.answers = answers
        self._drafts: dict[tuple[int, int], DraftStreamer] = {}  # (chat, draft id) → streamer

    async def stop_generation(self, chat_id: int, draft_id: int) -> bool:
        """The user pressed the stop button of a draft: stop the drafts at once and cancel the
        analysis like ⏹ Cancel (on whichever instance runs it). False when nothing ran."""
        streamer = self._drafts.get((chat_id, draft_id))
        if streamer is not None:
            streamer.stop()
        analysis_id = analysis_id_of(draft_id)
        if analysis_id is None:
            return False
        return await self.analyses.cancel(chat_id, analysis_id)

    async def run(self, bot: Bot, asker: Asker, question: str) -> None:
        t = asker.t
        to = Destination(asker.chat_id, asker.thread_id, asker.reply_to)
        request = AnalysisRequest(
            chat_id=asker.chat_id,
            user_id=asker.user_id,
            question=question,
            language=t.language,
            thread_id=asker.thread_id,
            is_admin=asker.is_admin,
        )
        prefs = await self.preferences.of(asker.chat_id)
        try:
            async with self.analyses.begin(request) as analysis:
                seen = await self._follow(bot, asker, analysis, prefs)
        except AnalysisRefused as refusal:
            await _refuse(bot, to, refusal, asker, self.catalog)
            return
        # Delivered once the analysis is closed: its usage and response id are saved and the
        # chat is free, so a follow-up asked the moment the answer shows is taken.
        if not analysis.interrupted_by_shutdown:  # else reported after the restart
            await self._conclude(bot, to, t, analysis, seen, prefs)

    async def _follow(
        self, bot: Bot, asker: Asker, analysis: Analysis, prefs: ChatPreferences
    ) -> _Seen:
        """Show the analysis live in one progress message until its terminal event."""
        t = asker.t
        settings = self.settings
        interval = settings.edit_interval_group if asker.group else settings.edit_interval_private
        cancel_markup = keyboards.cancel(t, analysis.id)
        view = ProgressView(t, show_code=prefs.progress_code)
        result: TurnResult | None = None
        failure: TurnFailed | None = None
        editor: PacedEditor | None = None
        streamer = self._streamer(bot, asker, analysis)
        if streamer is not None:
            view.show_answer = False  # the draft carries the prose, the progress the steps
        try:
            editor = await PacedEditor.send(
                bot,
                asker.chat_id,
                view.render(),
                interval=interval,
                thread_id=asker.thread_id,
                reply_to=asker.reply_to,
                markup=cancel_markup,
            )
            await analysis.set_progress_message(editor.message_id)
            async with ChatActionSender.typing(
                bot=bot, chat_id=asker.chat_id, message_thread_id=asker.thread_id
            ):
                async for event in analysis.events():
                    if isinstance(event, TurnFinished):
                        result = event.result
                    elif isinstance(event, TurnFailed):
                        failure = event
                    else:
                        if isinstance(event, TextDelta) and streamer is not None:
                            streamer.update(event.text)
                            view.show_answer = streamer.failed  # after an error: edits again
                        if view.apply(event):
                            editor.update(view.render(), cancel_markup)
        except Exception:
            log.exception("analysis=%s crashed in chat=%s", analysis.id, asker.chat_id)
            analysis.cancel(by_user=False)  # nobody follows it any more: free its slot now
        finally:
            if streamer is not None:
                await streamer.close()
                self._drafts.pop((asker.chat_id, streamer.draft_id), None)
        stopped = streamer is not None and streamer.stopped
        return _Seen(result, failure, editor, stopped)

    def _streamer(self, bot: Bot, asker: Asker, analysis: Analysis) -> DraftStreamer | None:
        """Drafts for this analysis: private chats only (Telegram refuses them elsewhere)."""
        draft_id = draft_id_of(analysis.id)
        if asker.group or draft_id is None or not self.settings.stream_drafts:
            return None
        streamer = DraftStreamer(bot, asker.chat_id, draft_id, thread_id=asker.thread_id)
        self._drafts[(asker.chat_id, draft_id)] = streamer
        return streamer

    async def _conclude(
        self,
        bot: Bot,
        to: Destination,
        t: Translator,
        analysis: Analysis,
        seen: _Seen,
        prefs: ChatPreferences,
    ) -> None:
        """Finish the progress message and send the answer, or say why there is none."""
        result, failure, editor = seen.result, seen.failure, seen.editor
        elapsed = format_elapsed(t, analysis.elapsed)
        if result is not None:
            summary = t("progress-done", elapsed=elapsed)
            images = sum(1 for a in result.artifacts if a.is_image)
            if images:
                summary += "\n" + t("progress-charts", count=images)
            if result.context_reset:
                summary += "\n" + t("context-reset")
            if editor is not None:
                await _quietly(editor.finish(summary))
            markup = await keep_answer(self.answers, t, analysis, result, elapsed)
            await deliver(
                bot,
                to,
                result,
                t,
                code_file=prefs.code_file,
                markup=markup,
                rich=prefs.rich_answers,
            )
            return
        if editor is not None:
            cancelled = failure is not None and failure.reason is FailureReason.CANCELLED
            if cancelled:
                status = t("progress-stopped") if seen.stopped else t("progress-cancelled")
            else:
                status = t("progress-failed", elapsed=elapsed)
            await _quietly(editor.finish(status))
        if failure is not None and failure.reason is FailureReason.CANCELLED:
            return
        await bot.send_message(
            to.chat_id,
            failure_text(t, failure, self.settings),
            message_thread_id=to.thread_id,
            reply_parameters=to.reply(),
        )


async def deliver(
    bot: Bot,
    to: Destination,
    result: TurnResult,
    t: Translator,
    *,
    code_file: bool = True,
    markup: InlineKeyboardMarkup | None = None,
    rich: bool = False,
) -> None:
    """Send the answer (with `markup`, the follow-up and report buttons, under it), then its
    charts, files and the code file unless the chat turned it off in /settings. With `rich`,
    an answer that needs it (tables, headings, formulas, several charts) goes out as one rich
    message with the charts and code inside; any refusal of that falls back to the plain
    path below."""
    if not code_file:
        result = replace(result, code_steps=())
    if rich and await send_rich_answer(bot, to, result, t, markup=markup):
        if result.dropped_artifacts:
            await bot.send_message(
                to.chat_id,
                t("artifacts-dropped", count=result.dropped_artifacts),
                message_thread_id=to.thread_id,
            )
        return
    await send_answer(bot, to, result.text, t, markup=markup)
    code_steps = result.code_steps
    if result.artifacts or code_steps:
        async with ChatActionSender.upload_photo(
            bot=bot, chat_id=to.chat_id, message_thread_id=to.thread_id
        ):
            await send_artifacts(bot, to, result.artifacts, code_steps, t)
    if result.dropped_artifacts:
        await bot.send_message(
            to.chat_id,
            t("artifacts-dropped", count=result.dropped_artifacts),
            message_thread_id=to.thread_id,
        )


def failure_text(t: Translator, failure: TurnFailed | None, settings: Settings) -> str:
    if failure is None:
        return t("fail-internal")
    text = t(
        f"fail-{failure.reason.value}",
        minutes=max(1, round(settings.analysis_timeout_seconds / 60)),
    )
    if failure.code_ran and failure.reason is not FailureReason.CANCELLED:
        text += "\n" + t("fail-code-ran")
    return text


async def _refuse(
    bot: Bot, to: Destination, refusal: AnalysisRefused, asker: Asker, catalog: Catalog
) -> None:
    t = asker.t
    markup = None
    match refusal.reason:
        case RefusalReason.NO_FILES:
            if asker.group:
                me = await bot.me()
                text = t("no-files-group", bot_username=me.username or "")
            else:
                text = t("no-files")
                markup = keyboards.datasets(t, catalog.all())
        case RefusalReason.BUSY:
            text = t("busy")
            if refusal.analysis_id:
                markup = keyboards.cancel(t, refusal.analysis_id)
        case RefusalReason.QUOTA_USER:
            text = t("quota-user", limit=refusal.limit)
        case RefusalReason.QUOTA_CHAT:
            text = t("quota-chat", limit=refusal.limit)
        case _:
            text = t("shutting-down")
    await bot.send_message(
        to.chat_id,
        text,
        message_thread_id=to.thread_id,
        reply_parameters=to.reply(),
        reply_markup=markup,
    )


async def report_interrupted(bot: Bot, analysis: ActiveAnalysis) -> None:
    """Tell a chat that the bot stopped before finishing its analysis."""
    t = translator(analysis.language)
    question = analysis.question if len(analysis.question) <= 200 else analysis.question[:199] + "…"
    text = t("interrupted-restart", question=question)
    if analysis.progress_message_id is not None:
        try:
            await bot.edit_message_text(
                text=text,
                chat_id=analysis.chat_id,
                message_id=analysis.progress_message_id,
                reply_markup=None,
            )
            return
        except TelegramBadRequest:
            pass  # the message is gone: say it in a new one
    await bot.send_message(analysis.chat_id, text, message_thread_id=analysis.thread_id)


async def _quietly(awaitable: object) -> None:
    try:
        await awaitable  # type: ignore[misc]
    except TelegramAPIError as error:
        log.warning("progress update failed: %s", error)
