"""Real files in the formats the bot takes, written by the libraries that make them (xlwt for
XLS, odfpy for ODS, pyarrow for Parquet, openpyxl for XLSX), shared by the tabular and bot
tests. Each returns bytes."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from collections.abc import Sequence
from typing import Any

Rows = Sequence[Sequence[Any]]


def xls(sheets: dict[str, Rows]) -> bytes:
    import xlwt

    book = xlwt.Workbook()
    date_style = xlwt.easyxf(num_format_str="DD.MM.YYYY")
    for name, rows in sheets.items():
        sheet = book.add_sheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, dt.date):
                    sheet.write(r, c, value, date_style)
                else:
                    sheet.write(r, c, value)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def ods(sheets: dict[str, Rows]) -> bytes:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    document = OpenDocumentSpreadsheet()
    for name, rows in sheets.items():
        table = Table(name=name)
        for row in rows:
            table_row = TableRow()
            for value in row:
                if value is None:
                    cell = TableCell()
                elif isinstance(value, bool):
                    cell = TableCell(valuetype="boolean", booleanvalue=str(value).lower())
                    cell.addElement(P(text=str(value).upper()))
                elif isinstance(value, int | float):
                    cell = TableCell(valuetype="float", value=value)
                    cell.addElement(P(text=str(value)))
                else:
                    cell = TableCell(valuetype="string")
                    cell.addElement(P(text=str(value)))
                table_row.addElement(cell)
            table.addElement(table_row)
        document.spreadsheet.addElement(table)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def xlsx(sheets: dict[str, Rows]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def parquet(columns: dict[str, list[Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def ndjson(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def far_cell_xlsx() -> bytes:
    """A valid workbook with one more cell at XFD1048576: loading it densely would take
    17 billion cells."""
    source = zipfile.ZipFile(io.BytesIO(xlsx({"S": [["a", "b"], [1, 2]]})))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.startswith("xl/worksheets/"):
                data = data.replace(
                    b"</sheetData>",
                    b'<row r="1048576"><c r="XFD1048576" t="n"><v>1</v></c></row></sheetData>',
                )
            target.writestr(info, data)
    return out.getvalue()


def declared_huge_xlsx() -> bytes:
    """A workbook whose sheet declares the whole 1048576 × 16384 grid as its size."""
    source = zipfile.ZipFile(io.BytesIO(xlsx({"S": [["a", "b"], [1, 2]]})))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.startswith("xl/worksheets/"):
                start = data.index(b"<dimension")
                end = data.index(b">", start) + 1
                data = data[:start] + b'<dimension ref="A1:XFD1048576"/>' + data[end:]
            target.writestr(info, data)
    return out.getvalue()


def zip_bomb_xlsx() -> bytes:
    """A workbook with a 200 MB sheet of blanks that packs into a few hundred kilobytes."""
    source = zipfile.ZipFile(io.BytesIO(xlsx({"S": [["a", "b"], [1, 2]]})))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.startswith("xl/worksheets/"):
                data = data.replace(b"</sheetData>", b"</sheetData>" + b" " * (200 << 20))
            target.writestr(info, data)
    return out.getvalue()


def deep_xml_xlsx(depth: int = 100_000) -> bytes:
    """A workbook whose sheet holds elements nested `depth` levels deep."""
    source = zipfile.ZipFile(io.BytesIO(xlsx({"S": [["a", "b"], [1, 2]]})))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.startswith("xl/worksheets/"):
                nest = b"<x>" * depth + b"</x>" * depth
                data = data.replace(b"</sheetData>", b"</sheetData>" + nest)
            target.writestr(info, data)
    return out.getvalue()


def deep_json(depth: int = 10_000) -> bytes:
    return b'[{"a": ' + b"[" * depth + b"1" + b"]" * depth + b"}]"
