"""The monospaced preview block: readable, aligned, bounded whatever the file."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from pathlib import Path

import pytest
from openpyxl import Workbook

from bot.tabular import MAX_PREVIEW_CHARS, Column, TableInfo, format_preview
from tests.tabular.helpers import WriteFile, inspect


def _display_width(line: str) -> int:
    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        for ch in line
    )


def _bar_positions(line: str) -> list[int]:
    return [i for i, ch in enumerate(line) if ch in "│┼"]


def test_small_table_shows_names_types_and_rows_aligned(write_file: WriteFile) -> None:
    text = "region;revenue;day\nMoscow;1234,5;2024-01-31\nKazan;99;2024-02-01\n"
    preview = format_preview(inspect(write_file("s.csv", text)))
    lines = preview.splitlines()

    assert lines[0].split(" │ ") == ["region", "revenue", "day"]
    assert [cell.strip() for cell in lines[1].split(" │ ")] == ["text", "float", "date"]
    assert set(lines[2]) <= {"─", "┼"}
    assert [cell.strip() for cell in lines[3].split(" │ ")] == ["Moscow", "1234,5", "2024-01-31"]
    assert len(lines) == 5
    # every separator sits in the same column on every line
    assert len({tuple(_bar_positions(line)) for line in lines}) == 1


def test_numbers_are_right_aligned(write_file: WriteFile) -> None:
    preview = format_preview(inspect(write_file("n.csv", "label,amount\na,5\nb,12345\n")))
    amounts = [line.split(" │ ")[1] for line in preview.splitlines()[3:]]

    assert amounts == ["5".rjust(len("amount")), "12345".rjust(len("amount"))]


def test_three_hundred_columns_stay_within_the_cap(write_file: WriteFile) -> None:
    header = ",".join(f"column_name_{i}" for i in range(300))
    rows = "\n".join(",".join(str(i * j) for i in range(300)) for j in range(10))
    info = inspect(write_file("wide.csv", f"{header}\n{rows}\n"))

    preview = format_preview(info)
    lines = preview.splitlines()

    assert len(preview) <= MAX_PREVIEW_CHARS
    assert all(len(line) <= 60 for line in lines)
    assert lines[0].startswith("column_name_0")
    shown = lines[0].count("│")  # columns shown = bars before the "+K" cell
    assert lines[0].endswith(f"+{300 - shown}")
    assert all(line.endswith("…") for line in lines[3:])
    assert len(lines) == 8  # names, types, rule, five rows


@pytest.mark.parametrize("max_width", [10, 40, 60, 100, 10_000])
def test_every_width_request_is_honoured_or_clamped(write_file: WriteFile, max_width: int) -> None:
    header = ",".join(f"c{i}" for i in range(300))
    row = ",".join("x" * 50 for _ in range(300))
    info = inspect(write_file("w.csv", f"{header}\n" + f"{row}\n" * 6))

    preview = format_preview(info, max_width=max_width)

    assert len(preview) <= MAX_PREVIEW_CHARS
    limit = min(max(max_width, 24), 160)
    assert all(len(line) <= limit for line in preview.splitlines())


def test_very_long_cells_and_names_are_cut_with_an_ellipsis(write_file: WriteFile) -> None:
    name = "a_really_long_column_name_" * 20
    cell = "lorem ipsum dolor sit amet " * 500
    info = inspect(write_file("long.csv", f'{name},id\n"{cell}",1\n"{cell}",2\n'))

    preview = format_preview(info)

    assert len(preview) <= MAX_PREVIEW_CHARS
    assert all(len(line) <= 60 for line in preview.splitlines())
    assert "…" in preview.splitlines()[0]
    assert "lorem ipsum" in preview


def test_multiline_cells_stay_on_one_line(write_file: WriteFile) -> None:
    info = inspect(write_file("m.csv", 'id,text\n1,"one\ntwo\tthree"\n'))
    lines = format_preview(info).splitlines()

    assert len(lines) == 4
    assert "one↵two three" in lines[3]


def test_wide_characters_keep_the_width_budget() -> None:
    info = TableInfo(
        kind="csv",
        rows=2,
        columns=(Column("名前", "text"), Column("都市", "text"), Column("金額", "int")),
        sample=[["田中太郎" * 10, "東京" * 20, "100"], ["鈴木", "大阪", "2000"]],
    )
    preview = format_preview(info)

    assert all(_display_width(line) <= 60 for line in preview.splitlines())
    assert "鈴木" in preview


def test_no_words_of_its_own(write_file: WriteFile) -> None:
    """Language-neutral: the only words are column names, type tags and cell values."""
    info = inspect(write_file("d.csv", "a,b,c,d\n1,2.5,,2024-01-01\n"))
    words = set(re.findall(r"[^\W\d_]+", format_preview(info)))

    assert words <= {"a", "b", "c", "d", "int", "float", "date"}


def test_empty_column_gets_a_symbol_not_a_word(write_file: WriteFile) -> None:
    info = inspect(write_file("e.csv", "a,b\n1,\n2,\n"))
    assert format_preview(info).splitlines()[1].split(" │ ")[1].strip() == "∅"


def test_xlsx_preview(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["when", "value"])
    sheet.append([dt.date(2024, 5, 1), 3.25])
    path = tmp_path / "p.xlsx"
    workbook.save(path)

    lines = format_preview(inspect(path)).splitlines()

    assert [c.strip() for c in lines[3].split(" │ ")] == ["2024-05-01", "3.25"]
