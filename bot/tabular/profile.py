"""What people's numbers and dates look like, and per-column statistics.

- `detect_style`: the decimal mark and thousands separator a file uses, voted on sample cells
  ("1 234 567,89" → decimal ",", thousands " "; "1.234.567,89" → ",", "."; "1,234.5" → ".", ",").
- `ColumnStats`: missing-value counts, constant columns and a few sample values, fed chunk by
  chunk like `ColumnTyper` (set and regex work only, no per-cell Python in the hot loop).
- `column_notes`: how a column's values are written, for the model ("currency ₽", "dates
  day first: format='%d.%m.%Y'", "negatives in parentheses").
- `pandas_names`: header cells named the way pandas names them (`Unnamed: 2`, `name.1`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import islice

from bot.tabular.infer import CURRENCY, NumberStyle, count_missing, is_missing
from bot.tabular.model import DType

#: How many non-missing values per column `ColumnStats` keeps for `column_notes`.
SAMPLE_VALUES = 200

_STRIP = re.compile(rf"^[\s(+-]*(?:{CURRENCY}\s?)?[+-]?|\s?(?:{CURRENCY}|%)?\)?\s*$")
_CURRENCY_IN = re.compile(CURRENCY)
_SPACE_MARKS = {" ": " ", "\u00a0": "\u00a0", "\u202f": "\u202f"}
# (pattern over a stripped number, decimal it implies or None, thousands it implies or None)
_VOTES: tuple[tuple[re.Pattern[str], str | None, str | None], ...] = (
    (re.compile(r"\d{1,3}(?:\.\d{3})+,\d+"), ",", "."),
    (re.compile(r"\d{1,3}(?:,\d{3})+\.\d+"), ".", ","),
    (re.compile(r"\d{1,3}(?:\.\d{3}){2,}"), None, "."),
    (re.compile(r"\d{1,3}(?:,\d{3}){2,}"), None, ","),
    (re.compile(r"\d{1,3}(?:'\d{3})+(?:\.\d+)?"), ".", "'"),
    (re.compile(r"\d{1,3}(?:[ \u00a0\u202f]\d{3})+,\d+"), ",", "space"),
    (re.compile(r"\d{1,3}(?:[ \u00a0\u202f]\d{3})+\.\d+"), ".", "space"),
    (re.compile(r"\d{1,3}(?:[ \u00a0\u202f]\d{3})+"), None, "space"),
    (re.compile(r"\d*,(?:\d{1,2}|\d{4,})"), ",", None),
    (re.compile(r"\d*\.(?:\d{1,2}|\d{4,})"), ".", None),
)
_STYLE_CELLS = 20_000
_SPACE_USED = re.compile(r"\d([ \u00a0\u202f])\d")


def strip_number(cell: str) -> str:
    return _STRIP.sub("", cell.strip())


def detect_style(cells: Iterable[str], delimiter: str | None = None) -> NumberStyle:
    """Vote on how numbers are written. A decimal comma is never chosen for comma-separated
    text (such a file quotes "1,5", and pandas cannot read it with decimal=",")."""
    decimal: Counter[str] = Counter()
    thousands: Counter[str] = Counter()
    for cell in islice(cells, _STYLE_CELLS):
        if cell.isdigit() or (not cell[:1].isdigit() and cell[:1] not in "-+.,($€£¥₽("):
            continue  # plain digits or text: no vote
        text = strip_number(cell)
        if not text or (not text[0].isdigit() and text[0] not in ".,"):
            continue
        for pattern, dec, thou in _VOTES:
            if pattern.fullmatch(text):
                if dec:
                    decimal[dec] += 1
                if thou == "space":
                    space = _SPACE_USED.search(text)
                    thousands[space.group(1) if space else " "] += 1
                elif thou:
                    thousands[thou] += 1
                break
    point = "," if decimal[","] > decimal["."] and delimiter != "," else "."
    choices = [(n, mark) for mark, n in thousands.items() if mark != point]
    # "1,234" in a decimal-point file is a thousands separator only with enough evidence
    mark = max(choices)[1] if choices else ""
    return NumberStyle(point, mark)


class ColumnStats:
    """Missing values, constancy and sample values of `width` columns, chunk by chunk."""

    __slots__ = ("_first", "_missing", "_rows", "_samples", "_varied", "width")

    def __init__(self, width: int) -> None:
        self.width = width
        self._rows = 0
        self._missing = [0] * width
        self._first: list[object] = [None] * width
        self._varied = [False] * width
        self._samples: list[list[str]] = [[] for _ in range(width)]

    def feed(self, columns: Sequence[Sequence[object]], rows: int) -> None:
        """`columns[i]` holds column i's cells of `rows` rows (text, or workbook values);
        columns missing at the end, or short, count as empty."""
        self._rows += rows
        for index in range(self.width):
            cells = columns[index] if index < len(columns) else ()
            # workbook values: only "" (an empty cell) or a text marker is missing
            missing = count_missing(cells) + rows - len(cells)  # type: ignore[arg-type]
            self._missing[index] += missing
            if not self._varied[index] and missing < rows:
                distinct = {c.strip() if type(c) is str else c for c in cells}
                distinct = {c for c in distinct if not (type(c) is str and is_missing(c))}
                if self._first[index] is None and distinct:
                    self._first[index] = next(iter(distinct))
                if len(distinct) > 1 or (distinct and self._first[index] not in distinct):
                    self._varied[index] = True
            sample = self._samples[index]
            if len(sample) < SAMPLE_VALUES and missing < rows:
                for cell in cells:
                    if type(cell) is str and not is_missing(cell):
                        sample.append(cell.strip())
                        if len(sample) >= SAMPLE_VALUES:
                            break

    @property
    def rows(self) -> int:
        return self._rows

    def missing(self, index: int) -> float:
        return self._missing[index] / self._rows if self._rows else 0.0

    def constant(self, index: int) -> bool:
        return self._rows > 1 and self._first[index] is not None and not self._varied[index]

    def samples(self, index: int) -> list[str]:
        return self._samples[index]


_DATE_FORMATS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\d{4}-\d\d-\d\d"), "%Y-%m-%d"),
    (re.compile(r"\d{4}/\d{1,2}/\d{1,2}"), "%Y/%m/%d"),
    (re.compile(r"\d{1,2}\.\d{1,2}\.\d{4}"), "%d.%m.%Y"),
    (re.compile(r"\d{1,2}\.\d{1,2}\.\d\d"), "%d.%m.%y"),
    (re.compile(r"\d{1,2}-\d{1,2}-\d{4}"), "%d-%m-%Y"),
)
_SLASH = re.compile(r"(\d{1,2})/(\d{1,2})/\d{4}")
_DATE_PART = re.compile(r"[^\sT]+")


def date_note(values: Sequence[str]) -> str | None:
    """How a text date column is written, when pandas would not guess it right alone."""
    formats: Counter[str] = Counter()
    day_first = month_first = False
    timed = False
    for value in values:
        part = _DATE_PART.match(value)
        if part is None:
            continue
        date, timed = part.group(), timed or len(part.group()) < len(value)
        slash = _SLASH.fullmatch(date)
        if slash:
            first, second = int(slash.group(1)), int(slash.group(2))
            day_first |= first > 12
            month_first |= second > 12
            formats["slash"] += 1
            continue
        for pattern, fmt in _DATE_FORMATS:
            if pattern.fullmatch(date):
                formats[fmt] += 1
                break
    if not formats:
        return None
    fmt = formats.most_common(1)[0][0]
    if fmt == "slash":
        if day_first and not month_first:
            fmt = "%d/%m/%Y"
        elif month_first and not day_first:
            fmt = "%m/%d/%Y"
        else:
            return "dates as dd/mm/yyyy or mm/dd/yyyy: ambiguous, check before parsing"
    if fmt == "%Y-%m-%d":
        return None
    when = " with a time" if timed else ""
    first = "day first" if fmt.startswith("%d") else "year first"
    return f"dates {first}{when}: pd.to_datetime(..., format='{fmt}{' %H:%M:%S' if timed else ''}')"


_EXCEL_DATE_NAME = re.compile(r"(?i)date|дата|day|день|period|период|month|месяц")


def column_notes(
    name: str, dtype: DType, values: Sequence[str], style: NumberStyle, *, workbook: bool = False
) -> tuple[str, ...]:
    """How the values of one column are written, where pandas needs telling."""
    notes: list[str] = []
    if dtype in ("int", "float") and values:
        currencies = Counter(m.group().strip() for v in values for m in _CURRENCY_IN.finditer(v))
        if currencies:
            notes.append(f"currency {currencies.most_common(1)[0][0]} in the values")
        if any(v.endswith("%") for v in values):
            notes.append("percent signs in the values")
        if any(v.startswith("(") and v.endswith(")") for v in values):
            notes.append("negatives in parentheses: (300) means -300")
        if notes:
            notes.append("read as text, strip the marks, then pd.to_numeric")
        elif style.decimal == "," or style.thousands:
            grouped = any(_SPACE_USED.search(v) or "'" in v for v in values)
            if grouped and style.thousands not in (" ", "\u00a0", "\u202f", "'"):
                notes.append("thousands separated by spaces: remove them before pd.to_numeric")
    if dtype in ("date", "datetime") and not workbook:
        note = date_note(values)
        if note:
            notes.append(note)
    if workbook and dtype in ("int", "float") and _EXCEL_DATE_NAME.search(name):
        numbers = [float(v) for v in values[:50] if v.replace(".", "", 1).isdigit()]
        if numbers and all(20_000 <= n <= 80_000 for n in numbers):
            notes.append("Excel serial dates: pd.to_datetime(col, unit='D', origin='1899-12-30')")
    return tuple(notes)


def pandas_names(raw: Sequence[str], offset: int = 0) -> list[str]:
    """Header cells named as pandas' read_csv names them: an empty cell is "Unnamed: <position>"
    (0-based); a repeated name gets ".1", ".2", …, skipping names the header already has
    (pandas' `mangle_dupe_names`: x, x, x.1 → x, x.2, x.1). `offset`: the position of the
    first cell in the sheet (read_excel numbers unnamed columns from column A)."""
    names = [name if name else f"Unnamed: {i}" for i, name in enumerate(raw, start=offset)]
    present = set(names)
    counts: dict[str, int] = {}
    for i, old in enumerate(names):
        col = old
        current = counts.get(col, 0)
        while current > 0:
            counts[old] = current + 1
            col = f"{old}.{current}"
            current = current + 1 if col in present else counts.get(col, 0)
        names[i] = col
        counts[col] = current + 1
    return names
