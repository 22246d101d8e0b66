"""Fixtures for tabular tests: real files written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tabular.helpers import WriteFile


@pytest.fixture
def write_file(tmp_path: Path) -> WriteFile:
    """write_file(name, content, encoding="utf-8") -> path; bytes are written as they are."""

    def write(name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        data = content if isinstance(content, bytes) else content.encode(encoding)
        path.write_bytes(data)
        return path

    return write
