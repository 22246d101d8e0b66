"""Workbooks (XLSX/XLSM, XLS, XLSB, ODS) through python-calamine: every non-empty worksheet is
described, the first one in full; XLS, XLSB and ODS sheets are converted to UTF-8 CSV."""

from __future__ import annotations

import csv
import datetime as dt
import re
import zipfile
import zlib
from dataclasses import replace
from itertools import chain, islice, zip_longest
from pathlib import Path

from python_calamine import (
    CalamineError,
    CalamineSheet,
    CalamineWorkbook,
    PasswordError,
    SheetTypeEnum,
    SheetVisibleEnum,
)

from bot.tabular.csv_table import MAX_PREAMBLE, _locate_header, _mixed_note, is_footer
from bot.tabular.infer import ALL_DTYPES, ColumnTyper
from bot.tabular.model import (
    MAX_COLUMNS,
    SAMPLE_ROWS,
    Column,
    TableError,
    TableErrorCode,
    TableInfo,
    TableKind,
)
from bot.tabular.naming import clip_cell
from bot.tabular.profile import (
    SAMPLE_VALUES,
    ColumnStats,
    column_notes,
    detect_style,
    pandas_names,
)

#: Workbook kinds the model gets as CSV (its sandbox may lack their readers).
CONVERTED_KINDS = frozenset({"xls", "xlsb", "ods"})
Cell = int | float | str | bool | dt.time | dt.date | dt.datetime | dt.timedelta
_CHUNK_ROWS = 4096


def cell_text(value: Cell) -> str:
    """Render a calamine value the way the CSV rules type it (1.0 → "1", date → ISO)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


#: Sheets described per workbook (the first non-empty one in full, the others by shape).
MAX_SHEETS = 20
#: A worksheet whose declared size is over this many cells is refused before it is loaded.
MAX_CELLS = 50_000_000
#: A workbook archive unpacking to more than this is refused (zip bomb).
MAX_UNPACKED = 1 << 30
_MAX_RATIO = 200  # a member over 10 MiB packed this tightly is a bomb, not a table
_DIMENSION = re.compile(rb"<(?:\w+:)?dimension\s+ref=\"([A-Z]{1,3})(\d+)(?::([A-Z]{1,3})(\d+))?\"")


def inspect_workbook(path: Path, kind: TableKind, convert_to: Path | None = None) -> TableInfo:
    """Describe every non-empty worksheet of an XLSX/XLSM/XLS/XLSB/ODS workbook.

    The first non-empty visible sheet is the table (`TableInfo`), the others come in `others`.
    For kinds the model cannot read as they are (xls, xlsb, ods), each described sheet is
    written as a UTF-8 CSV of its table: the first to `convert_to`, the others next to it
    (`<convert_to>-<n>`); `converted` holds the path.
    """
    if kind in ("xlsx", "ods"):
        _check_archive(path, kind)
    try:
        workbook = CalamineWorkbook.from_path(str(path))
    except PasswordError as exc:
        raise TableError(TableErrorCode.ENCRYPTED, "password-protected workbook") from exc
    except (CalamineError, OSError, ValueError) as exc:
        code = TableErrorCode.OLD_EXCEL if kind == "xls" else TableErrorCode.CORRUPT_XLSX
        raise TableError(code, f"cannot open workbook: {exc}") from exc
    try:
        with workbook:
            return _inspect_workbook(path, workbook, kind, convert_to)
    except TableError:
        raise
    except (CalamineError, ValueError, OverflowError, zlib.error) as exc:
        code = TableErrorCode.OLD_EXCEL if kind == "xls" else TableErrorCode.CORRUPT_XLSX
        raise TableError(code, f"cannot read workbook: {exc}") from exc


def inspect_xlsx(path: Path) -> TableInfo:
    return inspect_workbook(path, "xlsx")


def _check_archive(path: Path, kind: TableKind) -> None:
    """Refuse zip bombs before calamine unpacks anything: too much unpacked data, a member
    packed impossibly tightly, or a worksheet declaring a huge size."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            total = sum(info.file_size for info in infos)
            if total > MAX_UNPACKED:
                raise TableError(TableErrorCode.TOO_LARGE, f"unpacks to {total} bytes")
            for info in infos:
                packed = max(1, info.compress_size)
                if info.file_size > 10 << 20 and info.file_size / packed > _MAX_RATIO:
                    raise TableError(
                        TableErrorCode.TOO_LARGE,
                        f"{info.filename} packed {info.file_size // packed}:1",
                    )
            if kind != "xlsx":
                return
            for info in infos:
                if info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml"):
                    with archive.open(info) as stream:
                        head = stream.read(8192)
                    match = _DIMENSION.search(head)
                    if match and match.group(3):
                        rows = int(match.group(4)) - int(match.group(2)) + 1
                        cols = _column_number(match.group(3)) - _column_number(match.group(1)) + 1
                        if rows * cols > MAX_CELLS:
                            raise TableError(
                                TableErrorCode.TOO_LARGE, f"sheet declares {rows}×{cols} cells"
                            )
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError):
        return  # calamine reports a broken archive in its own words


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


