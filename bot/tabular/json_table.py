"""JSON and NDJSON (JSON Lines) tables.

Accepted shapes: an array of objects; an object of arrays (columns); an object with a key that
holds one of those ({"data": [...], "meta": {...}}); one object per line (NDJSON). Nested
objects become "parent.child" columns and lists stay JSON text. A JSON file pandas reads as it
is (an array of flat objects, an object of columns) is kept; any other, and NDJSON (the
sandbox's documented file types lack .jsonl), is converted to a UTF-8 CSV for the model.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from itertools import islice, zip_longest
from pathlib import Path
from typing import Any

from bot.tabular.infer import ColumnTyper, NumberStyle
from bot.tabular.model import (
    MAX_COLUMNS,
    SAMPLE_ROWS,
    Column,
    TableError,
    TableErrorCode,
    TableInfo,
)
from bot.tabular.naming import clip_cell
from bot.tabular.profile import ColumnStats, column_notes

#: JSON is held in memory whole, so a file may be at most this big.
MAX_JSON_BYTES = 64 << 20
#: One NDJSON line may be at most this long.
MAX_LINE_BYTES = 16 << 20
#: Nested objects are flattened this deep; deeper values stay JSON text.
FLATTEN_DEPTH = 5
_CHUNK = 4096
JSON_EXTENSIONS = frozenset({".json", ".jsonl", ".ndjson", ".geojson"})
_LINES_EXTENSIONS = frozenset({".jsonl", ".ndjson"})


def looks_like_json(text: str, extension: str) -> bool:
    stripped = text.lstrip("\ufeff \t\r\n")
    return extension in JSON_EXTENSIONS or stripped[:1] in ("{", "[")


def inspect_json(
    path: Path, head: str, encoding: str, extension: str, convert_to: Path | None
) -> TableInfo:
    stripped = head.lstrip("\ufeff \t\r\n")
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise TableError(TableErrorCode.TOO_LARGE, f"{size} bytes of JSON")
    if extension in _LINES_EXTENSIONS or _is_ndjson(stripped):
        records: Iterable[dict[str, Any]] = _ndjson_records(path, encoding)
        kind, where = "ndjson", None
        plain = True
    else:
        try:
            document = json.loads(path.read_text(encoding=encoding, errors="replace"))
        except RecursionError as exc:
            raise TableError(TableErrorCode.TOO_DEEP, "JSON nested too deeply") from exc
        except ValueError as exc:
            raise TableError(TableErrorCode.CORRUPT_JSON, f"invalid JSON: {exc}") from exc
        records, where, plain = _locate(document)
        kind = "json"
    try:
        return _describe(records, kind, where, plain, convert_to)
    except RecursionError as exc:
        raise TableError(TableErrorCode.TOO_DEEP, "JSON nested too deeply") from exc


def _is_ndjson(text: str) -> bool:
    first, _, rest = text.partition("\n")
    if not first.strip().startswith("{") or not rest.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(first), dict)
    except (ValueError, RecursionError):
        return False


def _ndjson_records(path: Path, encoding: str) -> Iterator[dict[str, Any]]:
    with path.open("rb") as file:
        for number, raw in enumerate(iter(lambda: file.readline(MAX_LINE_BYTES + 1), b""), 1):
            if len(raw) > MAX_LINE_BYTES:
                raise TableError(TableErrorCode.LINE_TOO_LONG, f"line {number} over the limit")
            line = raw.decode(encoding, errors="replace").strip()
            if not line:
                continue
            try:
                value = json.loads(line)
            except RecursionError as exc:
                raise TableError(TableErrorCode.TOO_DEEP, "JSON nested too deeply") from exc
            except ValueError as exc:
                raise TableError(TableErrorCode.CORRUPT_JSON, f"line {number}: {exc}") from exc
            if not isinstance(value, dict):
                raise TableError(TableErrorCode.CORRUPT_JSON, f"line {number} is not an object")
            yield value


def _table_of(value: Any) -> tuple[list[dict[str, Any]], bool] | None:
    """(records, pandas reads it as is) when `value` is a table, else None."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return value, True
    if (
        isinstance(value, dict)
        and value
        and all(isinstance(v, list) for v in value.values())
        and not any(isinstance(x, list | dict) for v in value.values() for x in v[:100])
    ):
        lengths = {len(v) for v in value.values()}
        if len(lengths) == 1 and lengths != {0}:
            keys = list(value)
            columns = [value[k] for k in keys]
            return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)], True
    return None


