"""Messy real-world exports: the table is found inside the file, numbers and dates are read as
people write them, and the pandas reading parameters the bot detects read the file right.

Every reading check runs pandas itself on the file the model would get (UTF-8) with the
detected parameters, and compares what comes out with what the bot describes.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from bot.tabular import TableInfo
from bot.tabular.infer import NumberStyle
from bot.tabular.profile import detect_style, pandas_names
from bot.tabular.reading import column_notes, pandas_reading
from tests.tabular.helpers import WriteFile, dtypes, inspect

RU_EXPORT = (
    "Отчёт о продажах за 2024 год;;;\n"
    ";;;\n"
    "Регион;Дата;Сумма;Количество\n"
    "Москва;01.03.2024;1 234 567,89;12\n"
    "Казань;02.03.2024;18611,82;3\n"
    "Тверь;15.03.2024;999,5;\n"
    "Пермь;31.03.2024;2 000,00;7\n"
    ";;;\n"
    "Итого;;1 255 179,21;22\n"
)


def read_like_the_model(path: Path, info: TableInfo) -> pd.DataFrame:
    """pandas on the UTF-8 bytes the model gets, with the parameters the bot detected."""
    reader, options = pandas_reading(info)
    kwargs = {key: eval(value) for key, value in options}  # noqa: S307 - our own literals
    text = path.read_bytes().decode(info.encoding or "utf-8")
    if reader == "read_csv":
        return pd.read_csv(io.StringIO(text), **kwargs)
    return getattr(pd, reader)(path, **kwargs)


def test_russian_accounting_export_in_cp1251(write_file: WriteFile) -> None:
    path = write_file("sales.csv", RU_EXPORT, encoding="cp1251")
    info = inspect(path)

    assert info.encoding == "cp1251"
    assert [c.name for c in info.columns] == ["Регион", "Дата", "Сумма", "Количество"]
    assert dtypes(info) == {"Регион": "text", "Дата": "date", "Сумма": "float", "Количество": "int"}
    assert info.rows == 4  # the total row is not data
    assert info.skipped == ("Отчёт о продажах за 2024 год",)
    assert info.footer
    assert info.footer[0].startswith("Итого")
    assert (info.decimal, info.thousands) == (",", " ")
    assert "format='%d.%m.%Y'" in " ".join(info.columns[1].notes)
    assert column_notes(info.columns[3]) == ("25% missing",)

    frame = read_like_the_model(path, info)
    assert list(frame.columns) == [c.name for c in info.columns]
    assert len(frame) == info.rows
    assert frame["Сумма"].tolist() == [1234567.89, 18611.82, 999.5, 2000.0]
    assert frame["Регион"].tolist()[-1] == "Пермь"


def test_comment_lines_before_the_header(write_file: WriteFile) -> None:
    text = (
        "# Data source: Met Office, station records, 1853-2024\n"
        "# Units: degrees C, mm\n"
        "year,month,tmax,rain\n"
        "1853,1,8.4,57.3\n"
        "1853,2,3.2,32.3\n"
        "1853,3,7.7,65.5\n"
    )
    path = write_file("station.csv", text)
    info = inspect(path)

    assert [c.name for c in info.columns] == ["year", "month", "tmax", "rain"]
    assert dtypes(info)["tmax"] == "float"
    assert info.skip_rows == 2
    frame = read_like_the_model(path, info)
    assert frame.shape == (3, 4)
    assert frame["rain"].sum() == pytest.approx(155.1)


def test_title_with_commas_over_a_semicolon_table(write_file: WriteFile) -> None:
    """The first line's delimiter is not the table's."""
    text = "Sales, all regions, 2024\n\nregion;revenue;units\nNorth;1,5;3\nSouth;2,25;4\n"
    path = write_file("t.csv", text)
    info = inspect(path)

    assert info.delimiter == ";"
    assert dtypes(info) == {"region": "text", "revenue": "float", "units": "int"}
    assert read_like_the_model(path, info)["revenue"].tolist() == [1.5, 2.25]


@pytest.mark.parametrize(
    ("cells", "style"),
    [
        (["1.234.567,89", "12,5", "3"], NumberStyle(",", ".")),
        (["1,234,567.89", "12.5"], NumberStyle(".", ",")),
        (["1'234'567.89", "12.5"], NumberStyle(".", "'")),
        (["1\u00a0234\u00a0567,89", "12,5"], NumberStyle(",", "\u00a0")),
        (["1 234 567,89"], NumberStyle(",", " ")),
        (["12.5", "3.25"], NumberStyle(".", "")),
        (["12,5 %", "(1 000,00)", "₽ 5,5"], NumberStyle(",", " ")),
    ],
)
def test_number_style_is_voted(cells: list[str], style: NumberStyle) -> None:
    assert detect_style(cells, ";") == style


@pytest.mark.parametrize(
    ("name", "values", "thousands", "decimal", "expected"),
    [
        ("dots.csv", ["1.234.567,89", "2.000,5", "17,25"], ".", ",", [1234567.89, 2000.5, 17.25]),
        (
            "nbsp.csv",
            ["1\u00a0234,5", "12\u00a0000,25", "3,5"],
            "\u00a0",
            ",",
            [1234.5, 12000.25, 3.5],
        ),
        ("swiss.csv", ["1'234.5", "12'000.25", "3.5"], "'", ".", [1234.5, 12000.25, 3.5]),
    ],
)
def test_thousands_separators_read_by_pandas(
    write_file: WriteFile,
    name: str,
    values: list[str],
    thousands: str,
    decimal: str,
    expected: list[float],
) -> None:
    text = "item;amount\n" + "".join(f"x{i};{v}\n" for i, v in enumerate(values))
    path = write_file(name, text)
    info = inspect(path)

    assert (info.decimal, info.thousands) == (decimal, thousands)
    assert dtypes(info)["amount"] == "float"
    assert read_like_the_model(path, info)["amount"].tolist() == expected


def test_currency_percent_and_parentheses_are_numbers_with_notes(write_file: WriteFile) -> None:
    text = "item,price,share,balance\na,$1200,12%,(300)\nb,$15.50,7.5%,400\nc,$3,80%,(12.5)\n"
    info = inspect(write_file("money.csv", text))

    assert dtypes(info) == {"item": "text", "price": "float", "share": "float", "balance": "float"}
    by_name = {c.name: " ".join(c.notes) for c in info.columns}
    assert "currency $" in by_name["price"]
    assert "percent" in by_name["share"]
    assert "parentheses" in by_name["balance"]


def test_mixed_column_stays_text_and_says_so(write_file: WriteFile) -> None:
    rows = [f"{i},{i * 10}" for i in range(40)] + ["40,see note", "41,50"]
    info = inspect(write_file("mixed.csv", "id,amount\n" + "\n".join(rows) + "\n"))

    amount = info.columns[1]
    assert amount.dtype == "text"
    assert amount.mixed == "int"
    assert "see note" in " ".join(amount.notes)


@pytest.mark.parametrize(
    ("values", "fmt"),
    [
        (["31/01/2024", "01/02/2024"], "%d/%m/%Y"),
        (["01/31/2024", "02/01/2024"], "%m/%d/%Y"),
        (["31-01-2024", "01-02-2024"], "%d-%m-%Y"),
        (["31.01.24", "01.02.24"], "%d.%m.%y"),
    ],
)
def test_unambiguous_dates_get_their_format(
    write_file: WriteFile, values: list[str], fmt: str
) -> None:
    text = "when,n\n" + "".join(f"{v},{i}\n" for i, v in enumerate(values))
    info = inspect(write_file("d.csv", text))

    assert info.columns[0].dtype == "date"
    assert f"format='{fmt}'" in " ".join(info.columns[0].notes)
    parsed = pd.to_datetime(pd.Series(values), format=fmt)
    assert parsed.dt.month.tolist()[0] == 1


def test_missing_share_and_constant_columns(write_file: WriteFile) -> None:
    rows = [f"{i},RU,{'' if i % 4 == 0 else i}" for i in range(100)]
    info = inspect(write_file("m.csv", "id,country,value\n" + "\n".join(rows) + "\n"))

    country, value = info.columns[1], info.columns[2]
    assert country.constant
    assert not value.constant
    assert value.missing == pytest.approx(0.25)
    assert column_notes(value) == ("25% missing",)


def test_footer_of_a_big_file_is_found_from_its_tail(write_file: WriteFile) -> None:
    rows = "".join(f"r{i};{i},5\n" for i in range(60_000))
    text = "name;value\n" + rows + "Всего;1 234,5\nИсточник: отдел продаж, выгрузка из 1С\n"
    path = write_file("big.csv", text)
    info = inspect(path)

    assert info.rows == 60_000
    assert dtypes(info) == {"name": "text", "value": "float"}
    assert info.footer_rows == 2
    frame = read_like_the_model(path, info)
    assert len(frame) == 60_000
    assert frame["value"].iloc[-1] == 59_999.5


def test_names_as_pandas_gives_them() -> None:
    assert pandas_names(["", "a", "a", "a.1", "b", ""]) == list(
        pd.read_csv(io.StringIO(",a,a,a.1,b,\n1,2,3,4,5,6\n"), engine="python").columns
    )


def test_a_plain_file_keeps_plain_parameters(write_file: WriteFile) -> None:
    info = inspect(Path("datasets/superstore_sales.csv"))

    reader, options = pandas_reading(info)
    assert reader == "read_csv"
    assert dict(options) == {"header": "0", "encoding": "'utf-8'"}


def test_sparse_header_is_not_taken_for_a_title(write_file: WriteFile) -> None:
    text = "id,,,,value\n1,a,b,c,10\n2,d,e,f,20\n"
    info = inspect(write_file("sparse.csv", text))

    assert info.skip_rows == 0
    assert [c.name for c in info.columns] == [
        "id",
        "Unnamed: 1",
        "Unnamed: 2",
        "Unnamed: 3",
        "value",
    ]


def test_organisation_and_period_lines_are_skipped(write_file: WriteFile) -> None:
    text = (
        "Организация:;ООО Ромашка;;\n"
        "Период:;01.01.2024 - 31.03.2024;;\n"
        "Товар;Цена;Кол-во;Сумма\n"
        "Чай;100,50;2;201,00\n"
        "Кофе;250,00;1;250,00\n"
    )
    info = inspect(write_file("org.csv", text))

    assert info.skip_rows == 2
    assert [c.name for c in info.columns] == ["Товар", "Цена", "Кол-во", "Сумма"]


def test_a_last_row_that_only_looks_like_a_note_is_data(write_file: WriteFile) -> None:
    text = "item,price,qty\nPhone,300,2\nNotebook,900,1\n"
    info = inspect(write_file("items.csv", text))

    assert info.rows == 2
    assert info.footer == ()
