"""XLSX/XLSM workbooks through python-calamine: the first non-empty worksheet is the table."""

from __future__ import annotations

import datetime as dt
import html
import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator
from itertools import islice, zip_longest
from pathlib import Path

from python_calamine import (
    CalamineError,
    CalamineSheet,
    CalamineWorkbook,
    PasswordError,
    SheetTypeEnum,
    SheetVisibleEnum,
)

from bot.tabular.infer import ALL_DTYPES, ColumnTyper
from bot.tabular.model import (
    MAX_COLUMNS,
    SAMPLE_ROWS,
    Column,
    TableError,
    TableErrorCode,
    TableInfo,
)
from bot.tabular.naming import clip_cell, unique_names

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


def inspect_xlsx(path: Path) -> TableInfo:
    try:
        workbook = CalamineWorkbook.from_path(str(path))
    except PasswordError as exc:
        raise TableError(TableErrorCode.ENCRYPTED, "password-protected workbook") from exc
    except (CalamineError, OSError, ValueError) as exc:
        raise TableError(TableErrorCode.CORRUPT_XLSX, f"cannot open workbook: {exc}") from exc
    try:
        with workbook:
            return _inspect_workbook(path, workbook)
    except TableError:
        raise
    except (CalamineError, ValueError, OverflowError, zlib.error) as exc:
        raise TableError(TableErrorCode.CORRUPT_XLSX, f"cannot read workbook: {exc}") from exc


def _inspect_workbook(path: Path, workbook: CalamineWorkbook) -> TableInfo:
    worksheets = [
        (index, meta)
        for index, meta in enumerate(workbook.sheets_metadata)
        if meta.typ == SheetTypeEnum.WorkSheet
    ]
    # Visible sheets first: a hidden lookup sheet is not what the user means.
    worksheets.sort(key=lambda item: item[1].visible != SheetVisibleEnum.Visible)
    chosen: tuple[str, CalamineSheet] | None = None
    checked: set[int] = set()
    for index, meta in worksheets:
        sheet = workbook.get_sheet_by_index(index)
        checked.add(index)
        if sheet.height and sheet.width:
            chosen = (meta.name, sheet)
            break
    if chosen is None:
        raise TableError(TableErrorCode.EMPTY, "no worksheet holds any cell")
    name, sheet = chosen
    if sheet.width > MAX_COLUMNS:
        raise TableError(TableErrorCode.TOO_WIDE, f"{sheet.width} columns")
    others = [meta.name for index, meta in worksheets if index not in checked]
    return _inspect_sheet(name, sheet, _count_sheets_with_values(path, workbook, others))


def _count_sheets_with_values(path: Path, workbook: CalamineWorkbook, names: list[str]) -> int:
    """Count sheets holding values without parsing them whole: peek at their XML in the ZIP.

    Stops reading a sheet at its first value or at the end of its (empty) sheetData; falls
    back to loading the sheet with calamine when the workbook's layout is unexpected.
    """
    if not names:
        return 0
    try:
        with zipfile.ZipFile(path) as archive:
            members = _sheet_members(archive)
            count = 0
            for name in names:
                member = members.get(name)
                if member is not None and member in archive.NameToInfo:
                    count += _holds_values(archive, member)
                else:
                    sheet = workbook.get_sheet_by_name(name)
                    count += bool(sheet.height and sheet.width)
            return count
    except (zipfile.BadZipFile, OSError, KeyError, EOFError, ValueError, NotImplementedError):
        return sum(
            bool(sheet.height and sheet.width) for sheet in map(workbook.get_sheet_by_name, names)
        )


_XML_TAG = {
    "sheet": re.compile(rb"<(?:\w+:)?sheet\s([^>]*)>"),
    "rel": re.compile(rb"<(?:\w+:)?Relationship\s([^>]*)>"),
}
_XML_ATTR = re.compile(rb'([\w:]+)\s*=\s*"([^"]*)"')
_VALUE_OR_END = re.compile(
    rb"(?P<value><(?:\w+:)?(?:v|is)[\s>])|(?P<end></(?:\w+:)?sheetData>|<(?:\w+:)?sheetData\s*/>)"
)
_PEEK_CHUNK = 64 * 1024
_PEEK_LIMIT = 8 << 20


def _sheet_members(archive: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name -> ZIP member of its XML, from xl/workbook.xml and its relationships."""
    targets: dict[str, str] = {}
    for match in _XML_TAG["rel"].finditer(archive.read("xl/_rels/workbook.xml.rels")):
        attrs = dict(_XML_ATTR.findall(match[1]))
        rel_id, target = attrs.get(b"Id"), attrs.get(b"Target")
        if rel_id and target:
            text = html.unescape(target.decode("utf-8", "replace"))
            member = text.lstrip("/") if text.startswith("/") else posixpath.join("xl", text)
            targets[rel_id.decode("utf-8", "replace")] = posixpath.normpath(member)
    members: dict[str, str] = {}
    for match in _XML_TAG["sheet"].finditer(archive.read("xl/workbook.xml")):
        attrs = dict(_XML_ATTR.findall(match[1]))
        rel_id = next((v for k, v in attrs.items() if k.endswith(b":id")), None)
        name = attrs.get(b"name")
        if rel_id is not None and name is not None:
            target = targets.get(rel_id.decode("utf-8", "replace"))
            if target:
                members[html.unescape(name.decode("utf-8", "replace"))] = target
    return members


def _holds_values(archive: zipfile.ZipFile, member: str) -> bool:
    read = 0
    with archive.open(member) as stream:
        tail = b""
        while chunk := stream.read(_PEEK_CHUNK):
            match = _VALUE_OR_END.search(tail + chunk)
            if match:
                return match.lastgroup == "value"
            read += len(chunk)
            if read > _PEEK_LIMIT:  # megabytes of markup without a verdict: call it data
                return True
            tail = chunk[-64:]
    return False


def _non_empty_rows(sheet: CalamineSheet) -> Iterator[list[Cell]]:
    for row in sheet.iter_rows():
        if row.count("") != len(row):  # calamine gives "" for an empty cell
            yield row


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


def _inspect_sheet(name: str, sheet: CalamineSheet, extra: int) -> TableInfo:
    rows_iter = _non_empty_rows(sheet)
    first = next(rows_iter, None)
    if first is None:
        raise TableError(TableErrorCode.EMPTY, f"sheet {name!r} holds only empty cells")
    header = [cell_text(v) for v in first]
    width = len(header)
    typer = ColumnTyper(width)
    sample: list[list[str]] = []
    rows = 0
    while chunk := list(islice(rows_iter, _CHUNK_ROWS)):
        rows += len(chunk)
        if len(sample) < SAMPLE_ROWS:
            for row in chunk[: SAMPLE_ROWS - len(sample)]:
                cells = [clip_cell(cell_text(v)) for v in row[:width]]
                sample.append(cells + [""] * (width - len(cells)))
        if not typer.settled:
            _feed_typed(typer, list(zip_longest(*chunk, fillvalue="")))
    if rows == 0:
        raise TableError(TableErrorCode.NO_ROWS, f"sheet {name!r} has a header only")
    names = unique_names([cell.strip() for cell in header])
    columns = tuple(Column(n, t) for n, t in zip(names, typer.dtypes(), strict=True))
    return TableInfo(
        kind="xlsx", rows=rows, columns=columns, sample=sample, sheet=name, extra_sheets=extra
    )
