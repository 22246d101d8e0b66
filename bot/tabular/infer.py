"""Column type inference over all rows, at regex speed.

Cells arrive as strings, a chunk of rows at a time, transposed into columns. For each column
the chunk is joined with NUL and checked with one `re.fullmatch` per still-possible type, so
the per-cell work happens inside the regex engine rather than in Python bytecode. A type that
fails once is never tried again; a column with no type left (text) costs nothing afterwards.

Rules (surrounding spaces are ignored; missing-value markers count as empty):
- empty: "", NA, N/A, NaN, null, None, #N/A, "-", "—"
- bool: true/false, yes/no, да/нет (any case)
- int: 42, -7, +3, "1 234 567" (space, NBSP or narrow NBSP as thousands separator, or the
  file's own separator: 1'234, 1.234 with a decimal comma, 1,234 with a decimal point)
- float: 1.5, .5, 1e-3, inf; with the file's decimal mark (`NumberStyle`)
- numbers may carry a currency mark, a percent sign or parentheses for a negative:
  "$1,200", "1 234,50 ₽", "12,5 %", "(300)" (`notes.column_notes` says which)
- date: 2024-01-31, 2024/01/31, 31.01.2024, 31.01.24, 31-01-2024, 31/01/2024 (also 1/31/2024)
- datetime: a date followed by " " or "T" and HH:MM[:SS[.fff]] with an optional zone;
  a column mixing dates and datetimes is "datetime"
- text: anything else
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.tabular.model import DType

#: Joins the cells of one column; NUL never occurs in text we accept.
CELL_SEP = "\x00"

_SP = r"[ \t]*"
_NULL = r"(?i:na|n/a|nan|null|none|\#n/a|-|—)"
SPACES = "[ \u00a0\u202f]"  # thousands separators people type: space, NBSP, narrow NBSP
_EXP = r"(?:[eE][+-]?\d+)?"
#: Currency marks accepted around a number (the column notes name the one seen).
CURRENCY = r"(?:[$€£¥₽₴₸₹]|(?i:руб\.?|р\.|грн\.?|rub|usd|eur))"
_BOOL = r"(?i:true|false|yes|no|да|нет)"
_MONTH = r"(?:0?[1-9]|1[0-2])"
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_DATE = (
    r"(?:\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    rf"|\d{{4}}/{_MONTH}/{_DAY}"
    rf"|{_DAY}\.{_MONTH}\.(?:\d{{4}}|\d{{2}})"
    rf"|{_DAY}-{_MONTH}-\d{{4}}"
    rf"|{_DAY}/{_DAY}/\d{{4}})"
)
_TIME = r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:[.,]\d{1,9})?)?"
_ZONE = r"(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)?"
_DATETIME = rf"{_DATE}(?:[T ]{_TIME}{_ZONE})?"


@dataclass(frozen=True, slots=True)
class NumberStyle:
    """How a file writes numbers: the decimal mark and the thousands separator (pandas'
    `decimal` and `thousands`). Space-like separators are always accepted as thousands."""

    decimal: str = "."
    thousands: str = ""  # "", " ", "\u00a0", "\u202f", "'", ".", ","


def _int_part(style: NumberStyle) -> str:
    groups = rf"\d{{1,3}}(?:{SPACES}\d{{3}})+"
    if style.thousands == "'":
        groups += r"|\d{1,3}(?:['\u2019]\d{3})+"
    elif style.thousands in (".", ","):
        groups += rf"|\d{{1,3}}(?:{re.escape(style.thousands)}\d{{3}})+"
    # Plain digits first: the common case matches at once; grouped thousands are the fallback.
    return rf"(?:\d+|{groups})"


def _decorated(body: str) -> str:
    """`body` (an unsigned number) with a sign, a currency mark, a percent sign or
    accountants' parentheses for a negative: -5, +5, $5, 5 ₽, -$5, 12,5 %, (1 234,00)."""
    cur = rf"(?:{CURRENCY}{SPACES}?)?"
    tail = rf"(?:{SPACES}?(?:{CURRENCY}|%))?"
    return rf"(?:[+-]?{cur}[+-]?{body}{tail}|\({cur}{body}{tail}\))"


def _float_body(style: NumberStyle, int_part: str) -> str:
    point = re.escape(style.decimal)
    return rf"(?:(?:{int_part}(?:{point}\d*)?|{point}\d+){_EXP}|(?i:inf(?:inity)?))"


def _column_pattern(value: str) -> re.Pattern[str]:
    """A pattern that fully matches NUL-joined cells, each empty, a null marker or `value`."""
    # Atomic per cell: once a cell matched up to its separator, never revisit it (linear time).
    # The lookahead inside the group makes alternatives that stop short ("na" of "nan") retry.
    cell = rf"(?>{_SP}(?:{value}|{_NULL})?{_SP}(?={CELL_SEP}|\Z))"
    return re.compile(rf"{cell}(?:{CELL_SEP}{cell})*+")


_ALL_NULL = _column_pattern(_NULL)


_MARKERS = ("", "na", "n/a", "nan", "null", "none", "#n/a", "-", "—")
_MISSING_CELLS = frozenset(
    {*_MARKERS, *(m.upper() for m in _MARKERS), *(m.title() for m in _MARKERS), "NaN", "N/a"}
)


