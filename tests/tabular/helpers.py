"""Small assertions shared by the tabular tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.tabular import TableError, TableErrorCode, TableInfo, inspect_table

WriteFile = Callable[..., Path]


def inspect(path: Path, name: str | None = None) -> TableInfo:
    return inspect_table(path, name or path.name)


def refused(path: Path, name: str | None = None) -> TableErrorCode:
    """The code a file is refused with; fails the test if the file is accepted."""
    with pytest.raises(TableError) as caught:
        inspect_table(path, name or path.name)
    return caught.value.code


def dtypes(info: TableInfo) -> dict[str, str]:
    return {column.name: column.dtype for column in info.columns}
