"""Delimited text: dialect sniffing on a sample, then one streaming pass over the file."""

from __future__ import annotations

import codecs
import csv
import io
import re
import statistics
from collections import Counter
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
from bot.tabular.naming import clip_cell
from bot.tabular.profile import ColumnStats, column_notes, detect_style, pandas_names

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
    skip_rows: int  # physical lines before the header: an Excel "sep=X" hint, titles, blanks
    skipped: tuple[str, ...] = ()  # the non-blank lines skipped (titles, comments), clipped


#: How many lines may precede the header (titles, a period, an organisation, blanks).
MAX_PREAMBLE = 30
_COMMENT = ("#", "//")
_FOOTER_WORDS = re.compile(
    r"(?i)(?:итого|итог\b|всего|в том числе|total\b|totals\b|grand total|subtotal|sum\b|"
    r"примечани|notes?\b|source\b|источник|\*)"
)
_MAX_FOOTER = 20
_TAIL_BYTES = 64 * 1024

Record = tuple[int, list[str]]  # (first physical line, 0-based; the fields)


def decode_head(head: bytes, encoding: str, complete: bool) -> str:
    """Decode the head sample; an incomplete tail (cut mid-character) is dropped."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    return decoder.decode(head, final=complete)


def _filled(row: list[str]) -> int:
    return sum(1 for cell in row if cell.strip())


def _is_comment(row: list[str], delimiter: str) -> bool:
    return delimiter.join(row).lstrip().startswith(_COMMENT)


def _locate_header(records: list[Record], delimiter: str) -> int | None:
    """Index in `records` of the header row: the first row, after blank, comment and title
    lines, that fills at least half of the table's usual width (and two cells), or that has
    a value beyond its first two cells (titles and "Period:;2024" lines do not)."""
    content = [
        i for i, (_, row) in enumerate(records) if _filled(row) and not _is_comment(row, delimiter)
    ]
    if not content:
        return None
    widths = Counter(len(records[i][1]) for i in content if len(records[i][1]) >= 2)
    width = widths.most_common(1)[0][0] if widths else 1
    need = max(2, -(-width // 2)) if width >= 2 else 1
    for position, i in enumerate(content):
        row = records[i][1]
        if records[i][0] > MAX_PREAMBLE:
            break
        filled = _filled(row)
        spans = any(cell.strip() for cell in row[2:])  # a value beyond the first two cells
        following = content[position + 1 : position + 6]
        fuller_below = any(_filled(records[j][1]) > filled for j in following)
        if spans or (filled >= need and not fuller_below):
            return i
    return content[0]


def sniff(text: str, *, complete: bool, extension: str) -> Dialect:
    """Find the table in the sample: its delimiter and the line its header is on.

    Leading blank lines, comments (`#`, `//`) and title lines ("Отчёт о продажах за 2024 год",
    "Период: …;;;;") are skipped; the header is the first row that fills at least half of
    the table's usual width. Among delimiters, the one under which the rows after the header
    are most consistent wins; ties go to the delimiter that leaves fewer fields starting with
    a space ("Name, Surname" in a tab-separated file is text, not two fields), then to the
    wider reading, then to the extension's delimiter. Raises NOT_TABULAR for JSON/markup,
    prose and ragged rows, and TOO_WIDE for a header wider than MAX_COLUMNS.
    """
    stripped = text.lstrip("\ufeff \t\r\n")
    _reject_structured(stripped)
    text = text.lstrip("\ufeff")
    hint_line = 0
    first_line = stripped.partition("\n")[0]
    hint = _SEP_HINT.match(first_line)
    preferred = _EXTENSION_DELIMITER.get(extension, ",")
    order = (preferred, *(d for d in DELIMITERS if d != preferred))
    if hint and hint.group(1) in DELIMITERS:
        order = (hint.group(1),)
        hint_line = text[: text.index(first_line)].count("\n") + 1

    best: tuple[tuple[int, ...], str] | None = None
    ragged = False
    parsed: dict[str, list[list[str]]] = {}
    located: dict[str, Dialect] = {}
    for rank, delimiter in enumerate(order):
        records = [r for r in _records(text, delimiter, complete) if r[0] >= hint_line]
        start = _locate_header(records, delimiter) if records else None
        if start is None:
            raise TableError(TableErrorCode.EMPTY, "no records")
        rows = [row for _, row in records[start:] if row]
        parsed[delimiter] = rows
        skipped = tuple(
            clip_cell(" ".join(cell.strip() for cell in row if cell.strip()), 80)
            for _, row in records[:start]
            if _filled(row)
        )
        located[delimiter] = Dialect(delimiter, records[start][0], skipped[:5])
        width = len(rows[0])
        if width < 2:
            continue
        consistency = _consistency(rows, width)
        if consistency < _MIN_CONSISTENCY or _prose(rows):
            ragged = True
            continue
        # fewer lines skipped before the header: "item;amount" is the header, not a title
        key = (
            int(consistency * 20),
            -len(skipped),
            -int(_space_led(rows) * 4),
            width,
            -rank,
        )
        if best is None or key > best[0]:
            best = (key, delimiter)
    if best is not None:
        width = len(parsed[best[1]][0])
        if width > MAX_COLUMNS:
            raise TableError(TableErrorCode.TOO_WIDE, f"{width} columns")
        return located[best[1]]
    single = _single_column(parsed, order)
    if single is None:
        why = "ragged rows, no consistent delimiter" if ragged else "prose, not a table"
        raise TableError(TableErrorCode.NOT_TABULAR, why)
    return located[single]


def _prose(rows: list[list[str]]) -> bool:
    """Sentences split at their commas: a "header" holding a sentence, and fields that start
    with a space as the words after a comma do."""
    sentence = any(len(cell.split()) >= 6 for cell in rows[0])
    return sentence and _space_led(rows[:50]) > 0.3


def is_footer(row: list[str], width: int) -> bool:
    """A total or a note after the data: "Итого;;1 234", "Total,,5", "* prices with VAT"."""
    cells = [cell.strip() for cell in row]
    filled = [cell for cell in cells if cell]
    if not filled:
        return True  # an empty-celled row among the footer lines
    first = filled[0]
    if _FOOTER_WORDS.match(first) or first.startswith(_COMMENT):
        return True
    return width >= 3 and len(filled) == 1 and len(first) > 20 and " " in first


def find_footer(records: list[Record], width: int, end_line: int) -> tuple[int, int, list[str]]:
    """Total/note rows at the end of `records` (the file's last records, in order).

    Returns (records to leave out, physical lines to leave out — pandas' `skipfooter` —,
    their texts). `end_line` is the number of physical lines the records span.
    """
    count = 0
    first_line = end_line
    texts: list[str] = []
    real = [r for r in records if r[1]]
    for line, row in reversed(real[-_MAX_FOOTER:]):
        if not is_footer(row, width):
            break
        count += 1
        first_line = line
        if _filled(row):
            texts.append(clip_cell(" ".join(c.strip() for c in row if c.strip()), 80))
    if count == len(real) or not any(_filled(r[1]) and not is_footer(r[1], width) for r in real):
        return 0, 0, []  # no data row left to tell a footer from: keep everything
    if not texts:
        return 0, 0, []  # only empty rows at the end: they are harmless
    return count, end_line - first_line, texts[::-1]


def _reject_structured(text: str) -> None:
    if text.startswith("{"):
        raise TableError(TableErrorCode.NOT_TABULAR, "JSON content")
    if text.startswith("[") and re.match(r"\[\s*(?:[\[{\"\]\d-]|true|false|null)", text):
        raise TableError(TableErrorCode.NOT_TABULAR, "JSON content")
    if text.startswith("<") and _MARKUP.match(text):
        raise TableError(TableErrorCode.NOT_TABULAR, "XML/HTML content")


def _records(text: str, delimiter: str, complete: bool) -> list[Record]:
    """Records of the sample with their first physical line; blank lines are `[]`."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[Record] = []
    line = 0
    try:
        for row in reader:
            records.append((line, row))
            line = reader.line_num
            if len(records) > _SNIFF_RECORDS + MAX_PREAMBLE:
                break
    except csv.Error:
        pass  # judged by what parsed so far; the streaming pass reports real errors
    else:
        if not complete and len(records) > 1 and len(records) <= _SNIFF_RECORDS + MAX_PREAMBLE:
            records.pop()  # the sample may end mid-record
    return records[: _SNIFF_RECORDS + MAX_PREAMBLE]


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


def _tail_records(path: Path, encoding: str, delimiter: str, size: int) -> tuple[list[Record], int]:
    """The last records of a big file (from its last 64 KiB), and the lines they span."""
    with path.open("rb") as file:
        file.seek(max(0, size - _TAIL_BYTES))
        data = file.read()
    text = data.decode(encoding, errors="replace")
    if size > _TAIL_BYTES:  # drop the first, probably partial, line
        cut = min((i for i in (text.find("\n"), text.find("\r")) if i >= 0), default=-1)
        text = text[cut + 1 :] if cut >= 0 else ""
    records = _records_all(text, delimiter)
    return records, _line_count(text)


def _records_all(text: str, delimiter: str) -> list[Record]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[Record] = []
    line = 0
    try:
        for row in reader:
            records.append((line, row))
            line = reader.line_num
    except csv.Error:
        return []
    return records


def _line_count(text: str) -> int:
    """Physical lines, as pandas counts them: a final line break ends the last line."""
    return len(io.StringIO(text, newline="").readlines())


def inspect_csv(
    path: Path, encoding: str, dialect: Dialect, *, head: str = "", complete: bool = False
) -> TableInfo:
    """Stream the whole file once: header, row count, per-column types and statistics, first
    rows; the title lines before the header and total/note lines at the end are left out."""
    size = path.stat().st_size
    try:
        return _inspect_csv(path, encoding, dialect, head, complete, size)
    except csv.Error as exc:
        raise TableError(TableErrorCode.NOT_TABULAR, f"malformed CSV: {exc}") from exc


def _inspect_csv(
    path: Path, encoding: str, dialect: Dialect, head: str, complete: bool, size: int
) -> TableInfo:
    delimiter = dialect.delimiter
    head_records = _records_all(head.lstrip("\ufeff"), delimiter) if head else []
    body = [row for line, row in head_records if line >= dialect.skip_rows and row]
    if complete and head:
        tail, lines = head_records, _line_count(head.lstrip("\ufeff"))
    else:
        tail, lines = _tail_records(path, encoding, delimiter, size)
    width_guess = len(body[0]) if body else 0
    footer_rows, footer_lines, footer = find_footer(tail, width_guess, lines)
    sample_cells = [cell for row in body[1 : len(body) - footer_rows or None] for cell in row]
    style = detect_style(sample_cells, delimiter)

    # Every byte was validated or judged already; stray damage becomes U+FFFD.
    with path.open(encoding=encoding, errors="replace", newline="") as file:
        for _ in range(dialect.skip_rows):
            file.readline()
        reader = csv.reader(file, delimiter=delimiter)
        header = next((row for row in reader if row), None)
        if header is None:
            raise TableError(TableErrorCode.EMPTY, "no records")
        width = len(header)
        if width > MAX_COLUMNS:
            raise TableError(TableErrorCode.TOO_WIDE, f"{width} columns")
        typer = ColumnTyper(width, style)
        stats = ColumnStats(width)
        sample: list[list[str]] = []
        rows = 0
        held: list[list[str]] = []  # the last `footer_rows` rows: maybe the footer
        while chunk := list(islice(reader, _CHUNK_ROWS)):
            data = held + [row for row in chunk if row]
            cut = max(0, len(data) - footer_rows)
            data, held = data[:cut], data[cut:]
            if not data:
                continue
            rows += len(data)
            if len(sample) < SAMPLE_ROWS:
                missing = SAMPLE_ROWS - len(sample)
                sample.extend(_sample_row(row, width) for row in data[:missing])
            columns = list(zip_longest(*data, fillvalue=""))[:width]
            stats.feed(columns, len(data))
            if not typer.settled:
                typer.feed(columns)
    if rows == 0:
        raise TableError(TableErrorCode.NO_ROWS, "header only")
    names = pandas_names(header)
    columns_out = []
    for index, (name, dtype) in enumerate(zip(names, typer.dtypes(), strict=True)):
        values = stats.samples(index)
        mixed = typer.mixed(index) if dtype == "text" else None
        columns_out.append(
            Column(
                name,
                dtype,
                missing=stats.missing(index),
                constant=stats.constant(index),
                mixed=mixed[0] if mixed else None,
                notes=column_notes(name, dtype, values, style) + _mixed_note(mixed),
            )
        )
    return TableInfo(
        kind="csv",
        rows=rows,
        columns=tuple(columns_out),
        sample=sample,
        encoding=encoding,
        delimiter=delimiter,
        skip_rows=dialect.skip_rows,
        footer_rows=footer_lines if footer_rows else 0,
        decimal=style.decimal,
        thousands=style.thousands,
        skipped=dialect.skipped,
        footer=tuple(footer),
    )


def _mixed_note(mixed: tuple[str, float, str] | None) -> tuple[str, ...]:
    if mixed is None:
        return ()
    dtype, share, example = mixed
    return (f"mixed: mostly {dtype} values ({share:.0%}), but also text such as {example!r}",)


def _sample_row(row: list[str], width: int) -> list[str]:
    cells = [clip_cell(cell) for cell in row[:width]]
    cells.extend([""] * (width - len(cells)))
    return cells
