"""The message a person gets for a file they added: shape, how it was read, every column with
its type and flags (missing values, one value throughout, mixed), a few sample rows, and the
other sheets of a workbook.

The message stays within Telegram's limits whatever the file: at most `MAX_LISTED` columns are
named (then a count), the list is cut earlier when names are long, and it uses a fixed
handful of entities (one block quote, one <pre>), never one per column.
"""

from __future__ import annotations

import html

from bot.services.files import AddedFile
from bot.tabular import Column, TableInfo, format_preview
from bot.telegram.i18n import Translator
from bot.telegram.render import format_size

#: Columns named in the preview; the rest are counted.
MAX_LISTED = 60
#: Characters the column list may take (the message must stay under 4096 in all).
COLUMNS_BUDGET = 2300
#: Longer lists go into an expandable block quote.
EXPAND_AFTER = 8
#: Width of the sample table: readable on a phone without wrapping.
SAMPLE_WIDTH = 40
_NAME_CHARS = 48
_NOTE_CHARS = 160
_MAX_OTHER_SHEETS = 8
_FORMATS = {
    "xls": "XLS",
    "xlsb": "XLSB",
    "ods": "ODS",
    "json": "JSON",
    "ndjson": "NDJSON",
    "parquet": "Parquet",
}


def added_text(t: Translator, added: AddedFile, count: int) -> str:
    """The whole preview message; shortened (fewer columns named, then no sample rows) when
    long names, notes and sheets would take it over Telegram's 4096 characters."""
    text = ""
    for budget, sample in ((COLUMNS_BUDGET, True), (1200, True), (600, False), (200, False)):
        text = _added_text(t, added, count, budget, sample)
        if len(text) <= MAX_MESSAGE:
            break
    return text


#: What the preview may take: Telegram's 4096, less a margin (tags do not count there).
MAX_MESSAGE = 4000


def _added_text(t: Translator, added: AddedFile, count: int, budget: int, sample: bool) -> str:
    record = added.record
    info = added.info
    # Composed here, not in one Fluent message: Fluent refuses placeables over 2500 chars.
    text = "\n".join(
        (
            t(
                "file-added",
                name=record.original_name,
                rows=record.rows,
                cols=len(record.columns),
                size=format_size(t, record.size),
            ),
            details(t, info, dict(added.sheet_files), budget=budget, sample=sample),
            t("file-added-ask"),
        )
    )
    if record.dataset_id is None and record.stored_name != record.original_name:
        text = t("file-added-renamed", stored=record.stored_name) + "\n" + text
    if count > 1:
        text += "\n" + t("file-added-count", count=count)
    return text


def details(
    t: Translator,
    info: TableInfo,
    sheet_files: dict[str, str] | None = None,
    *,
    budget: int = COLUMNS_BUDGET,
    sample: bool = True,
) -> str:
    """Everything between the title line and the question prompt, as Telegram HTML."""
    parts = [line for line in _reading(t, info) if line]
    parts.append(column_list(t, info.columns, budget))
    table = format_preview(info, max_width=SAMPLE_WIDTH) if sample else ""
    if table:
        parts.append(f"<pre>{_e(table)}</pre>")
    others = _other_sheets(t, info, sheet_files or {})
    if others:
        parts.append(others)
    return "\n".join(parts)


def _reading(t: Translator, info: TableInfo) -> list[str]:
    lines: list[str] = []
    if info.converted is not None:
        lines.append(t("file-note-converted", format=_FORMATS.get(info.kind, info.kind.upper())))
    if info.sheet is not None:
        lines.append(t("file-note-sheet", sheet=_clip(info.sheet, _NAME_CHARS)))
    if info.json_key is not None:
        lines.append(t("file-note-json-key", field=_clip(info.json_key, _NAME_CHARS)))
    if info.skipped:
        lines.append(t("file-note-skipped", text=_clip(" · ".join(info.skipped), _NOTE_CHARS)))
    elif info.skip_rows and info.converted is None:
        lines.append(t("file-note-blank", count=info.skip_rows))
    if info.footer:
        lines.append(t("file-note-footer", text=_clip(" · ".join(info.footer), _NOTE_CHARS)))
    if info.flattened:
        lines.append(t("file-note-flattened"))
    return lines


def column_name(column: Column) -> str:
    """The name as the model will use it: quoted when spaces around it would hide, marked
    when pandas names the column with a number."""
    name = column.name
    shown = repr(name) if name != name.strip() else name
    return _clip(shown, _NAME_CHARS)


def _column_line(t: Translator, index: int, column: Column) -> str:
    flags: list[str] = []
    if column.number_name:
        flags.append(t("file-flag-number-name"))
    if column.mixed is not None:
        flags.append(t("file-flag-mixed", type=column.mixed))
    if column.missing:
        share = column.missing * 100
        flags.append(t("file-flag-missing", share=f"{share:.0f}%" if share >= 1 else "<1%"))
    if column.constant:
        flags.append(t("file-flag-constant"))
    flagged = "".join(f" · {flag}" for flag in flags)
    return t("file-column", index=index, name=column_name(column), type=column.dtype) + flagged


def column_list(t: Translator, columns: tuple[Column, ...], budget: int = COLUMNS_BUDGET) -> str:
    lines: list[str] = []
    used = 0
    for index, column in enumerate(columns[:MAX_LISTED], start=1):
        line = _column_line(t, index, column)
        if used + len(line) + 1 > budget:
            break
        lines.append(line)
        used += len(line) + 1
    hidden = len(columns) - len(lines)
    if hidden:
        lines.append(t("file-columns-more", count=hidden))
    body = "\n".join(lines)
    tag = "blockquote expandable" if len(columns) > EXPAND_AFTER else "blockquote"
    return f"{t('file-columns', count=len(columns))}\n<{tag}>{body}</blockquote>"


def _other_sheets(t: Translator, info: TableInfo, sheet_files: dict[str, str]) -> str:
    if not info.others and not info.extra_sheets:
        return ""
    items: list[str] = []
    for other in info.others[:_MAX_OTHER_SHEETS]:
        item = t(
            "file-other-sheet",
            sheet=_clip(other.sheet or "", _NAME_CHARS),
            rows=other.rows,
            cols=len(other.columns),
        )
        if other.converted is not None:
            stored = sheet_files.get(other.sheet or "")
            item += " — " + (
                t("file-other-sheet-file", file=stored)
                if stored
                else t("file-other-sheet-left-out")
            )
        items.append(item)
    more = info.extra_sheets - len(items)
    if more > 0:
        items.append(t("file-columns-more", count=more))
    return t("file-other-sheets", count=info.extra_sheets) + "\n" + "\n".join(items)


def _e(text: str) -> str:
    return html.escape(text, quote=False)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
