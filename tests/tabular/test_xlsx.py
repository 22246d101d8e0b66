"""XLSX workbooks written with openpyxl, read back through python-calamine."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook
from openpyxl.styles import Font

from bot.tabular import MAX_COLUMNS, TableErrorCode
from tests.tabular.helpers import WriteFile, dtypes, inspect, refused


def _sales_workbook(path: Path) -> Path:
    """First sheet empty, data on the second (starting at C3), a third sheet with data."""
    workbook = Workbook()
    workbook.active.title = "Cover"
    data = workbook.create_sheet("Sales")
    header = ["id", "price", "when", "day", "paid", "city", "comment", "", "id"]
    for column, name in enumerate(header, start=3):
        data.cell(row=3, column=column, value=name or None)
    for i in range(1, 8):
        values = [
            i,
            1.5 * i,
            dt.datetime(2024, 1, i, 9, 30),
            dt.date(2024, 2, i),
            i % 2 == 0,
            ["Москва", "Paris"][i % 2],
            None,
            None,
            10 * i,
        ]
        for column, value in enumerate(values, start=3):
            data.cell(row=3 + i, column=column, value=value)
    data.cell(row=12, column=9, value="late note")  # after an empty row 11
    extra = workbook.create_sheet("Notes")
    extra["A1"] = "anything"
    workbook.create_sheet("Blank")
    workbook.save(path)
    return path


def test_first_non_empty_sheet_with_types(tmp_path: Path) -> None:
    info = inspect(_sales_workbook(tmp_path / "sales.xlsx"))

    assert info.kind == "xlsx"
    assert info.sheet == "Sales"
    assert info.extra_sheets == 0  # "Notes" holds one value, no table; "Cover", "Blank" none
    assert info.encoding is None
    assert info.delimiter is None
    assert info.rows == 8  # 7 data rows + the "late note" row; the empty row 11 is skipped
    assert dtypes(info) == {
        "id": "int",
        "price": "float",
        "when": "datetime",
        "day": "date",
        "paid": "bool",
        "city": "text",
        "comment": "text",
        "Unnamed: 9": "empty",  # as pandas names it: column J of the sheet
        "id.1": "int",
    }
    assert info.sample[0] == [
        "1",
        "1.5",
        "2024-01-01 09:30:00",
        "2024-02-01",
        "false",
        "Paris",
        "",
        "",
        "10",
    ]
    assert len(info.sample) == 5


def test_workbook_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    path = _sales_workbook(tmp_path / "upload.bin")
    info = inspect(path, "upload")

    assert info.kind == "xlsx"
    assert info.sheet == "Sales"


def test_xlsm_extension(tmp_path: Path) -> None:
    path = _sales_workbook(tmp_path / "macro.xlsm")
    assert inspect(path).kind == "xlsx"


def test_hidden_sheet_is_skipped_for_a_visible_one(tmp_path: Path) -> None:
    workbook = Workbook()
    lookup = workbook.active
    lookup.title = "lookup"
    lookup.append(["code", "label"])
    lookup.append([1, "x"])
    lookup.sheet_state = "hidden"
    visible = workbook.create_sheet("Report")
    visible.append(["region", "total"])
    visible.append(["North", 12.5])
    path = tmp_path / "h.xlsx"
    workbook.save(path)

    info = inspect(path)

    assert info.sheet == "Report"
    assert dtypes(info) == {"region": "text", "total": "float"}


def test_mixed_number_and_text_column(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["n", "code", "maybe"])
    sheet.append([1, "A1", "12"])
    sheet.append([2.0, "B2", 13])
    sheet.append([3, "C3", "n/a"])
    path = tmp_path / "m.xlsx"
    workbook.save(path)

    assert dtypes(inspect(path)) == {"n": "int", "code": "text", "maybe": "int"}


def test_header_only_sheet_has_no_rows(tmp_path: Path) -> None:
    workbook = Workbook()
    workbook.active.append(["a", "b", "c"])
    path = tmp_path / "h.xlsx"
    workbook.save(path)

    assert refused(path) is TableErrorCode.NO_ROWS


def test_workbook_without_cells_is_empty(tmp_path: Path) -> None:
    workbook = Workbook()
    workbook.create_sheet("Second")
    path = tmp_path / "e.xlsx"
    workbook.save(path)

    assert refused(path) is TableErrorCode.EMPTY


def test_too_wide_sheet(tmp_path: Path) -> None:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Wide")
    sheet.append([f"c{i}" for i in range(MAX_COLUMNS + 5)])
    sheet.append(list(range(MAX_COLUMNS + 5)))
    path = tmp_path / "w.xlsx"
    workbook.save(path)

    assert refused(path) is TableErrorCode.TOO_WIDE


def test_zip_with_garbage_workbook_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "bad.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "garbage <<<")
        archive.writestr("xl/workbook.xml", "\x01\x02 not xml at all")
        archive.writestr("xl/worksheets/sheet1.xml", "nope")

    assert refused(path) is TableErrorCode.CORRUPT_XLSX


def test_truncated_workbook_is_corrupt(tmp_path: Path) -> None:
    good = _sales_workbook(tmp_path / "good.xlsx").read_bytes()
    path = tmp_path / "cut.xlsx"
    path.write_bytes(good[: len(good) // 2])

    assert refused(path) is TableErrorCode.CORRUPT_XLSX


def test_zip_without_workbook_named_xlsx_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "fake.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")

    assert refused(path) is TableErrorCode.CORRUPT_XLSX


@pytest.mark.parametrize("content", [b"\x00\x01\x02garbage" * 50, b"\xff" * 300])
def test_binary_junk_named_xlsx_is_corrupt(write_file: WriteFile, content: bytes) -> None:
    assert refused(write_file("junk.xlsx", content)) is TableErrorCode.CORRUPT_XLSX


def test_broken_xlsb_is_a_damaged_workbook(tmp_path: Path) -> None:
    path = tmp_path / "b.xlsb"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("xl/workbook.bin", b"\x00\x01")

    assert refused(path) is TableErrorCode.CORRUPT_XLSX


def test_extra_sheets_count_only_sheets_with_values(tmp_path: Path) -> None:
    workbook = Workbook()
    data = workbook.active
    data.title = "Data"
    data.append(["a", "b"])
    data.append([1, 2])
    styled = workbook.create_sheet("R&D")
    styled["B2"].font = Font(bold=True)  # a formatted cell without a value
    numbers = workbook.create_sheet("Numbers")
    numbers["C5"] = "x"
    numbers["D5"] = "y"
    numbers["C6"] = 3.5
    numbers["D6"] = 4
    texts = workbook.create_sheet("Texts & notes")
    texts["A1"] = "hello"  # a lone value: no table
    path = tmp_path / "many.xlsx"
    workbook.save(path)

    info = inspect(path)

    assert info.sheet == "Data"
    assert info.extra_sheets == 1
    (numbers_info,) = info.others
    assert numbers_info.sheet == "Numbers"
    assert [(c.name, c.dtype) for c in numbers_info.columns] == [("x", "float"), ("y", "int")]
    assert numbers_info.skip_rows == 4


def test_only_a_hidden_sheet_holds_data(tmp_path: Path) -> None:
    workbook = Workbook()
    workbook.active.title = "Visible but empty"
    hidden = workbook.create_sheet("Hidden data")
    hidden.append(["k", "v"])
    hidden.append(["x", 1])
    hidden.sheet_state = "hidden"
    path = tmp_path / "hidden.xlsx"
    workbook.save(path)

    info = inspect(path)

    assert info.sheet == "Hidden data"
    assert info.rows == 1
