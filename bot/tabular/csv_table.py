"""Delimited text: dialect sniffing on a sample, then one streaming pass over the file."""

from __future__ import annotations

import codecs
import csv
import io
import re
import statistics
from dataclasses import dataclass
from itertools import islice, zip_longest
from pathlib import Path

from bot.tabular.infer import ColumnTyper
from bot.tabular.model import (
    MAX_COLUMNS,
    SAMPLE_ROWS,
    Column,
    TableError,
    TableErrorCode,
    TableInfo,
)
from bot.tabular.naming import clip_cell, unique_names

DELIMITERS = (",", ";", "\t", "|")
_EXTENSION_DELIMITER = {".tsv": "\t", ".tab": "\t", ".psv": "|"}
_SNIFF_RECORDS = 500
_MIN_CONSISTENCY = 0.6
_CHUNK_ROWS = 1024
_SEP_HINT = re.compile(r"\A\s*sep=(.)\s*\Z", re.IGNORECASE)
_MARKUP = re.compile(r"<(?:\?xml|!--|(?:!doctype|html|head|body|table|meta|div|workbook)\b)", re.I)
_MARKDOWN_LINE = re.compile(r"\A\s*(?:#{1,6}\s|```|[*+-]\s|>\s|\d+\.\s)")


@dataclass(frozen=True, slots=True)
class Dialect:
    delimiter: str
    skip_rows: int  # 1 when the file starts with an Excel "sep=X" line


