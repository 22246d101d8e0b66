"""What is kept of an answer for the buttons under it (follow-ups, the report), through the
real services on a real backend: it goes with the chat's files, and a forged button names
nothing."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.engine.types import Artifact, CodeStep, TurnResult, Usage
from bot.services.answers import REPORTS_KEPT, Answers
from bot.telegram.extras import report_labels
from bot.telegram.i18n import translator
from tests.bot.harness import SALES_CSV, png
from tests.services.conftest import ServicesFactory
from tests.services.test_housekeeping import RETENTION, add_upload, housekeeper

RESULT = TurnResult(
    response_id="resp_1",
    text="**East** leads.",
    artifacts=(Artifact("bars.png", "image/png", png(64, 48)),),
    code_steps=(CodeStep(1, "print(1)", "1\n"),),
    usage=Usage(10, 5),
    follow_ups=("Why East?", "And West?"),
)


async def keep(answers: Answers, chat_id: int, analysis_id: str) -> None:
    kept = await answers.keep(
        chat_id,
        analysis_id,
        question="Who leads?",
        result=RESULT,
        files=(),
        elapsed="3 s",
        labels=report_labels(translator("ru")),
    )
    assert kept.report
    assert kept.follow_ups == RESULT.follow_ups


async def test_reports_and_follow_ups_go_with_the_chats_files(
    make_services: ServicesFactory, tmp_path: Path
) -> None:
    services = await make_services()
    answers = services.answers
    await add_upload(services, 1, "sales.csv", SALES_CSV)
    await add_upload(services, 2, "sales.csv", SALES_CSV)
    await keep(answers, 1, "a1b2c3")
    await keep(answers, 2, "d4e5f6")
    page = (await answers.report(1, "a1b2c3") or b"").decode()
    assert "Отчёт об анализе" in page
    assert "<strong>East</strong> leads." in page
    assert await answers.follow_up(1, "a1b2c3", 1) == "And West?"
    assert await answers.follow_up(1, "a1b2c3", 2) is None
    assert await answers.follow_up(2, "a1b2c3", 0) is None  # another chat's answer

    # A restarted instance still has them.
    again = await make_services()
    assert await again.answers.follow_up(1, "a1b2c3", 0) == "Why East?"
    assert await again.answers.report(1, "a1b2c3") is not None

    await services.files.reset(1)
    assert await answers.report(1, "a1b2c3") is None
    assert await answers.follow_up(1, "a1b2c3", 0) is None

    # Retention removes an idle chat's reports with its files.
    later = datetime.now(UTC) + timedelta(seconds=1)
    await housekeeper(services).expire_idle_chats(now=later + RETENTION)
    assert await answers.report(2, "d4e5f6") is None
    assert not (tmp_path / "data" / "files" / "2").exists()


async def test_a_chat_keeps_its_newest_reports(make_services: ServicesFactory) -> None:
    services = await make_services()
    await add_upload(services, 1, "sales.csv", SALES_CSV)
    ids = [f"{n:06x}" for n in range(REPORTS_KEPT)]
    for analysis_id in ids:
        await keep(services.answers, 1, analysis_id)
        path = services.answers.report_path(1, analysis_id)
        assert path is not None
        stamp = 1_700_000_000 + int(analysis_id, 16)  # distinct times, oldest first
        os.utime(path, (stamp, stamp))
    await keep(services.answers, 1, "fffffe")
    await keep(services.answers, 1, "ffffff")
    assert await services.answers.report(1, ids[0]) is None
    assert await services.answers.report(1, ids[1]) is None
    assert await services.answers.report(1, ids[2]) is not None
    assert await services.answers.report(1, "ffffff") is not None


async def test_a_forged_button_names_no_path(make_services: ServicesFactory) -> None:
    services = await make_services()
    answers = services.answers
    await add_upload(services, 1, "sales.csv", SALES_CSV)
    await keep(answers, 1, "a1b2c3")
    for forged in ("../1/.reports/a1b2c3", "../../state", "A1B2C3", "", "a" * 40, "a1b2c3.html"):
        assert answers.report_path(1, forged) is None
        assert await answers.report(1, forged) is None
        assert await answers.follow_up(1, forged, 0) is None
