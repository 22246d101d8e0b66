"""Public types of the tabular package: what an inspection returns and how it fails."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

#: Column types, narrowest first. "empty" means no value at all in the column.
DType = Literal["int", "float", "bool", "date", "datetime", "text", "empty"]
#: What the file is: "csv" (delimited text), "xlsx" (kept as is), "json"/"ndjson" (flat JSON
#: kept as is) or a format converted to CSV for the model (see `TableInfo.converted`).
TableKind = Literal["csv", "xlsx", "xls", "xlsb", "ods", "json", "ndjson", "parquet"]

#: A table wider than this is refused with `TableErrorCode.TOO_WIDE`.
MAX_COLUMNS = 2000
#: How many data rows `TableInfo.sample` keeps.
SAMPLE_ROWS = 5
#: Longer sample cells are cut to this many characters (ending with "…").
SAMPLE_CELL_CHARS = 256


@dataclass(frozen=True, slots=True)
class Column:
    name: str  # as pandas names it: unique, "Unnamed: 3" for an empty header cell
    dtype: DType
    missing: float = 0.0  # share of data rows without a value (0..1)
    constant: bool = False  # every value is the same (and there are values)
    mixed: DType | None = None  # a text column that mostly holds this type
    notes: tuple[str, ...] = ()  # how values are written, in English, for the model
    number_name: bool = False  # the header is a number: pandas names it 2024, not "2024"


@dataclass(frozen=True, slots=True)
class TableInfo:
    """What `inspect_table` learned about a file.

    `kind` reflects the content, not the file name: a CSV sent as `report.xlsx` comes back as
    "csv", so whoever hands the file on (to the model) should name it by `kind`.
    """

    kind: TableKind
    rows: int  # data rows, header excluded; blank lines / fully empty sheet rows not counted
    columns: tuple[Column, ...]
    sample: list[list[str]]  # up to SAMPLE_ROWS first data rows, each exactly len(columns) cells
    encoding: str | None = None  # csv: a Python codec name ("utf-8", "utf-8-sig", "cp1251", ...)
    delimiter: str | None = None  # csv: "," ";" "\t" or "|"
    skip_rows: int = 0  # lines (csv) or sheet rows (workbooks) before the header
    footer_rows: int = 0  # lines (csv) or sheet rows at the end that are totals or notes
    decimal: str = "."  # the decimal mark of numbers written as text
    thousands: str = ""  # their thousands separator ("" when none is used)
    sheet: str | None = None  # workbooks: the sheet described (the first non-empty one)
    extra_sheets: int = 0  # workbooks: how many other worksheets hold data
    others: tuple[TableInfo, ...] = ()  # workbooks: those other sheets (each with `sheet`)
    skipped: tuple[str, ...] = ()  # the text of title/comment lines before the header
    footer: tuple[str, ...] = ()  # the text of the total/note lines left out at the end
    # Set when the file was rewritten as UTF-8 CSV for the model (xls, xlsb, ods, nested
    # JSON, parquet): the path of that CSV; the table is then its header and rows only.
    converted: str | None = None
    first_column: int = 0  # workbooks: the sheet's first used column (0 = A)
    flattened: bool = False  # json: nested objects became "a.b" columns
    json_key: str | None = None  # json: the top-level key that holds the table


class TableErrorCode(StrEnum):
    """Why a file was refused. Each code maps to one user-facing message in the bot."""

    EMPTY = "empty"  # 0 bytes, only whitespace, or a workbook without any cell
    NO_ROWS = "no_rows"  # a header but no data rows
    BINARY = "binary"  # an image, PDF, archive, executable or other non-text bytes
    OLD_EXCEL = "old_excel"  # legacy .xls (OLE2): ask to save as XLSX or CSV
    ENCRYPTED = "encrypted"  # a password-protected workbook
    UNDECODABLE = "undecodable"  # text in an encoding we cannot identify
    NOT_TABULAR = "not_tabular"  # prose, JSON, HTML/XML or ragged rows without a delimiter
    UNSUPPORTED = "unsupported"  # a format we do not take (.json, .parquet, .ods, a prose .txt)
    TOO_WIDE = "too_wide"  # more than MAX_COLUMNS columns
    CORRUPT_XLSX = "corrupt_xlsx"  # looks like a workbook but cannot be read
    TOO_LARGE = "too_large"  # unpacks to more cells/rows/bytes than we read (a zip bomb too)
    TOO_DEEP = "too_deep"  # JSON nested deeper than we follow
    LINE_TOO_LONG = "line_too_long"  # one line (record) of megabytes: not a table's row
    CORRUPT_PARQUET = "corrupt_parquet"  # a Parquet file pyarrow cannot read
    CORRUPT_JSON = "corrupt_json"  # .json that does not parse, or holds no table


class TableError(Exception):
    """A file that cannot be used as a table. `detail` is for logs, in English."""

    def __init__(self, code: TableErrorCode, detail: str) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail

    def __reduce__(self) -> tuple[type[TableError], tuple[TableErrorCode, str]]:
        # Picklable, so it can come back from the worker process of `inspect_table_async`.
        return (TableError, (self.code, self.detail))
