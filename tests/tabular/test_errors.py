"""Files the bot must refuse, each with the specific reason the user will be told."""

from __future__ import annotations

import gzip
import io
import json
import random
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from bot.tabular import MAX_COLUMNS, TableError, TableErrorCode, inspect_table
from tests.tabular.helpers import WriteFile, inspect, refused

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

README = """# datalens

A bot that answers questions about your spreadsheets.

## Install

Run the installer, then set the token in the environment. The bot reads CSV files,
Excel workbooks and a few bundled datasets, and it replies in your language.

- fast
- friendly, mostly

See the documentation for more details, examples, and a FAQ.
"""


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 10)).save(buffer, format="JPEG")
    return buffer.getvalue()


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def test_zero_bytes_is_empty(write_file: WriteFile) -> None:
    assert refused(write_file("a.csv", b"")) is TableErrorCode.EMPTY


@pytest.mark.parametrize("content", [" \n\t\r\n  \n", "\ufeff\n\n", "\n" * 300_000])
def test_whitespace_only_is_empty(write_file: WriteFile, content: str) -> None:
    assert refused(write_file("a.csv", content)) is TableErrorCode.EMPTY


@pytest.mark.parametrize("content", ["id,name,price\n", "id;name\n\n\n", "Регион;Выручка"])
def test_header_only_has_no_rows(write_file: WriteFile, content: str) -> None:
    assert refused(write_file("a.csv", content)) is TableErrorCode.NO_ROWS


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("photo.csv", _png),
        ("photo.png", _png),
        ("scan.csv", _jpeg),
        ("doc.csv", lambda: PDF),
        ("data.csv.gz", lambda: gzip.compress(b"a,b\n1,2\n")),
        ("data.csv", lambda: gzip.compress(b"a,b\n1,2\n")),
    ],
)
def test_known_binary_formats(write_file: WriteFile, name: str, make) -> None:
    assert refused(write_file(name, make())) is TableErrorCode.BINARY


def test_random_bytes_are_binary(write_file: WriteFile) -> None:
    data = random.Random(7).randbytes(4096)
    assert refused(write_file("noise.csv", data)) is TableErrorCode.BINARY


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_text_with_nul_bytes_is_binary(write_file: WriteFile, bom: bytes) -> None:
    data = bom + b"a,b\n1,\x002\n" * 10
    assert refused(write_file("a.csv", data)) is TableErrorCode.BINARY


def test_zip_that_is_not_a_workbook(write_file: WriteFile, tmp_path: Path) -> None:
    path = tmp_path / "archive.csv"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data.csv", "a,b\n1,2\n")
    assert refused(path) is TableErrorCode.BINARY


def test_broken_opendocument_spreadsheet_is_a_damaged_workbook(tmp_path: Path) -> None:
    path = tmp_path / "sheet.ods"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", "<office:document-content/>")
    assert refused(path) is TableErrorCode.CORRUPT_XLSX


@pytest.mark.parametrize("name", ["old.xls", "old.csv", "old"])
def test_legacy_excel_is_old_excel(write_file: WriteFile, name: str) -> None:
    data = OLE2_MAGIC + bytes(504) + b"Workbook".decode().encode("utf-16-le") + bytes(1000)
    assert refused(write_file(name, data)) is TableErrorCode.OLD_EXCEL


def test_password_protected_workbook_is_encrypted(write_file: WriteFile) -> None:
    # Excel saves an encrypted .xlsx as an OLE2 container with an "EncryptedPackage" stream.
    data = OLE2_MAGIC + bytes(1016) + "EncryptedPackage".encode("utf-16-le") + bytes(2000)
    assert refused(write_file("secret.xlsx", data)) is TableErrorCode.ENCRYPTED


def test_readme_is_not_tabular(write_file: WriteFile) -> None:
    assert refused(write_file("README", README)) is TableErrorCode.NOT_TABULAR


def test_prose_named_csv_is_not_tabular(write_file: WriteFile) -> None:
    assert refused(write_file("notes.csv", README)) is TableErrorCode.NOT_TABULAR


def test_prose_txt_is_unsupported(write_file: WriteFile) -> None:
    assert refused(write_file("notes.txt", README)) is TableErrorCode.UNSUPPORTED


