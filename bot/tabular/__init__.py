"""Reading and inspecting users' table files (pure: no Telegram, engine or storage).

CSV/TSV/TXT, XLSX/XLSM, XLS, XLSB, ODS, JSON, NDJSON and Parquet. The table is found inside
the file (titles, comments and totals left out), numbers and dates are read as people write
them, and `reading.pandas_reading(info)` gives the pandas parameters that read it the same way.

    info = await inspect_table_async(path, "sales.csv", convert_to)  # TableInfo or TableError
    text = format_preview(info)                                     # monospaced block for <pre>

Parsing is blocking work; `inspect_table_async` runs it off the event loop (a worker process
for big files, so an entry point must be import-safe: `if __name__ == "__main__":`, as
`python -m bot` is).
"""

from bot.tabular.api import (
    ParsingPool,
    inspect_table,
    inspect_table_async,
    parsing_pool,
    shutdown_parsing_pool,
)
from bot.tabular.model import (
    MAX_COLUMNS,
    Column,
    DType,
    TableError,
    TableErrorCode,
    TableInfo,
    TableKind,
)
from bot.tabular.preview import MAX_PREVIEW_CHARS, format_preview
from bot.tabular.transcode import needs_utf8, transcode_to_utf8

__all__ = [
    "MAX_COLUMNS",
    "MAX_PREVIEW_CHARS",
    "Column",
    "DType",
    "ParsingPool",
    "TableError",
    "TableErrorCode",
    "TableInfo",
    "TableKind",
    "format_preview",
    "inspect_table",
    "inspect_table_async",
    "needs_utf8",
    "parsing_pool",
    "shutdown_parsing_pool",
    "transcode_to_utf8",
]
