"""How to read a file with pandas so that it comes out as the bot saw it.

    reader, options = pandas_reading(info)   # "read_csv", (("sep", "';'"), ("skiprows", "2"))

Options are (keyword, Python literal) pairs, ready to be written into the model's prompt as
`pd.read_csv(path, sep=';', skiprows=2)`. They describe the file the model receives: text is
always UTF-8 there (the bot transcodes it), and a converted file is a plain CSV.
"""

from __future__ import annotations

from bot.tabular.model import Column, TableInfo

_C_ENGINE_THOUSANDS = frozenset({"", " ", "'", ".", ","})  # NBSP needs engine="python"


def pandas_reading(info: TableInfo) -> tuple[str, tuple[tuple[str, str], ...]]:
    options: list[tuple[str, str]] = []
    if info.converted is not None:
        return "read_csv", (("encoding", repr("utf-8")),)
    if info.kind == "json":
        return "read_json", ()
    if info.kind == "ndjson":
        return "read_json", (("lines", "True"),)
    python_engine = False
    if info.kind == "csv":
        if info.delimiter and info.delimiter != ",":
            options.append(("sep", repr(info.delimiter)))
    else:
        options.append(("sheet_name", repr(info.sheet)))
        if info.first_column:
            last = info.first_column + len(info.columns) - 1
            options.append(("usecols", repr(f"{_letters(info.first_column)}:{_letters(last)}")))
    if info.skip_rows:
        options.append(("skiprows", str(info.skip_rows)))
    options.append(("header", "0"))
    if info.footer_rows:
        options.append(("skipfooter", str(info.footer_rows)))
        python_engine = info.kind == "csv"
    if info.decimal != ".":
        options.append(("decimal", repr(info.decimal)))
    if info.thousands:
        options.append(("thousands", repr(info.thousands)))
        python_engine = python_engine or info.thousands not in _C_ENGINE_THOUSANDS
    if info.kind == "csv":
        options.append(("encoding", repr("utf-8")))
    if python_engine:
        options.append(("engine", repr("python")))
    return ("read_csv" if info.kind == "csv" else "read_excel"), tuple(options)


def _letters(index: int) -> str:
    """A 0-based column index as Excel letters: 0 → A, 27 → AB."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def column_notes(column: Column) -> tuple[str, ...]:
    """What the model should know about one column, in English."""
    notes: list[str] = []
    if column.missing:
        share = column.missing * 100
        notes.append(f"{share:.0f}% missing" if share >= 1 else "<1% missing")
    if column.constant:
        notes.append("one value throughout")
    if column.number_name:
        notes.append("the header is a number: pandas names the column with a number, not a str")
    notes.extend(column.notes)
    return tuple(notes)


def _call(info: TableInfo) -> str:
    reader, options = pandas_reading(info)
    return f"pd.{reader}(path{''.join(f', {k}={v}' for k, v in options)})"


def _quoted(texts: tuple[str, ...]) -> str:
    return "; ".join(repr(text) for text in texts)


def file_notes(
    info: TableInfo, original_name: str, sheet_files: dict[str, str] | None = None
) -> tuple[str, ...]:
    """What the model should know about a file as a whole, in English. `sheet_files` names
    the files other sheets were converted to (sheet → the name the model sees)."""
    notes: list[str] = []
    where = "lines" if info.kind == "csv" else "rows"
    if info.converted is not None:
        origin = f"converted by the bot from `{original_name}`"
        if info.sheet is not None:
            origin += f", sheet {info.sheet!r}"
        notes.append(origin + " to this UTF-8 CSV of the table (header first)")
    if info.skip_rows and info.converted is None:
        what = f": {_quoted(info.skipped)}" if info.skipped else " (blank)"
        notes.append(f"the first {info.skip_rows} {where} are not the table{what}")
    elif info.skipped and info.converted is not None:
        notes.append(f"left out above the header: {_quoted(info.skipped)}")
    if info.footer:
        if info.converted is None:
            notes.append(
                f"the last {info.footer_rows} {where} are totals/notes, not data: "
                + _quoted(info.footer)
            )
        else:
            notes.append(f"totals/notes left out at the end: {_quoted(info.footer)}")
    if info.json_key is not None:
        notes.append(f"the table is the JSON's top-level key {info.json_key!r}")
    if info.flattened:
        notes.append("nested objects became columns named 'parent.child'; lists stay JSON text")
    for other in info.others:
        columns = ", ".join(f"{c.name} ({c.dtype})" for c in other.columns[:40])
        if len(other.columns) > 40:
            columns += f", … and {len(other.columns) - 40} more"
        if other.converted is not None:
            stored = (sheet_files or {}).get(other.sheet or "")
            how = f"in its own file `{stored}`" if stored else "not converted"
        else:
            how = f"read it with `{_call(other)}`"
        notes.append(
            f"sheet {other.sheet!r}: {other.rows} rows × {len(other.columns)} columns, "
            f"{how}; columns: {columns}"
        )
    return tuple(notes)
