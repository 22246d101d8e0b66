"""Column names and cell text shared by the CSV and XLSX readers."""

from __future__ import annotations

from collections.abc import Iterable

from bot.tabular.model import SAMPLE_CELL_CHARS


def unique_names(raw: Iterable[str]) -> list[str]:
    """Empty names become `column_N` (1-based position); repeats get `_2`, `_3`, …

    A generated name never collides with a name that appears elsewhere in the header.
    """
    names = [name or f"column_{i}" for i, name in enumerate(raw, start=1)]
    originals = set(names)
    used: set[str] = set()
    result: list[str] = []
    for name in names:
        candidate = name
        suffix = 1
        while candidate in used:
            suffix += 1
            candidate = f"{name}_{suffix}"
            if candidate in originals:
                candidate = name  # taken by another column: try the next suffix
        used.add(candidate)
        result.append(candidate)
    return result


def clip_cell(value: str, limit: int = SAMPLE_CELL_CHARS) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"
