"""What is kept of an answer after it is delivered, for the buttons under it:

- its follow-up questions (in the store, so a button works after a restart and on any
  instance; buttons carry only the analysis id and an index, within Telegram's 64 bytes);
- its report, an HTML file written at answer time into the chat's folder as
  `<DATA_DIR>/files/<chat>/.reports/<analysis id>.html`. It goes with the chat's other
  files: /reset and the retention of idle chats remove the whole folder, and a chat keeps
  only its newest `REPORTS_KEPT` reports.

An analysis id in a button is checked before it names a path (buttons can be forged).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.engine.types import DataFile, TurnResult
from bot.services.report import ReportContent, ReportLabels, build_report
from bot.storage.base import FollowUps, Store
from bot.storage.files import LocalFileStore

log = logging.getLogger(__name__)

REPORTS_DIR = ".reports"  # a leading dot: no stored data file can take this name
REPORTS_KEPT = 20  # per chat, the newest (as many as follow-up sets: FOLLOW_UPS_KEPT)
_ANALYSIS_ID = re.compile(r"[0-9a-f]{1,32}")


@dataclass(frozen=True, slots=True)
class KeptAnswer:
    """What the buttons under an answer may offer."""

    analysis_id: str
    follow_ups: tuple[str, ...]
    report: bool


class Answers:
    def __init__(self, store: Store, local: LocalFileStore) -> None:
        self._store = store
        self._local = local

    def report_path(self, chat_id: int, analysis_id: str) -> Path | None:
        """Where the report of an analysis lives; None for an id no analysis can have."""
        if not _ANALYSIS_ID.fullmatch(analysis_id):
            return None
        return self._local.chat_dir(chat_id) / REPORTS_DIR / f"{analysis_id}.html"

    async def keep(
        self,
        chat_id: int,
        analysis_id: str,
        *,
        question: str,
        result: TurnResult,
        files: Sequence[DataFile],
        elapsed: str,
        labels: ReportLabels,
    ) -> KeptAnswer:
        """Save the follow-ups and write the report. Never raises: what could not be kept
        simply gets no button (the answer itself matters more)."""
        follow_ups = result.follow_ups
        if follow_ups:
            try:
                await self._store.set_follow_ups(FollowUps(chat_id, analysis_id, follow_ups))
            except Exception:
                log.warning("saving follow-ups failed analysis=%s", analysis_id, exc_info=True)
                follow_ups = ()
        content = ReportContent(
            question=question,
            answer=result.text,
            artifacts=result.artifacts,
            code_steps=result.code_steps,
            files=files,
            elapsed=elapsed,
            usage=result.usage,
            made_at=datetime.now(UTC),
        )
        path = self.report_path(chat_id, analysis_id)
        report = False
        if path is not None:
            try:
                await asyncio.to_thread(_write_report, path, content, labels)
                report = True
            except Exception:
                log.warning("writing the report failed analysis=%s", analysis_id, exc_info=True)
        return KeptAnswer(analysis_id, follow_ups, report)

    async def follow_up(self, chat_id: int, analysis_id: str, index: int) -> str | None:
        """The follow-up question behind a button; None when it is gone (an old answer, a
        reset) or never was."""
        record = await self._store.get_follow_ups(chat_id, analysis_id)
        if record is None or not 0 <= index < len(record.questions):
            return None
        return record.questions[index]

    async def report(self, chat_id: int, analysis_id: str) -> bytes | None:
        """The report file's bytes; None when it is gone."""
        path = self.report_path(chat_id, analysis_id)
        if path is None:
            return None
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None


def _write_report(path: Path, content: ReportContent, labels: ReportLabels) -> None:
    data = build_report(content, labels).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / f".part-{secrets.token_hex(8)}"
    try:
        with open(temp, "xb") as f:
            f.write(data)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    reports = sorted(path.parent.glob("*.html"), key=_mtime, reverse=True)
    for old in reports[REPORTS_KEPT:]:
        old.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
