"""A shareable report of one answer: one self-contained HTML file.

It holds the question, the answer (the model's Markdown rendered with markdown-it-py; raw HTML
in it is escaped, images from the web are not rendered), every chart embedded as a `data:`
URI, the other files the analysis made as downloads, each step's code and output in a
collapsed `<details>`, the data files used (name, rows × columns, columns), the time taken
and the tokens. No external resources (a Content-Security-Policy forbids them), so it reads
offline in any browser; the CSS adapts to phones and to a dark system theme.

`build_report` is pure (no I/O) and CPU-bound for big charts: call it off the event loop.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from markdown_it import MarkdownIt
from markdown_it.token import Token

from bot.engine.types import Artifact, CodeStep, DataFile, Usage

MAX_EMBEDDED_FILE_BYTES = 5 * 1024 * 1024  # bigger non-image files are only named
EMBEDDED_IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml"}


@dataclass(frozen=True, slots=True)
class ReportLabels:
    """The report's words, in the reader's language (filled by the Telegram layer)."""

    lang: str
    title: str  # "Analysis report"
    question: str
    answer: str
    charts: str
    files_made: str
    steps: str
    step: str  # "Step {n}" with {n} replaced here
    code: str
    output: str
    no_output: str
    data: str
    rows_columns: str  # "{rows} rows × {columns} columns"
    took: str  # "Time taken"
    tokens: str  # "Tokens: {input} in, {output} out"
    made: str  # "Made"


@dataclass(frozen=True, slots=True)
class ReportContent:
    question: str
    answer: str  # Markdown
    artifacts: Sequence[Artifact]
    code_steps: Sequence[CodeStep]
    files: Sequence[DataFile]
    elapsed: str  # already formatted ("42 s")
    usage: Usage
    made_at: datetime


_md = MarkdownIt("commonmark", {"html": False, "typographer": False}).enable(
    ["table", "strikethrough"]
)


def _image_as_link(self: object, tokens: Sequence[Token], idx: int, *_: object) -> str:
    """A picture from the web would be an external resource: it becomes a link."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = "".join(child.content for child in token.children or ()) or src
    return f'<a href="{_e(src)}">🖼 {_e(alt)}</a>'


_md.add_render_rule("image", _image_as_link)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _data_uri(artifact: Artifact, mime_type: str | None = None) -> str:
    encoded = base64.b64encode(artifact.data).decode("ascii")
    return f"data:{mime_type or artifact.mime_type};base64,{encoded}"


_CSS = """
:root{color-scheme:light dark;--fg:#1d232b;--muted:#5f6b7a;--bg:#fff;--card:#f5f7fa;
--line:#dde3ea;--accent:#2a7ae2}
@media (prefers-color-scheme:dark){:root{--fg:#e4e8ee;--muted:#9aa6b4;--bg:#15191e;
--card:#1f252c;--line:#333c46;--accent:#6aa8ff}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.55 -apple-system,
BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
-webkit-text-size-adjust:100%}
main{max-width:860px;margin:0 auto;padding:24px 16px 48px}
h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.15em;margin:32px 0 8px;
border-bottom:1px solid var(--line);padding-bottom:4px}
.meta{color:var(--muted);font-size:.9em}
.question{background:var(--card);border-left:4px solid var(--accent);padding:12px 14px;
border-radius:6px;white-space:pre-wrap;overflow-wrap:anywhere}
.answer{overflow-wrap:anywhere}
.answer h1,.answer h2,.answer h3{font-size:1.05em;border:none;margin:20px 0 6px;padding:0}
.table-wrap,.answer table{display:block;overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:12px 0;font-size:.95em}
th,td{border:1px solid var(--line);padding:6px 10px;text-align:left;vertical-align:top}
th{background:var(--card)}
figure{margin:16px 0}figure img{display:block;max-width:100%;height:auto;border-radius:6px;
border:1px solid var(--line);background:#fff}
figcaption{color:var(--muted);font-size:.85em;margin-top:4px}
pre{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:10px 12px;
overflow-x:auto;font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
white-space:pre}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em}
details{border:1px solid var(--line);border-radius:6px;margin:10px 0;padding:0 12px}
summary{cursor:pointer;padding:10px 0;font-weight:600}
details[open] summary{border-bottom:1px solid var(--line);margin-bottom:8px}
.label{color:var(--muted);font-size:.85em;margin:8px 0 4px}
ul.files{padding-left:20px}ul.files li{margin:6px 0}
.cols{color:var(--muted);font-size:.9em;overflow-wrap:anywhere}
a{color:var(--accent)}
@media (max-width:520px){body{font-size:15px}main{padding:16px 12px 32px}
h1{font-size:1.3em}pre{font-size:12px}}
@media print{details{border:none}details>*{display:block}}
"""

