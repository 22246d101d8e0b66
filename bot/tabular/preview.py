"""A compact, language-neutral, monospaced preview of a table (for a Telegram <pre> block).

    region │ revenue │ day
    text   │   float │ date
    ───────┼─────────┼───────────
    Moscow │  1234.5 │ 2024-01-31
    Kazan… │      99 │ 2024-02-01

Numbers are right-aligned; cells wider than their column end with "…"; columns that do not
fit are summarised by a last column "+K". The result is plain text (the caller escapes HTML)
and never longer than MAX_PREVIEW_CHARS, whatever the file.
"""

from __future__ import annotations

import unicodedata

from bot.tabular.model import TableInfo

MAX_PREVIEW_CHARS = 1500
_MIN_WIDTH, _MAX_WIDTH = 24, 160
_MAX_ROWS = 5
_COLUMN_CAP = 24  # no column wider than this
_MIN_COLUMN = 4  # a squeezed column keeps at least this much
_SQUEEZE_FLOOR = 8  # a column is squeezed below its width only if 8 cells of room are left
_SEP = " │ "
_CROSS = "─┼─"
_TAGS = {
    "int": "int",
    "float": "float",
    "bool": "bool",
    "date": "date",
    "datetime": "dt",
    "text": "text",
    "empty": "∅",
}
_NUMERIC = frozenset({"int", "float"})
_CONTROL = {c: " " for c in range(32)} | {10: "↵", 13: None, 127: " "}


def format_preview(info: TableInfo, max_width: int = 60) -> str:
    """Header, type tags and up to five sample rows, aligned, at most `max_width` wide."""
    max_width = max(_MIN_WIDTH, min(max_width, _MAX_WIDTH))
    columns = info.columns
    if not columns:
        return ""
    rows = [
        [_clean(cell) for cell in row[: len(columns)]] + [""] * (len(columns) - len(row))
        for row in info.sample[:_MAX_ROWS]
    ]
    names = [_clean(c.name) for c in columns]
    tags = [_TAGS.get(c.dtype, c.dtype) for c in columns]

    widths: list[int] = []
    wanted: list[int] = []  # uncapped natural widths of the shown columns
    used = 0
    for index in range(len(columns)):
        hidden_after = len(columns) - index - 1
        # room for the "+K" column, sized for K = hidden_after + 1 in case this one is dropped
        reserve = (len(_SEP) + len(f"+{hidden_after + 1}")) if hidden_after else 0
        uncapped = max(
            [_width(names[index]), _width(tags[index])] + [_width(r[index]) for r in rows]
        )
        wanted.append(uncapped)
        natural = min(uncapped, _COLUMN_CAP)
        sep = len(_SEP) if widths else 0
        room = max_width - used - sep - reserve
        if natural <= room:
            widths.append(natural)
            used += sep + natural
            continue
        # Squeeze only long columns ("Kazan and a very lo…"), never short ones ("fal…").
        if room >= max(_MIN_COLUMN, min(natural, _SQUEEZE_FLOOR)) or not widths:
            widths.append(max(1, min(natural, room, max_width)))
            used += sep + widths[-1]
        break

    shown = len(widths)
    hidden = len(columns) - shown
    more = f"+{hidden}" if hidden else ""
    if not hidden:  # everything fits: give the spare room to the columns that were cut
        spare = max_width - used
        for index in range(shown):
            grow = min(spare, max(0, wanted[index] - widths[index]))
            widths[index] += grow
            spare -= grow

    def line(cells: list[str], tail: str, fill: str = " ") -> str:
        parts = [
            _fit(cell, width, right=columns[i].dtype in _NUMERIC, fill=fill)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=False))
        ]
        if more:
            parts.append(tail)
        return (_CROSS if fill == "─" else _SEP).join(parts).rstrip()

    out = [
        line(names, more),
        line(tags, ""),
        line([""] * shown, "─" * len(more), fill="─"),
    ]
    out.extend(line(row, "…") for row in rows)
    result = "\n".join(out)
    if len(result) > MAX_PREVIEW_CHARS:  # only reachable with exotic wide characters
        result = result[: MAX_PREVIEW_CHARS - 1] + "…"
    return result


def _clean(text: str) -> str:
    return text.translate(_CONTROL).strip()


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _width(text: str) -> int:
    if text.isascii():
        return len(text)
    return sum(_char_width(ch) for ch in text)


def _fit(text: str, width: int, *, right: bool = False, fill: str = " ") -> str:
    if fill != " ":
        return fill * width
    current = _width(text)
    if current > width:
        cut: list[str] = []
        room = width - 1
        for ch in text:
            w = _char_width(ch)
            if w > room:
                break
            cut.append(ch)
            room -= w
        text = "".join(cut) + "…"
        current = width - room
    pad = " " * (width - current)
    return pad + text if right else text + pad
