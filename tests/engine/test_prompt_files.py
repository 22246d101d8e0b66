"""The file description in the system prompt: how to read each file, its notes, and every
column with its type and notes; a file stored before reading notes existed still works."""

from __future__ import annotations

from pathlib import Path

from bot.engine.prompt import describe_files, load_template, render_instructions
from bot.engine.types import ColumnInfo, DataFile


def data_file(**overrides: object) -> DataFile:
    fields: dict[str, object] = {
        "name": "sales.csv",
        "path": Path("/nowhere/sales.csv"),
        "sha256": "0" * 64,
        "size": 10,
        "rows": 4,
        "columns": (
            ColumnInfo("Регион", "text"),
            ColumnInfo("Сумма", "float", ("25% missing",)),
            ColumnInfo(" x ", "int"),
        ),
        "scope": "chat:1",
        "reader": "read_csv",
        "read_options": (("sep", "';'"), ("skiprows", "2"), ("decimal", "','")),
        "notes": ("the first 2 lines are not the table: 'Отчёт'",),
    }
    return DataFile(**(fields | overrides))  # type: ignore[arg-type]


def test_reading_line_notes_and_column_notes() -> None:
    text = describe_files([data_file()])

    assert "1. `sales.csv`: 4 rows × 3 columns" in text
    assert "Read it with: `pd.read_csv(path, sep=';', skiprows=2, decimal=',')`" in text
    assert "Note: the first 2 lines are not the table: 'Отчёт'" in text
    assert "`Регион` (text), `Сумма` (float; 25% missing), ' x ' (int)" in text


def test_a_file_without_reading_notes_is_still_described() -> None:
    text = describe_files([data_file(reader="", read_options=(), notes=())])

    assert "Read it with" not in text
    assert "Note:" not in text
    assert "Columns: `Регион` (text)" in text


def test_the_default_template_tells_the_model_to_follow_the_reading_line() -> None:
    instructions = render_instructions(load_template(), [data_file()], "ru")

    assert 'Read each file the way its "Read it with" line says' in instructions
    assert "pd.read_csv(path, sep=';'" in instructions
