"""XLS, ODS, XLSX sheets, JSON, NDJSON and Parquet: described, and converted to a CSV that
pandas reads back as the description says (pandas runs on the converted file)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from bot.tabular import TableErrorCode, inspect_table, inspect_table_async
from bot.tabular.reading import file_notes, pandas_reading
from tests.tabular import builders
from tests.tabular.helpers import WriteFile, dtypes, refused

RU_SHEET = [
    ["Отчёт о продажах за 2024 год", None, None],
    [None, None, None],
    ["Регион", "Дата", "Сумма"],
    ["Москва", dt.date(2024, 3, 1), 1234567.89],
    ["Казань", dt.date(2024, 3, 2), 18611.82],
    ["Итого", None, 1253179.71],
]
STOCK = [["sku", "qty"], ["A-1", 3], ["B-2", 5]]


def converted(tmp_path: Path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return inspect_table(path, name, tmp_path / "out.csv")


@pytest.mark.parametrize(("name", "build"), [("r.xls", builders.xls), ("r.ods", builders.ods)])
def test_workbooks_are_converted_per_sheet(tmp_path: Path, name: str, build) -> None:
    info = converted(tmp_path, name, build({"Продажи": RU_SHEET, "Склад": STOCK, "Пусто": []}))

    assert info.kind == name.rsplit(".", 1)[1]
    assert info.sheet == "Продажи"
    assert info.rows == 2  # the title above and the "Итого" row below are not data
    assert dtypes(info)["Регион"] == "text"
    assert dtypes(info)["Сумма"] == "float"
    assert info.footer[0].startswith("Итого")
    frame = pd.read_csv(info.converted)
    assert list(frame.columns) == ["Регион", "Дата", "Сумма"]
    assert frame["Сумма"].tolist() == [1234567.89, 18611.82]
    assert pandas_reading(info) == ("read_csv", (("encoding", "'utf-8'"),))
    (stock,) = info.others  # the empty sheet is not described
    assert (stock.sheet, stock.rows, len(stock.columns)) == ("Склад", 2, 2)
    assert pd.read_csv(stock.converted)["qty"].sum() == 8
    notes = " ".join(file_notes(info, name, {"Склад": "r_Склад.csv"}))
    assert f"converted by the bot from `{name}`" in notes
    assert "r_Склад.csv" in notes


def test_xls_dates_are_dates_in_the_csv(tmp_path: Path) -> None:
    info = converted(tmp_path, "d.xls", builders.xls({"S": RU_SHEET}))

    assert dtypes(info)["Дата"] == "date"
    assert pd.read_csv(info.converted)["Дата"].tolist() == ["2024-03-01", "2024-03-02"]


def test_xlsx_stays_a_workbook_with_every_sheet_described(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    path.write_bytes(builders.xlsx({"Продажи": RU_SHEET, "Склад": STOCK}))
    info = inspect_table(path, path.name, tmp_path / "out.csv")

    assert info.converted is None
    reader, options = pandas_reading(info)
    kwargs = {key: eval(value) for key, value in options}  # noqa: S307 - our own literals
    frame = getattr(pd, reader)(path, engine="calamine", **kwargs)
    assert list(frame.columns) == [c.name for c in info.columns]
    assert len(frame) == info.rows == 2
    (stock,) = info.others
    reader, options = pandas_reading(stock)
    assert dict(options)["sheet_name"] == "'Склад'"
    assert "sheet 'Склад': 2 rows × 2 columns" in " ".join(file_notes(info, "book.xlsx"))


def test_excel_serial_dates_are_noted(tmp_path: Path) -> None:
    rows = [["Дата", "amount"], [45352, 10], [45353, 12], [45354, 7]]
    path = tmp_path / "serial.xlsx"
    path.write_bytes(builders.xlsx({"S": rows}))
    info = inspect_table(path, path.name)

    assert "Excel serial dates" in " ".join(info.columns[0].notes)


def test_number_header_in_a_workbook_is_flagged(tmp_path: Path) -> None:
    path = tmp_path / "years.xlsx"
    path.write_bytes(builders.xlsx({"S": [["region", 2023, 2024], ["N", 1, 2], ["S", 3, 4]]}))
    info = inspect_table(path, path.name)

    assert [c.number_name for c in info.columns] == [False, True, True]
    assert list(pd.read_excel(path, engine="calamine").columns) == ["region", 2023, 2024]


@pytest.mark.parametrize(
    ("content", "rows"),
    [
        ([{"city": "Oslo", "pop": 700}, {"city": "Rome", "pop": 2800}], 2),
        ({"city": ["Oslo", "Rome", "Kyiv"], "pop": [700, 2800, 2900]}, 3),
    ],
)
def test_plain_json_is_kept_and_read_by_pandas(
    write_file: WriteFile, content: object, rows: int
) -> None:
    path = write_file("cities.json", json.dumps(content))
    info = inspect_table(path, path.name, path.with_name("out.csv"))

    assert info.converted is None
    assert info.rows == rows
    assert dtypes(info) == {"city": "text", "pop": "int"}
    assert pandas_reading(info) == ("read_json", ())
    assert pd.read_json(path).shape == (rows, 2)


def test_json_under_a_key_with_nesting_is_flattened_to_csv(write_file: WriteFile) -> None:
    content = {
        "meta": {"source": "api"},
        "data": [
            {"id": 1, "user": {"name": "Ann", "age": 31}, "tags": ["a", "b"]},
            {"id": 2, "user": {"name": "Bob", "age": None}, "tags": []},
        ],
    }
    path = write_file("users.json", json.dumps(content))
    info = inspect_table(path, path.name, path.with_name("out.csv"))

    assert info.json_key == "data"
    assert info.flattened
    assert [c.name for c in info.columns] == ["id", "user.name", "user.age", "tags"]
    frame = pd.read_csv(info.converted)
    assert frame["user.name"].tolist() == ["Ann", "Bob"]
    assert json.loads(frame["tags"][0]) == ["a", "b"]


def test_ndjson_is_described_and_converted(write_file: WriteFile) -> None:
    data = builders.ndjson([{"a": i, "b": f"x{i}"} for i in range(50)])
    path = write_file("events.jsonl", data)
    assert pandas_reading(inspect_table(path, path.name)) == ("read_json", (("lines", "True"),))

    info = inspect_table(path, path.name, path.with_name("out.csv"))
    assert (info.kind, info.rows) == ("ndjson", 50)
    assert pandas_reading(info) == ("read_csv", (("encoding", "'utf-8'"),))
    frame = pd.read_csv(info.converted)
    assert frame.equals(pd.read_json(path, lines=True))


def test_parquet_is_converted(write_file: WriteFile) -> None:
    data = builders.parquet(
        {
            "id": [1, 2, 3],
            "name": ["a", None, "c"],
            "when": [dt.datetime(2024, 1, i) for i in (1, 2, 3)],
            "flag": [True, True, True],
        }
    )
    path = write_file("t.parquet", data)
    info = inspect_table(path, path.name, path.with_name("out.csv"))

    assert dtypes(info) == {"id": "int", "name": "text", "when": "datetime", "flag": "bool"}
    assert info.columns[1].missing == pytest.approx(1 / 3)
    assert info.columns[3].constant
    frame = pd.read_csv(info.converted)
    assert frame["id"].sum() == 6
    assert frame["when"].tolist()[0].startswith("2024-01-01")


def test_parquet_does_not_load_pyarrow_for_other_files(tmp_path: Path) -> None:
    """The parsing worker must not import heavy things it does not need."""
    import subprocess
    import sys

    script = (
        "import sys; from pathlib import Path; from bot.tabular import inspect_table;"
        f"inspect_table(Path({str(Path('datasets/gapminder.csv').resolve())!r}), 'g.csv');"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pyarrow', 'pandas', 'numpy'}))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", TableErrorCode.CORRUPT_JSON),
        (b'{"a": 1, "b": "x"}', TableErrorCode.CORRUPT_JSON),
        (builders.deep_json(10_000), TableErrorCode.TOO_DEEP),
    ],
)
def test_json_without_a_table(write_file: WriteFile, content: bytes, code: TableErrorCode) -> None:
    assert refused(write_file("x.json", content)) is code


async def test_async_inspection_converts_in_the_worker(tmp_path: Path) -> None:
    path = tmp_path / "r.ods"
    path.write_bytes(builders.ods({"S": STOCK}))
    info = await inspect_table_async(path, path.name, tmp_path / "out.csv")

    assert await asyncio.to_thread(Path(info.converted or "").read_text) == (
        "sku,qty\nA-1,3\nB-2,5\n"
    )