def _inspect_workbook(
    path: Path, workbook: CalamineWorkbook, kind: TableKind, convert_to: Path | None
) -> TableInfo:
    worksheets = [
        (index, meta)
        for index, meta in enumerate(workbook.sheets_metadata)
        if meta.typ == SheetTypeEnum.WorkSheet
    ]
    # Visible sheets first: a hidden lookup sheet is not what the user means.
    worksheets.sort(key=lambda item: item[1].visible != SheetVisibleEnum.Visible)
    tables: list[TableInfo] = []
    first_error: TableError | None = None
    extra = 0
    for index, meta in worksheets:
        if len(tables) >= MAX_SHEETS:
            extra += 1
            continue
        sheet = workbook.get_sheet_by_index(index)
        if not (sheet.height and sheet.width):
            continue
        if sheet.height * sheet.width > MAX_CELLS:
            raise TableError(TableErrorCode.TOO_LARGE, f"{sheet.height}×{sheet.width} cells")
        if sheet.width > MAX_COLUMNS:
            if not tables:
                raise TableError(TableErrorCode.TOO_WIDE, f"{sheet.width} columns")
            continue
        target = None
        if convert_to is not None and kind in CONVERTED_KINDS:
            target = (
                convert_to
                if not tables
                else convert_to.with_name(f"{convert_to.name}-{len(tables)}")
            )
        try:
            tables.append(_inspect_sheet(meta.name, sheet, kind, target))
        except TableError as exc:
            if exc.code not in (TableErrorCode.EMPTY, TableErrorCode.NO_ROWS):
                raise
            first_error = first_error or exc
    if not tables:
        if first_error is not None:
            raise first_error
        raise TableError(TableErrorCode.EMPTY, "no worksheet holds any cell")
    main, others = tables[0], tuple(tables[1:])
    return replace(main, others=others, extra_sheets=len(others) + extra)


# What a typed (non-str) workbook value allows a column to be.
_INT_LIKE = frozenset({"int", "float"})
_ALLOWED_BY_TYPE: dict[type, frozenset[str]] = {
    bool: frozenset({"bool"}),
    int: _INT_LIKE,
    dt.datetime: frozenset({"datetime"}),
    dt.date: frozenset({"date", "datetime"}),
}
_NOTHING: frozenset[str] = frozenset()


def _feed_typed(typer: ColumnTyper, columns: list[tuple[Cell, ...]]) -> None:
    """Type one transposed chunk without turning every value into text."""
    for index in typer.open_columns:
        if index >= len(columns):
            continue
        cells = columns[index]
        types = set(map(type, cells))
        if types == {str}:
            typer.feed_text(index, cells)  # type: ignore[arg-type]
            continue
        allowed = ALL_DTYPES
        for kind in types:
            if kind is str:
                continue
            if kind is float:
                floats = cells if types == {float} else [v for v in cells if type(v) is float]
                integral = all(map(float.is_integer, floats))  # type: ignore[arg-type]
                allowed = allowed & (_INT_LIKE if integral else frozenset({"float"}))
            else:
                allowed = allowed & _ALLOWED_BY_TYPE.get(kind, _NOTHING)
        typer.restrict(index, allowed)
        if str in types:
            typer.feed_text(index, [v for v in cells if type(v) is str])  # type: ignore[misc]
    typer.refresh()