def test_ragged_rows_are_not_tabular(write_file: WriteFile) -> None:
    text = (
        "Hello, this is a letter, not a table\n"
        "I was thinking, maybe, we could meet\n"
        "tomorrow\n"
        "or, if you prefer, on Friday, Saturday, or Sunday, in the morning\n"
        "Best\n"
        "Anna\n"
    )
    assert refused(write_file("letter.csv", text)) is TableErrorCode.NOT_TABULAR


@pytest.mark.parametrize(
    "content",
    [
        json.dumps([{"a": 1, "b": 2}, {"a": 3, "b": 4}], indent=2),
        '{"a": 1, "b": 2}\n{"a": 3, "b": 4}\n',
    ],
)
def test_json_content_named_csv_is_read_as_json(write_file: WriteFile, content: str) -> None:
    info = inspect(write_file("data.csv", content))
    assert info.kind in ("json", "ndjson")
    assert info.rows == 2


def test_json_without_a_table_named_csv_is_not_tabular(write_file: WriteFile) -> None:
    content = json.dumps({"rows": [[1, 2], [3, 4]]})
    assert refused(write_file("data.csv", content)) is TableErrorCode.NOT_TABULAR
    assert refused(write_file("data.json", content)) is TableErrorCode.CORRUPT_JSON


def test_html_saved_as_xls_asks_for_xlsx_or_csv(write_file: WriteFile) -> None:
    html = "<html><body><table><tr><td>a</td><td>b</td></tr></table></body></html>\n"
    assert refused(write_file("report.xls", html)) is TableErrorCode.OLD_EXCEL
    assert refused(write_file("report.csv", html)) is TableErrorCode.NOT_TABULAR


def test_sql_server_style_bracket_header_is_still_csv(write_file: WriteFile) -> None:
    info = inspect(write_file("export.csv", "[id],[name]\n1,a\n2,b\n"))
    assert [c.name for c in info.columns] == ["[id]", "[name]"]


@pytest.mark.parametrize("name", ["t.feather", "t.pkl", "t.sqlite"])
def test_other_data_formats_are_unsupported(write_file: WriteFile, name: str) -> None:
    assert refused(write_file(name, "a,b\n1,2\n")) is TableErrorCode.UNSUPPORTED


def test_broken_parquet_is_reported(write_file: WriteFile) -> None:
    data = b"PAR1" + bytes(range(200)) + b"PAR1"
    assert refused(write_file("t.csv", data)) is TableErrorCode.CORRUPT_PARQUET


def test_shift_jis_is_undecodable(write_file: WriteFile) -> None:
    text = "名前,都市,金額\n田中,東京,100\n鈴木,大阪,200\n山田,名古屋,300\n"
    assert refused(write_file("jp.csv", text, encoding="shift_jis")) is TableErrorCode.UNDECODABLE


def test_broken_utf16_is_undecodable(write_file: WriteFile) -> None:
    data = "a,b\n1,2\n".encode("utf-16") + b"\x00"  # odd length: a truncated code unit
    assert refused(write_file("u.csv", data)) is TableErrorCode.UNDECODABLE


def test_too_wide(write_file: WriteFile) -> None:
    width = MAX_COLUMNS + 1
    header = ",".join(f"c{i}" for i in range(width))
    row = ",".join("1" for _ in range(width))
    path = write_file("wide.csv", f"{header}\n{row}\n")

    with pytest.raises(TableError) as caught:
        inspect_table(path, "wide.csv")

    assert caught.value.code is TableErrorCode.TOO_WIDE
    assert str(width) in caught.value.detail


def test_widest_allowed_table_is_accepted(write_file: WriteFile) -> None:
    header = ",".join(f"c{i}" for i in range(MAX_COLUMNS))
    row = ",".join(str(i) for i in range(MAX_COLUMNS))
    info = inspect(write_file("wide.csv", f"{header}\n{row}\n{row}\n"))

    assert len(info.columns) == MAX_COLUMNS
    assert info.rows == 2


def test_unbalanced_quote_is_reported_not_crashed(write_file: WriteFile) -> None:
    text = 'id,text\n1,"never closed\n' + "2,more text\n" * 20_000
    assert refused(write_file("broken.csv", text)) is TableErrorCode.NOT_TABULAR


def test_error_carries_code_and_detail(write_file: WriteFile) -> None:
    with pytest.raises(TableError) as caught:
        inspect_table(write_file("p.csv", _png()), "p.csv")

    assert caught.value.code == "binary"  # a StrEnum: usable as a message key
    assert "PNG" in caught.value.detail