def count_missing(cells: Sequence[str]) -> int:
    """How many of `cells` are empty or a missing-value marker (NA, null, -, …); a set lookup
    per cell (C speed), so a marker with spaces around it (" NA ") is not counted."""
    return sum(map(_MISSING_CELLS.__contains__, cells))


def is_missing(cell: str) -> bool:
    return _ALL_NULL.fullmatch(cell) is not None


# (dtype, pattern, dtypes that are implied when this one matches), narrowest first.
_Rule = tuple[DType, re.Pattern[str], frozenset[str]]


@functools.lru_cache(maxsize=32)
def _rules(style: NumberStyle) -> tuple[_Rule, ...]:
    int_part = _int_part(style)
    return (
        ("bool", _column_pattern(_BOOL), frozenset()),
        ("int", _column_pattern(_decorated(int_part)), frozenset({"float"})),
        ("float", _column_pattern(_decorated(_float_body(style, int_part))), frozenset()),
        ("date", _column_pattern(_DATE), frozenset({"datetime"})),
        ("datetime", _column_pattern(_DATETIME), frozenset()),
    )


#: Every dtype a rule can prove; `ColumnTyper.restrict` narrows a column to a subset of it.
ALL_DTYPES: frozenset[str] = frozenset(rule[0] for rule in _rules(NumberStyle()))


class ColumnTyper:
    """Accumulates evidence about `width` columns fed chunk by chunk.

    Text cells go through `feed` / `feed_text`; already-typed values (from a workbook) are
    reported with `restrict`, e.g. a non-integral float allows only {"float"}.
    """

    __slots__ = ("_candidates", "_has_value", "_mixed", "_open")

    def __init__(self, width: int, style: NumberStyle | None = None) -> None:
        rules = _rules(style or NumberStyle())
        self._mixed: dict[int, tuple[DType, float, str]] = {}
        self._candidates: list[tuple[_Rule, ...]] = [rules] * width
        self._has_value = [False] * width
        self._open: tuple[int, ...] = tuple(range(width))

    @property
    def settled(self) -> bool:
        """True when no further row can change any column's type."""
        return not self._open

    @property
    def open_columns(self) -> tuple[int, ...]:
        """Columns whose type can still change (the others need no more input)."""
        return self._open

    def feed(self, columns: Sequence[Sequence[str]]) -> None:
        """Feed one chunk, transposed: `columns[i]` holds the text cells of column i.

        Columns missing at the end (every row of the chunk was shorter) count as empty.
        """
        present = len(columns)
        for i in self._open:
            if i < present:
                self.feed_text(i, columns[i])
        self.refresh()

    def feed_text(self, index: int, cells: Sequence[str]) -> None:
        """Check text cells of one column; call `refresh` after a batch of these."""
        if not cells:
            return
        joined = CELL_SEP.join(cells)
        if not self._has_value[index] and _ALL_NULL.fullmatch(joined) is None:
            self._has_value[index] = True
        candidates = self._candidates[index]
        if not candidates:
            return
        implied: frozenset[str] = frozenset()
        kept: list[_Rule] = []
        for rule in candidates:
            dtype, pattern, implies = rule
            if dtype in implied or pattern.fullmatch(joined) is not None:
                kept.append(rule)
                implied = implied | implies
        if len(kept) != len(candidates):
            if not kept and index not in self._mixed:
                self._note_mixed(index, candidates, cells)
            self._candidates[index] = tuple(kept)

    def _note_mixed(self, index: int, rules: tuple[_Rule, ...], cells: Sequence[str]) -> None:
        """A column that held numbers (or dates) until some cells did not: remember how much
        of the chunk where text appeared still fitted, so it can be called "mixed" honestly."""
        values = [c for c in cells if not is_missing(c)]
        best: tuple[int, DType, list[str]] | None = None
        for dtype, pattern, _ in rules:
            bad = [c for c in values if pattern.fullmatch(c) is None]
            if best is None or len(bad) < len(best[2]):
                best = (len(bad), dtype, bad)
        if best is not None and values and best[0] < len(values):
            self._mixed[index] = (best[1], 1 - best[0] / len(values), best[2][0].strip()[:40])

    def mixed(self, index: int) -> tuple[DType, float, str] | None:
        """For a column that ended as text but mostly held one type: (that type, its share in
        the chunk where text appeared, an example of the odd text)."""
        return self._mixed.get(index)

    def restrict(self, index: int, allowed: frozenset[str]) -> None:
        """Record a typed value in column `index` that only the `allowed` dtypes can hold."""
        self._has_value[index] = True
        candidates = self._candidates[index]
        kept = tuple(rule for rule in candidates if rule[0] in allowed)
        if len(kept) != len(candidates):
            self._candidates[index] = kept

    def refresh(self) -> None:
        """Recompute `open_columns` after `feed_text` / `restrict` calls."""
        self._open = tuple(i for i in self._open if self._candidates[i] or not self._has_value[i])

    def dtypes(self) -> list[DType]:
        """The narrowest type that fits every value seen, per column."""
        result: list[DType] = []
        for candidates, has_value in zip(self._candidates, self._has_value, strict=True):
            if not has_value:
                result.append("empty")
            elif candidates:
                result.append(candidates[0][0])
            else:
                result.append("text")
        return result
