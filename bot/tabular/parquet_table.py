"""Parquet files through pyarrow, imported only when a Parquet file arrives (the parsing
worker does not pay for it otherwise). The model gets the table as a UTF-8 CSV."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from bot.tabular.model import (
    MAX_COLUMNS,
    SAMPLE_ROWS,
    Column,
    DType,
    TableError,
    TableErrorCode,
    TableInfo,
)
from bot.tabular.naming import clip_cell

#: A Parquet file with more rows than this is refused (the CSV for the model would be huge).
MAX_PARQUET_ROWS = 5_000_000
_BATCH = 65_536


def _dtype(arrow_type: Any) -> DType:
    import pyarrow as pa

    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "datetime"
    if pa.types.is_null(arrow_type):
        return "empty"
    return "text"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _flat_type(arrow_type: Any) -> Any:
    """What a column becomes in the CSV: nested and binary values as text."""
    import pyarrow as pa

    nested = pa.types.is_nested(arrow_type) or pa.types.is_dictionary(arrow_type)
    if nested or pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return pa.string()
    return arrow_type


def _flattened(batch: Any) -> Any:
    """The batch with nested values as JSON text (the CSV writer takes flat columns only)."""
    import pyarrow as pa

    arrays = []
    for column in batch.columns:
        if _flat_type(column.type) is column.type:
            arrays.append(column)
        else:
            arrays.append(pa.array([None if v is None else _text(v) for v in column.to_pylist()]))
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def inspect_parquet(path: Path, convert_to: Path | None) -> TableInfo:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise TableError(TableErrorCode.CORRUPT_PARQUET, f"cannot open: {exc}") from exc
    schema = parquet.schema_arrow
    rows = parquet.metadata.num_rows
    width = len(schema)
    if width > MAX_COLUMNS:
        raise TableError(TableErrorCode.TOO_WIDE, f"{width} columns")
    if width == 0:
        raise TableError(TableErrorCode.EMPTY, "no columns")
    if rows > MAX_PARQUET_ROWS:
        raise TableError(TableErrorCode.TOO_LARGE, f"{rows} rows")
    if rows == 0:
        raise TableError(TableErrorCode.NO_ROWS, "no rows")
    nulls = [0] * width
    bounds: list[tuple[Any, Any] | None] = [None] * width
    varied = [False] * width
    sample: list[list[str]] = []
    writer = None
    try:
        if convert_to is not None:
            import pyarrow.csv as pa_csv

            flat = pa.schema(
                [pa.field(f.name, _flat_type(f.type)) for f in schema], metadata=schema.metadata
            )
            writer = pa_csv.CSVWriter(str(convert_to), flat)
        for batch in parquet.iter_batches(batch_size=_BATCH):
            for index in range(width):
                column = batch.column(index)
                nulls[index] += column.null_count
                if varied[index] or column.null_count == len(column):
                    continue
                try:
                    low, high = pc.min_max(column).values()
                    pair = (low.as_py(), high.as_py())
                except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
                    varied[index] = True  # nested values: not judged
                    continue
                seen = bounds[index]
                bounds[index] = pair if seen is None else seen
                varied[index] = pair[0] != pair[1] or (seen is not None and seen != pair)
            if len(sample) < SAMPLE_ROWS:
                for record in batch.slice(0, SAMPLE_ROWS - len(sample)).to_pylist():
                    sample.append([clip_cell(_text(v)) for v in record.values()])
            if writer is not None:
                writer.write_batch(_flattened(batch))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise TableError(TableErrorCode.CORRUPT_PARQUET, f"cannot read: {exc}") from exc
    finally:
        if writer is not None:
            writer.close()
    columns = tuple(
        Column(
            field.name or f"Unnamed: {i}",
            _dtype(field.type),
            missing=nulls[i] / rows,
            constant=rows > 1 and not varied[i] and bounds[i] is not None,
        )
        for i, field in enumerate(schema)
    )
    return TableInfo(
        kind="parquet",
        rows=rows,
        columns=columns,
        sample=sample,
        encoding="utf-8",
        converted=str(convert_to) if convert_to is not None else None,
    )
