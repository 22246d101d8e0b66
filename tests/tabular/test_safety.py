"""Files built to hurt: each gets a specific refusal, the parsing worker survives or is
replaced, and the next file is read as usual."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.tabular import TableError, TableErrorCode, inspect_table, inspect_table_async
from tests.tabular import builders
from tests.tabular.helpers import WriteFile, refused


async def refused_async(path: Path) -> TableErrorCode:
    with pytest.raises(TableError) as caught:
        await inspect_table_async(path, path.name)
    return caught.value.code


async def test_a_cell_at_the_end_of_the_grid_ends_the_worker_not_the_bot(
    tmp_path: Path,
) -> None:
    bomb = tmp_path / "far.xlsx"
    bomb.write_bytes(builders.far_cell_xlsx())
    fine = tmp_path / "fine.xlsx"
    fine.write_bytes(builders.xlsx({"S": [["a", "b"], [1, 2]]}))

    assert await refused_async(bomb) is TableErrorCode.TOO_LARGE
    info = await inspect_table_async(fine, fine.name)  # a fresh worker reads the next one
    assert info.rows == 1


def test_huge_declared_dimensions_are_refused_before_loading(tmp_path: Path) -> None:
    path = tmp_path / "dim.xlsx"
    path.write_bytes(builders.declared_huge_xlsx())
    assert refused(path) is TableErrorCode.TOO_LARGE


def test_zip_bomb_workbook_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xlsx"
    path.write_bytes(builders.zip_bomb_xlsx())
    assert path.stat().st_size < 2 << 20
    assert refused(path) is TableErrorCode.TOO_LARGE


async def test_deeply_nested_xml_does_not_hurt(tmp_path: Path) -> None:
    """100,000 nested elements after the sheet's data: read without recursion, no crash."""
    path = tmp_path / "deep.xlsx"
    path.write_bytes(builders.deep_xml_xlsx())
    info = await inspect_table_async(path, path.name)
    assert info.rows == 1


def test_json_nested_ten_thousand_levels(write_file: WriteFile) -> None:
    assert refused(write_file("deep.json", builders.deep_json(10_000))) is TableErrorCode.TOO_DEEP
    ndjson = b'{"a": 1}\n' + builders.deep_json(10_000)[1:-1] + b"\n"
    assert refused(write_file("deep.jsonl", ndjson)) is TableErrorCode.TOO_DEEP


def test_a_hundred_megabyte_single_line(tmp_path: Path) -> None:
    path = tmp_path / "line.csv"
    with path.open("wb") as file:
        chunk = b"1234567,abcdef," * 65536
        for _ in range(100 * (1 << 20) // len(chunk)):
            file.write(chunk)
    assert refused(path) is TableErrorCode.LINE_TOO_LONG


def test_json_over_the_size_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.tabular import json_table

    monkeypatch.setattr(json_table, "MAX_JSON_BYTES", 1000)
    path = tmp_path / "big.json"
    path.write_text("[" + ",".join('{"a": 1}' for _ in range(500)) + "]")
    assert refused(path) is TableErrorCode.TOO_LARGE
    assert inspect_table(Path("datasets/gapminder.csv"), "g.csv").rows == 12200
