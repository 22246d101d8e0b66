"""The report's HTML: the model's content is text, nothing is loaded from elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.engine.types import Artifact, ColumnInfo, DataFile, Usage
from bot.services.report import ReportContent, build_report
from bot.telegram.extras import report_labels
from bot.telegram.i18n import translator


def content(answer: str, *artifacts: Artifact) -> ReportContent:
    data = DataFile(
        name='sales".csv',
        path=__file__,  # type: ignore[arg-type]
        sha256="0",
        size=1,
        rows=6,
        columns=(ColumnInfo("region", "text"), ColumnInfo("revenue", "int")),
        scope="chat:1",
    )
    return ReportContent(
        question="Q?",
        answer=answer,
        artifacts=artifacts,
        code_steps=(),
        files=(data,),
        elapsed="5 s",
        usage=Usage(1, 2),
        made_at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
    )


def test_model_html_and_links_are_inert() -> None:
    page = build_report(
        content(
            "<img src=x onerror=alert(1)> [click](javascript:alert(1)) ![p](https://e.com/p.png)"
        ),
        report_labels(translator("en")),
    )
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'href="javascript:' not in page
    assert 'src="https://e.com' not in page
    assert "default-src 'none'" in page  # the page itself forbids loading anything
    assert "sales&quot;.csv" in page
    assert "6 rows × 2 columns" in page


def test_other_files_download_as_bytes() -> None:
    made = Artifact("page.html", "text/html", b"<script>alert(1)</script>")
    page = build_report(content("ok", made), report_labels(translator("ru")))
    assert 'download="page.html" href="data:application/octet-stream;base64,' in page
    assert "text/html;base64" not in page
    assert '<html lang="ru">' in page