def _inspect_sheet(
    name: str, sheet: CalamineSheet, kind: TableKind, convert_to: Path | None
) -> TableInfo:
    start = sheet.start or (0, 0)
    rows_iter = enumerate(sheet.iter_rows())  # absolute sheet rows, from the used columns on
    head: list[tuple[int, list[Cell]]] = []
    for number, row in rows_iter:
        head.append((number, row))
        if len(head) >= MAX_PREAMBLE + _SNIFF_ROWS:
            break
    records = [(number, _trimmed_text(row)) for number, row in head]
    found = _locate_header(records, "\t")
    if found is None:
        raise TableError(TableErrorCode.EMPTY, f"sheet {name!r} holds only empty cells")
    header_row, first = head[found]
    width = len(first)
    skipped = tuple(
        clip_cell(" ".join(c for c in text if c), 80) for _, text in records[:found] if any(text)
    )
    style = detect_style(
        (v for _, row in head[found + 1 :] for v in row if type(v) is str and v), None
    )
    typer = ColumnTyper(width, style)
    stats = ColumnStats(width)
    sample: list[list[str]] = []
    values: list[list[str]] = [[] for _ in range(width)]
    rows = 0
    held: list[tuple[int, list[Cell]]] = []
    data_rows = (item for item in chain(head[found + 1 :], rows_iter) if _has_value(item[1]))
    while chunk := list(islice(data_rows, _CHUNK_ROWS)):
        pending = held + chunk
        cut = max(0, len(pending) - _MAX_FOOTER)
        block, held = pending[:cut], pending[cut:]
        _feed_rows([row for _, row in block], width, typer, stats, sample, values)
        rows += len(block)
    footer_count = _footer_count(held, width)
    tail = held[: len(held) - footer_count]
    _feed_rows([row for _, row in tail], width, typer, stats, sample, values)
    rows += len(tail)
    footer = tuple(
        clip_cell(" ".join(t for t in _trimmed_text(row) if t), 80)
        for _, row in held[len(held) - footer_count :]
        if _has_value(row)
    )
    if rows == 0:
        raise TableError(TableErrorCode.NO_ROWS, f"sheet {name!r} has a header only")
    last_row = start[0] + sheet.height - 1 if sheet.height else header_row
    footer_rows = last_row - held[len(held) - footer_count][0] + 1 if footer_count else 0
    header_text = [cell_text(v) for v in first]
    names = pandas_names(header_text, start[1])
    columns = []
    for index, (col_name, dtype) in enumerate(zip(names, typer.dtypes(), strict=True)):
        mixed = typer.mixed(index) if dtype == "text" else None
        columns.append(
            Column(
                col_name,
                dtype,
                missing=stats.missing(index),
                constant=stats.constant(index),
                mixed=mixed[0] if mixed else None,
                notes=column_notes(col_name, dtype, values[index], style, workbook=True)
                + _mixed_note(mixed),
                number_name=type(first[index]) in (int, float),
            )
        )
    info = TableInfo(
        kind=kind,
        rows=rows,
        columns=tuple(columns),
        sample=sample,
        skip_rows=header_row,
        footer_rows=footer_rows,
        decimal=style.decimal,
        thousands=style.thousands,
        sheet=name,
        skipped=skipped[:5],
        footer=footer,
        first_column=start[1],
    )
    if convert_to is None:
        return info
    _write_csv(sheet, header_row, names, last_row - footer_rows, width, convert_to)
    return replace(info, converted=str(convert_to), skip_rows=0, footer_rows=0)


_SNIFF_ROWS = 500
_MAX_FOOTER = 20


def _trimmed_text(row: list[Cell]) -> list[str]:
    cells = [cell_text(v).strip() if type(v) is not str else v.strip() for v in row]
    while cells and not cells[-1]:
        cells.pop()
    return cells


def _has_value(row: list[Cell]) -> bool:
    return row.count("") != len(row)  # calamine gives "" for an empty cell


def _footer_count(held: list[tuple[int, list[Cell]]], width: int) -> int:
    count = 0
    for _, row in reversed(held):
        if not is_footer(_trimmed_text(row), width):
            break
        count += 1
    if count == len(held):
        return 0  # nothing but "footers": they are the data
    return count


def _feed_rows(
    block: list[list[Cell]],
    width: int,
    typer: ColumnTyper,
    stats: ColumnStats,
    sample: list[list[str]],
    values: list[list[str]],
) -> None:
    if not block:
        return
    if len(sample) < SAMPLE_ROWS:
        for row in block[: SAMPLE_ROWS - len(sample)]:
            cells = [clip_cell(cell_text(v)) for v in row[:width]]
            sample.append(cells + [""] * (width - len(cells)))
    columns = list(zip_longest(*block, fillvalue=""))[:width]
    stats.feed(columns, len(block))
    for index, column in enumerate(columns):
        kept = values[index]
        if len(kept) < SAMPLE_VALUES:
            kept.extend(cell_text(v) for v in column[: SAMPLE_VALUES * 2] if v != "")
            del kept[SAMPLE_VALUES:]
    if not typer.settled:
        _feed_typed(typer, columns)


def _write_csv(
    sheet: CalamineSheet, header_row: int, names: list[str], last: int, width: int, target: Path
) -> None:
    """The sheet's table as a UTF-8 CSV: the header, then its rows (empty rows left out)."""
    with target.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(names)
        for number, row in enumerate(sheet.iter_rows()):
            if number <= header_row or number > last or not _has_value(row):
                continue
            cells = [cell_text(v) for v in row[:width]]
            writer.writerow(cells + [""] * (width - len(cells)))
