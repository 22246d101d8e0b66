"""Delimited text files: dialects, encodings, row counting, types, names, samples."""

from __future__ import annotations

import pandas as pd
import pytest

from bot.tabular import inspect_table_async
from tests.tabular.helpers import WriteFile, dtypes, inspect


@pytest.mark.parametrize(
    ("delimiter", "name"),
    [(",", "data.csv"), (";", "data.csv"), ("\t", "data.tsv"), ("\t", "data.csv"), ("|", "x.csv")],
)
def test_delimiter_is_found(write_file: WriteFile, delimiter: str, name: str) -> None:
    lines = [["city", "year", "note"], ["Paris", "2020", "a b"], ["Rome", "2021", "c"]]
    text = "\n".join(delimiter.join(line) for line in lines) + "\n"

    info = inspect(write_file(name, text))

    assert info.kind == "csv"
    assert info.delimiter == delimiter
    assert info.rows == 2
    assert [c.name for c in info.columns] == ["city", "year", "note"]
    assert info.sample == [["Paris", "2020", "a b"], ["Rome", "2021", "c"]]
    assert dtypes(info)["year"] == "int"


def test_semicolon_file_with_commas_inside_values(write_file: WriteFile) -> None:
    text = "name;address;total\nAnna;Moscow, Tverskaya 1;10\nBob;Paris, Rue 2;20\n"

    info = inspect(write_file("people.csv", text))

    assert info.delimiter == ";"
    assert info.sample[0] == ["Anna", "Moscow, Tverskaya 1", "10"]


def test_tab_file_with_comma_prose_in_every_row(write_file: WriteFile) -> None:
    text = "Name, Surname\tCity\nIvan, Petrov\tMoscow\nAnna, Smith\tLondon\n"
    info = inspect(write_file("people.csv", text))

    assert info.delimiter == "\t"
    assert info.sample[0] == ["Ivan, Petrov", "Moscow"]


def test_utf8_with_bom(write_file: WriteFile) -> None:
    path = write_file("bom.csv", "\ufeffid,name\n1,Ёж\n2,Ель\n")

    info = inspect(path)

    assert info.encoding == "utf-8-sig"
    assert [c.name for c in info.columns] == ["id", "name"]  # no BOM glued to "id"
    assert info.sample[1] == ["2", "Ель"]


def test_plain_utf8_with_cyrillic(write_file: WriteFile) -> None:
    info = inspect(write_file("ru.csv", "Город,Население\nМосква,13010112\n"))

    assert info.encoding == "utf-8"
    assert info.sample == [["Москва", "13010112"]]


def test_cp1251_russian_headers(write_file: WriteFile) -> None:
    text = "Регион;Выручка\nМосква;1234,5\nСанкт-Петербург;987,25\nКазань;100\n"
    path = write_file("sales.csv", text, encoding="cp1251")

    info = inspect(path)

    assert info.encoding == "cp1251"
    assert info.delimiter == ";"
    assert dtypes(info) == {"Регион": "text", "Выручка": "float"}
    assert info.sample[1] == ["Санкт-Петербург", "987,25"]


def test_koi8r_is_not_mistaken_for_cp1251(write_file: WriteFile) -> None:
    text = "Фамилия,Город\nИванов,Москва\nПетрова,Новосибирск\n"
    info = inspect(write_file("old.csv", text, encoding="koi8-r"))

    assert info.encoding == "koi8-r"
    assert info.sample[1] == ["Петрова", "Новосибирск"]


def test_latin1_accents(write_file: WriteFile) -> None:
    text = "name,city\ncafé,Zürich\nMüller,Genève\nJosé,São Paulo\n"
    info = inspect(write_file("eu.csv", text, encoding="latin-1"))

    assert info.encoding == "latin-1"
    assert info.sample[0] == ["café", "Zürich"]
    assert info.sample[2] == ["José", "São Paulo"]


