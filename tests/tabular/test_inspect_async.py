"""`inspect_table_async` on big files: parsed in a worker process, same results and errors."""

from __future__ import annotations

import pickle

import pytest

from bot.tabular import TableError, TableErrorCode, inspect_table, inspect_table_async
from bot.tabular.api import PROCESS_MIN_BYTES
from tests.tabular.helpers import WriteFile, dtypes


def big_csv(min_bytes: int) -> str:
    lines = ["город;дата;сумма"]
    size = row = 0
    while size < min_bytes:
        lines.append(f"Казань;2024-01-{row % 28 + 1:02d};{row * 7 % 1000},5")
        size += len(lines[-1]) + 1
        row += 1
    return "\n".join(lines) + "\n"


async def test_a_big_file_gets_the_same_result_as_inline(write_file: WriteFile) -> None:
    path = write_file("big.csv", big_csv(PROCESS_MIN_BYTES + 1000), encoding="cp1251")

    info = await inspect_table_async(path, "big.csv")

    assert info == inspect_table(path, "big.csv")
    assert info.encoding == "cp1251"
    assert dtypes(info) == {"город": "text", "дата": "date", "сумма": "float"}


async def test_a_big_file_is_refused_with_its_code(write_file: WriteFile) -> None:
    path = write_file("photo.csv", b"\x89PNG\r\n\x1a\n" + bytes(PROCESS_MIN_BYTES))

    with pytest.raises(TableError) as caught:
        await inspect_table_async(path, "photo.csv")

    assert caught.value.code is TableErrorCode.BINARY


def test_table_errors_survive_pickling() -> None:
    # The worker process sends its refusals back pickled.
    data = pickle.dumps(TableError(TableErrorCode.TOO_WIDE, "2001 columns"))
    error = pickle.loads(data)  # noqa: S301 - our own bytes

    assert (error.code, error.detail) == (TableErrorCode.TOO_WIDE, "2001 columns")
    assert str(error) == "too_wide: 2001 columns"