def decode_head(head: bytes, encoding: str, complete: bool) -> str:
    """Decode the head sample; an incomplete tail (cut mid-character) is dropped."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    return decoder.decode(head, final=complete)


def sniff(text: str, *, complete: bool, extension: str) -> Dialect:
    """Pick the delimiter under which the sample's rows are most consistent.

    Ties go to the delimiter that leaves fewer fields starting with a space ("Name, Surname"
    in a tab-separated file is text, not two fields), then to the wider reading, then to the
    extension's delimiter. Raises NOT_TABULAR for JSON/markup, prose and ragged rows, and
    TOO_WIDE for a header wider than MAX_COLUMNS.
    """
    stripped = text.lstrip("\ufeff \t\r\n")
    _reject_structured(stripped)
    skip_rows = 0
    first_line, _, rest = stripped.partition("\n")
    hint = _SEP_HINT.match(first_line)
    if hint and hint.group(1) in DELIMITERS:
        skip_rows, text = 1, rest
    preferred = _EXTENSION_DELIMITER.get(extension, ",")
    order = (preferred, *(d for d in DELIMITERS if d != preferred))
    if skip_rows:
        order = (hint.group(1),)  # type: ignore[union-attr]

    best: tuple[tuple[int, int, int, int], str] | None = None
    ragged = False
    parsed: dict[str, list[list[str]]] = {}
    for rank, delimiter in enumerate(order):
        records = _records(text, delimiter, complete)
        parsed[delimiter] = records
        if not records:
            raise TableError(TableErrorCode.EMPTY, "no records")
        width = len(records[0])
        if width < 2:
            continue
        consistency = _consistency(records, width)
        if consistency < _MIN_CONSISTENCY:
            ragged = True
            continue
        key = (int(consistency * 20), -int(_space_led(records) * 4), width, -rank)
        if best is None or key > best[0]:
            best = (key, delimiter)
    if best is not None:
        width = len(parsed[best[1]][0])
        if width > MAX_COLUMNS:
            raise TableError(TableErrorCode.TOO_WIDE, f"{width} columns")
        return Dialect(best[1], skip_rows)
    single = _single_column(parsed, order)
    if single is None:
        why = "ragged rows, no consistent delimiter" if ragged else "prose, not a table"
        raise TableError(TableErrorCode.NOT_TABULAR, why)
    return Dialect(single, skip_rows)


def _reject_structured(text: str) -> None:
    if text.startswith("{"):
        raise TableError(TableErrorCode.NOT_TABULAR, "JSON content")
    if text.startswith("[") and re.match(r"\[\s*(?:[\[{\"\]\d-]|true|false|null)", text):
        raise TableError(TableErrorCode.NOT_TABULAR, "JSON content")
    if text.startswith("<") and _MARKUP.match(text):
        raise TableError(TableErrorCode.NOT_TABULAR, "XML/HTML content")


def _records(text: str, delimiter: str, complete: bool) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[list[str]] = []
    try:
        for row in reader:
            if row:
                records.append(row)
                if len(records) > _SNIFF_RECORDS:
                    break
    except csv.Error:
        pass  # judged by what parsed so far; the streaming pass reports real errors
    else:
        if not complete and len(records) > 1 and len(records) <= _SNIFF_RECORDS:
            records.pop()  # the sample may end mid-record
    return records[:_SNIFF_RECORDS]


def _consistency(records: list[list[str]], width: int) -> float:
    """Share of data rows with 2..width fields (width+1 when the extra one is empty)."""
    data = records[1:]
    if not data:
        return 1.0
    fitting = sum(
        1 for row in data if 2 <= len(row) <= width or (len(row) == width + 1 and not row[-1])
    )
    return fitting / len(data)


def _space_led(records: list[list[str]]) -> float:
    """Share of non-first fields that start with a space: prose punctuation, not a delimiter."""
    fields = led = 0
    for row in records:
        fields += len(row) - 1
        led += sum(1 for cell in row[1:] if cell[:1] == " ")
    return led / fields if fields else 0.0


def _single_column(parsed: dict[str, list[list[str]]], order: tuple[str, ...]) -> str | None:
    """A one-column table (a list of values) is fine; a text document is not.

    A CSV writer quotes values that contain the delimiter, so unquoted delimiters scattered
    over the lines mean prose or ragged rows.
    """
    delimiter = order[0]
    records = parsed[delimiter]
    if sum(len(r) > 1 for r in records) > len(records) * 0.1:
        return None
    values = [r[0].strip() for r in records]
    header, data = values[0], values[1:]
    if len(header) > 64 or _MARKDOWN_LINE.match(header):
        return None
    if not data:
        return delimiter  # a lone short line: a header without rows
    typer = ColumnTyper(1)
    typer.feed([data])
    if typer.dtypes()[0] not in ("text", "empty"):
        return delimiter
    if sum(bool(_MARKDOWN_LINE.match(v)) for v in data) > len(data) * 0.05:
        return None
    words = statistics.median(len(v.split()) for v in data)
    if words > 4 or statistics.median(len(v) for v in data) > 40:
        return None
    return delimiter


def inspect_csv(path: Path, encoding: str, dialect: Dialect) -> TableInfo:
    """Stream the whole file once: header, row count, per-column types, first rows."""
    try:
        # Every byte was validated or judged already; stray damage becomes U+FFFD.
        with path.open(encoding=encoding, errors="replace", newline="") as file:
            for _ in range(dialect.skip_rows):
                file.readline()
            reader = csv.reader(file, delimiter=dialect.delimiter)
            header = next((row for row in reader if row), None)
            if header is None:
                raise TableError(TableErrorCode.EMPTY, "no records")
            width = len(header)
            if width > MAX_COLUMNS:
                raise TableError(TableErrorCode.TOO_WIDE, f"{width} columns")
            typer = ColumnTyper(width, decimal_comma=dialect.delimiter != ",")
            sample: list[list[str]] = []
            rows = 0
            while chunk := list(islice(reader, _CHUNK_ROWS)):
                data = [row for row in chunk if row]
                rows += len(data)
                if len(sample) < SAMPLE_ROWS:
                    missing = SAMPLE_ROWS - len(sample)
                    sample.extend(_sample_row(row, width) for row in data[:missing])
                if not typer.settled and data:
                    columns = list(zip_longest(*data, fillvalue=""))
                    typer.feed(columns[:width])
    except csv.Error as exc:
        raise TableError(TableErrorCode.NOT_TABULAR, f"malformed CSV: {exc}") from exc
    if rows == 0:
        raise TableError(TableErrorCode.NO_ROWS, "header only")
    names = unique_names([cell.strip() for cell in header])
    columns = tuple(Column(n, t) for n, t in zip(names, typer.dtypes(), strict=True))
    return TableInfo(
        kind="csv",
        rows=rows,
        columns=columns,
        sample=sample,
        encoding=encoding,
        delimiter=dialect.delimiter,
        skip_rows=dialect.skip_rows,
    )


def _sample_row(row: list[str], width: int) -> list[str]:
    cells = [clip_cell(cell) for cell in row[:width]]
    cells.extend([""] * (width - len(cells)))
    return cells
