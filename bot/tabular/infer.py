"""Column type inference over all rows, at regex speed.

Cells arrive as strings, a chunk of rows at a time, transposed into columns. For each column
the chunk is joined with NUL and checked with one `re.fullmatch` per still-possible type, so
the per-cell work happens inside the regex engine rather than in Python bytecode. A type that
fails once is never tried again; a column with no type left (text) costs nothing afterwards.

Rules (surrounding spaces are ignored; missing-value markers count as empty):
- empty: "", NA, N/A, NaN, null, None, #N/A, "-", "—"
- bool: true/false, yes/no, да/нет (any case)
- int: 42, -7, +3, "1 234 567" (space, NBSP or narrow NBSP as thousands separator)
- float: 1.5, .5, 1e-3, inf; 1,5 and "1 234,5" only when the decimal comma is allowed
- date: 2024-01-31, 2024/01/31, 31.01.2024, 31/01/2024 (also 1/31/2024)
- datetime: a date followed by " " or "T" and HH:MM[:SS[.fff]] with an optional zone;
  a column mixing dates and datetimes is "datetime"
- text: anything else
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.tabular.model import DType

#: Joins the cells of one column; NUL never occurs in text we accept.
CELL_SEP = "\x00"

_SP = r"[ \t]*"
_NULL = r"(?i:na|n/a|nan|null|none|\#n/a|-|—)"
# Plain digits first: the common case matches at once; grouped thousands are the fallback.
_INTPART = r"(?:\d+|\d{1,3}(?:[ \u00a0\u202f]\d{3})+)"
_INT = rf"[+-]?{_INTPART}"
_EXP = r"(?:[eE][+-]?\d+)?"
_BOOL = r"(?i:true|false|yes|no|да|нет)"
_MONTH = r"(?:0?[1-9]|1[0-2])"
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_DATE = (
    r"(?:\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    rf"|\d{{4}}/{_MONTH}/{_DAY}"
    rf"|{_DAY}\.{_MONTH}\.\d{{4}}"
    rf"|{_DAY}/{_DAY}/\d{{4}})"
)
_TIME = r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:[.,]\d{1,9})?)?"
_ZONE = r"(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)?"
_DATETIME = rf"{_DATE}(?:[T ]{_TIME}{_ZONE})?"


def _float(decimal_comma: bool) -> str:
    point = "[.,]" if decimal_comma else r"\."
    return rf"(?:[+-]?(?:{_INTPART}(?:{point}\d*)?|{point}\d+){_EXP}|[+-]?(?i:inf(?:inity)?))"


def _column_pattern(value: str) -> re.Pattern[str]:
    """A pattern that fully matches NUL-joined cells, each empty, a null marker or `value`."""
    # Atomic per cell: once a cell matched up to its separator, never revisit it (linear time).
    # The lookahead inside the group makes alternatives that stop short ("na" of "nan") retry.
    cell = rf"(?>{_SP}(?:{value}|{_NULL})?{_SP}(?={CELL_SEP}|\Z))"
    return re.compile(rf"{cell}(?:{CELL_SEP}{cell})*+")


_ALL_NULL = _column_pattern(_NULL)

# (dtype, pattern, dtypes that are implied when this one matches), narrowest first.
_Rule = tuple[DType, re.Pattern[str], frozenset[str]]


def _rules(decimal_comma: bool) -> tuple[_Rule, ...]:
    return (
        ("bool", _column_pattern(_BOOL), frozenset()),
        ("int", _column_pattern(_INT), frozenset({"float"})),
        ("float", _column_pattern(_float(decimal_comma)), frozenset()),
        ("date", _column_pattern(_DATE), frozenset({"datetime"})),
        ("datetime", _column_pattern(_DATETIME), frozenset()),
    )


_RULES = {False: _rules(False), True: _rules(True)}


#: Every dtype a rule can prove; `ColumnTyper.restrict` narrows a column to a subset of it.
ALL_DTYPES: frozenset[str] = frozenset(rule[0] for rule in _RULES[False])


class ColumnTyper:
    """Accumulates evidence about `width` columns fed chunk by chunk.

    Text cells go through `feed` / `feed_text`; already-typed values (from a workbook) are
    reported with `restrict`, e.g. a non-integral float allows only {"float"}.
    """

    __slots__ = ("_candidates", "_has_value", "_open")

    def __init__(self, width: int, *, decimal_comma: bool = False) -> None:
        rules = _RULES[decimal_comma]
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
            self._candidates[index] = tuple(kept)

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