# Marks <body> with how many pictures actually loaded: a check for readers and for tests.
_SCRIPT = """
window.addEventListener('load',function(){var i=document.images,n=0;
for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0)n++;}
document.body.setAttribute('data-images',String(i.length));
document.body.setAttribute('data-images-loaded',String(n));});
"""

_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)


def build_report(content: ReportContent, labels: ReportLabels) -> str:
    """The report as one HTML document (UTF-8 text)."""
    L = labels
    images = [a for a in content.artifacts if a.mime_type in EMBEDDED_IMAGE_TYPES]
    others = [a for a in content.artifacts if a.mime_type not in EMBEDDED_IMAGE_TYPES]
    usage = content.usage
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{_e(L.lang)}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_e(L.title)}: {_e(_short(content.question, 80))}</title>",
        f"<style>{_CSS}</style><script>{_SCRIPT}</script></head><body><main>",
        f"<h1>{_e(L.title)}</h1>",
        '<p class="meta">'
        + " · ".join(
            [
                f"{_e(L.made)}: {_e(content.made_at.strftime('%Y-%m-%d %H:%M UTC'))}",
                f"{_e(L.took)}: {_e(content.elapsed)}",
                _e(
                    L.tokens.format(
                        input=f"{usage.input_tokens:,}".replace(",", "\u00a0"),
                        output=f"{usage.output_tokens:,}".replace(",", "\u00a0"),
                    )
                ),
            ]
        )
        + "</p>",
        f"<h2>{_e(L.question)}</h2>",
        f'<div class="question">{_e(content.question)}</div>',
        f"<h2>{_e(L.answer)}</h2>",
        f'<div class="answer">{_md.render(content.answer)}</div>',
    ]
    if images:
        parts.append(f"<h2>{_e(L.charts)}</h2>")
        for artifact in images:
            parts.append(
                f'<figure><img src="{_data_uri(artifact)}" alt="{_e(artifact.name)}">'
                f"<figcaption>{_e(artifact.name)}</figcaption></figure>"
            )
    if others:
        parts.append(f'<h2>{_e(L.files_made)}</h2><ul class="files">')
        for artifact in others:
            size = _size(len(artifact.data))
            if len(artifact.data) <= MAX_EMBEDDED_FILE_BYTES:
                parts.append(
                    # as bytes to save, never as a page to open (it came from the model)
                    f'<li><a download="{_e(artifact.name)}" '
                    f'href="{_data_uri(artifact, "application/octet-stream")}">'
                    f"{_e(artifact.name)}</a> ({size})</li>"
                )
            else:
                parts.append(f"<li>{_e(artifact.name)} ({size})</li>")
        parts.append("</ul>")
    steps = [s for s in content.code_steps if s.code.strip()]
    if steps:
        parts.append(f"<h2>{_e(L.steps)}</h2>")
        for step in steps:
            logs = step.logs.strip()
            output = f"<pre>{_e(logs)}</pre>" if logs else f"<p class=meta>{_e(L.no_output)}</p>"
            parts.append(
                f"<details><summary>{_e(L.step.format(n=step.step))}</summary>"
                f'<div class="label">{_e(L.code)}</div>'
                f'<pre><code class="language-python">{_e(step.code.rstrip())}</code></pre>'
                f'<div class="label">{_e(L.output)}</div>{output}</details>'
            )
    if content.files:
        parts.append(f'<h2>{_e(L.data)}</h2><ul class="files">')
        for data_file in content.files:
            shape = L.rows_columns.format(rows=data_file.rows, columns=len(data_file.columns))
            columns = ", ".join(c.name for c in data_file.columns[:60])
            if len(data_file.columns) > 60:
                columns += ", …"
            parts.append(
                f"<li><b>{_e(data_file.name)}</b> — {_e(shape)}"
                + (f'<div class="cols">{_e(columns)}</div>' if columns else "")
                + "</li>"
            )
        parts.append("</ul>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{round(size / 1024)} KB"
    return f"{size / 1024 / 1024:.1f} MB"