def test_cp1252_specials(write_file: WriteFile) -> None:
    text = "item,price,quote\nTea,€5,„good“\nCafé crème,€3,naïve\n"
    info = inspect(write_file("shop.csv", text, encoding="cp1252"))

    assert info.encoding == "cp1252"
    assert info.sample[0] == ["Tea", "€5", "„good“"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32(write_file: WriteFile, encoding: str) -> None:
    text = "Регион\tСумма\nМосква\t10\nОмск\t20\n"
    if encoding == "utf-16-be":  # the "utf-16" and "utf-32" codecs write a BOM themselves
        text = "\ufeff" + text
    info = inspect(write_file("u.csv", text, encoding=encoding))

    assert info.encoding in {"utf-16", "utf-32"}
    assert info.delimiter == "\t"
    assert info.rows == 2
    assert dtypes(info) == {"Регион": "text", "Сумма": "int"}


def test_utf16_without_bom(write_file: WriteFile) -> None:
    info = inspect(write_file("u.csv", "a,b\n1,2\n3,4\n", encoding="utf-16-le"))

    assert info.encoding == "utf-16-le"
    assert info.sample == [["1", "2"], ["3", "4"]]


def test_quoted_fields_with_newlines_count_as_one_row(write_file: WriteFile) -> None:
    text = (
        'id,comment,score\n1,"first line\nsecond line",5\n'
        '2,"has ""quotes"", and commas",4\n3,"a\r\nb\r\nc",3\n'
    )
    info = inspect(write_file("q.csv", text))

    assert info.rows == 3
    assert info.sample[0] == ["1", "first line\nsecond line", "5"]
    assert info.sample[1][1] == 'has "quotes", and commas'
    assert dtypes(info) == {"id": "int", "comment": "text", "score": "int"}


def test_type_inference_per_column(write_file: WriteFile) -> None:
    text = (
        "i,f,b,d,dt,t,e,mixed_num,mixed_date\n"
        "1,1.5,true,2024-01-31,2024-01-31 10:00,abc,,1,2024-01-31\n"
        "-2,.5,FALSE,2024-02-29,2024-02-01T23:59:59Z,12a,,2.5,2024-02-01 10:00:00\n"
        "+3,1e-3,yes,2023-12-01,2024-02-01 00:00:00.123+03:00,x,NA,3,2024-02-02\n"
        "NA,,No,,,,,, \n"
        "4, -7 ,да,2024-03-01,2024-03-01 12:30,y, ,,\n"
    )
    info = inspect(write_file("types.csv", text))

    assert dtypes(info) == {
        "i": "int",
        "f": "float",
        "b": "bool",
        "d": "date",
        "dt": "datetime",
        "t": "text",
        "e": "empty",
        "mixed_num": "float",
        "mixed_date": "datetime",
    }


def test_day_first_dates_and_invalid_dates(write_file: WriteFile) -> None:
    text = "ru,us,bad\n31.01.2024,1/31/2024,2024-13-01\n01.02.2024,2/1/2024,2024-01-02\n"
    info = inspect(write_file("dates.csv", text))

    assert dtypes(info) == {"ru": "date", "us": "date", "bad": "text"}


def test_decimal_comma_with_semicolons(write_file: WriteFile) -> None:
    text = "name;price;qty;big\nA;1,5;1;1 234 567\nB;2,75;2;12 000\nC;1 234,5;3;5\n"
    info = inspect(write_file("ru.csv", text))

    assert dtypes(info) == {"name": "text", "price": "float", "qty": "int", "big": "int"}


def test_decimal_comma_is_not_a_number_in_comma_files(write_file: WriteFile) -> None:
    text = 'name,price\nA,"1,5"\nB,"2,5"\n'
    info = inspect(write_file("x.csv", text))

    assert info.delimiter == ","
    assert dtypes(info)["price"] == "text"


def test_types_come_from_all_rows_not_only_the_first(write_file: WriteFile) -> None:
    lines = ["id,value,code"] + [f"{i},{i},{i}" for i in range(30_000)]
    lines[-1] = "29999,3.5,X-1"  # the very last row turns value into float and code into text
    info = inspect(write_file("long.csv", "\n".join(lines) + "\n"))

    assert info.rows == 30_000
    assert dtypes(info) == {"id": "int", "value": "float", "code": "text"}


def test_header_names_empty_and_duplicated_are_named_as_pandas_names_them(
    write_file: WriteFile,
) -> None:
    text = ",name,name, ,name_2,value,2024\n1,a,b,c,d,2,3\n"
    path = write_file("names.csv", text)
    info = inspect(path)

    names = [c.name for c in info.columns]
    assert names == ["Unnamed: 0", "name", "name.1", " ", "name_2", "value", "2024"]
    assert names == list(pd.read_csv(path).columns)


def test_blank_lines_and_short_rows(write_file: WriteFile) -> None:
    text = "a,b,c\n\n1,2,3\n\n4,5\n6,7,8,\n\n"
    info = inspect(write_file("gaps.csv", text))

    assert info.rows == 3
    assert info.sample == [["1", "2", "3"], ["4", "5", ""], ["6", "7", "8"]]


def test_every_row_shorter_than_the_header(write_file: WriteFile) -> None:
    info = inspect(write_file("short.csv", "a,b,c,d\n1,x\n2,y\n"))

    assert dtypes(info) == {"a": "int", "b": "text", "c": "empty", "d": "empty"}
    assert info.sample == [["1", "x", "", ""], ["2", "y", "", ""]]


def test_sample_is_first_five_rows(write_file: WriteFile) -> None:
    text = "n,sq\n" + "".join(f"{i},{i * i}\n" for i in range(1, 50))
    info = inspect(write_file("sq.csv", text))

    assert info.rows == 49
    assert info.sample == [[str(i), str(i * i)] for i in range(1, 6)]


def test_long_cells_are_clipped_in_the_sample(write_file: WriteFile) -> None:
    info = inspect(write_file("long.csv", "id,text\n1," + "x" * 10_000 + "\n"))

    assert len(info.sample[0][1]) <= 256
    assert info.sample[0][1].endswith("…")


def test_txt_that_is_a_csv_is_accepted(write_file: WriteFile) -> None:
    info = inspect(write_file("export.txt", "date;amount\n2024-01-01;10\n2024-01-02;20\n"))

    assert info.kind == "csv"
    assert info.delimiter == ";"
    assert dtypes(info) == {"date": "date", "amount": "int"}


def test_csv_named_like_a_workbook_is_read_as_csv(write_file: WriteFile) -> None:
    info = inspect(write_file("report.xlsx", "a,b\n1,2\n"))

    assert info.kind == "csv"
    assert info.rows == 1


def test_excel_separator_hint_line(write_file: WriteFile) -> None:
    info = inspect(write_file("excel.csv", "sep=;\nname;value\nA;1,5\nB;2\n"))

    assert info.delimiter == ";"
    assert info.skip_rows == 1
    assert [c.name for c in info.columns] == ["name", "value"]
    assert info.rows == 2


def test_single_column_of_values_is_a_table(write_file: WriteFile) -> None:
    info = inspect(write_file("values.csv", "temperature\n21.5\n22\n19.75\n"))

    assert info.rows == 3
    assert dtypes(info) == {"temperature": "float"}


def test_single_column_of_short_labels_is_a_table(write_file: WriteFile) -> None:
    info = inspect(write_file("cities.csv", "city\nMoscow\nSaint Petersburg\nKazan\n"))

    assert info.rows == 3
    assert dtypes(info) == {"city": "text"}


def test_big_file_non_ascii_only_at_the_end(write_file: WriteFile) -> None:
    """The encoding is decided over the whole file, not only the first bytes."""
    body = "".join(f"{i},item {i},{i * 3}\n" for i in range(120_000))
    text = "id,name,price\n" + body + "999999,Пельмени,10\n"
    info = inspect(write_file("tail.csv", text, encoding="cp1251"))

    assert info.encoding == "cp1251"
    assert info.rows == 120_001
    assert dtypes(info) == {"id": "int", "name": "text", "price": "int"}


def test_big_utf8_file_with_a_multiline_field_across_the_sample_end(
    write_file: WriteFile,
) -> None:
    rows = [f'{i},"line one\nline two {i}",Ёлка' for i in range(40_000)]
    info = inspect(write_file("big.csv", "id,text,tree\n" + "\n".join(rows) + "\n"))

    assert info.encoding == "utf-8"
    assert info.rows == 40_000
    assert dtypes(info) == {"id": "int", "text": "text", "tree": "text"}


def test_utf8_with_one_broken_byte_is_still_utf8(write_file: WriteFile) -> None:
    good = "".join(f"{i},Москва,{i}\n" for i in range(100)).encode()
    path = write_file("damaged.csv", b"id,city,n\n" + good + b"100,\xff\xfe,1\n")

    info = inspect(path)

    assert info.encoding == "utf-8"
    assert info.rows == 101


async def test_inspect_table_async(write_file: WriteFile) -> None:
    path = write_file("a.csv", "x,y\n1,2\n3,4\n")

    info = await inspect_table_async(path, "a.csv")

    assert info.rows == 2
    assert dtypes(info) == {"x": "int", "y": "int"}