def _locate(document: Any) -> tuple[list[dict[str, Any]], str | None, bool]:
    found = _table_of(document)
    if found is not None:
        return found[0], None, found[1]
    if isinstance(document, dict):
        best: tuple[int, str, list[dict[str, Any]]] | None = None
        for key, value in document.items():
            table = _table_of(value)
            if table is not None and (best is None or len(table[0]) > best[0]):
                best = (len(table[0]), key, table[0])
        if best is not None:
            return best[2], best[1], False
    raise TableError(TableErrorCode.CORRUPT_JSON, "no array of objects or object of arrays")


def _flatten(record: dict[str, Any], prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth < FLATTEN_DEPTH:
            yield from _flatten(value, f"{name}.", depth + 1)
        else:
            yield name, value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _describe(
    records: Iterable[dict[str, Any]],
    kind: str,
    where: str | None,
    plain: bool,
    convert_to: Path | None,
) -> TableInfo:
    names: dict[str, int] = {}
    flat_rows: list[dict[str, Any]] = []
    nested = False
    for record in records:
        flat = dict(_flatten(record))
        nested = (
            nested
            or len(flat) != len(record)
            or any(isinstance(v, dict | list) for v in flat.values())
        )
        for name in flat:
            if name not in names:
                names[name] = len(names)
                if len(names) > MAX_COLUMNS:
                    raise TableError(TableErrorCode.TOO_WIDE, f"over {MAX_COLUMNS} keys")
        flat_rows.append(flat)
    if not flat_rows:
        raise TableError(TableErrorCode.NO_ROWS, "no records")
    header = list(names)
    width = len(header)
    if width == 0:
        raise TableError(TableErrorCode.EMPTY, "records without keys")
    typer = ColumnTyper(width, NumberStyle())
    stats = ColumnStats(width)
    sample: list[list[str]] = []
    rows_iter = iter(flat_rows)
    while chunk := list(islice(rows_iter, _CHUNK)):
        texts = [[_text(row.get(name)) for name in header] for row in chunk]
        if len(sample) < SAMPLE_ROWS:
            sample.extend([clip_cell(c) for c in row] for row in texts[: SAMPLE_ROWS - len(sample)])
        columns = list(zip_longest(*texts, fillvalue=""))
        stats.feed(columns, len(texts))
        if not typer.settled:
            typer.feed(columns)
    converted = None
    # NDJSON is converted too: .jsonl/.ndjson are not among the sandbox's documented types.
    if convert_to is not None and (nested or not plain or kind == "ndjson"):
        with convert_to.open("w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(header)
            for row in flat_rows:
                writer.writerow([_text(row.get(name)) for name in header])
        converted = str(convert_to)
    columns_out = tuple(
        Column(
            name,
            dtype,
            missing=stats.missing(i),
            constant=stats.constant(i),
            notes=column_notes(name, dtype, stats.samples(i), NumberStyle()),
        )
        for i, (name, dtype) in enumerate(zip(header, typer.dtypes(), strict=True))
    )
    return TableInfo(
        kind="ndjson" if kind == "ndjson" else "json",
        rows=len(flat_rows),
        columns=columns_out,
        sample=sample,
        encoding="utf-8",
        json_key=where,
        converted=converted,
        flattened=nested,
    )
