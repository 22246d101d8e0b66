"""Benchmark `bot.tabular.inspect_table` on generated files; prints figures, asserts nothing.

    .venv/bin/python benchmarks/tabular_inspect.py [--csv-mb 20] [--xlsx-mb 5] [--runs 5]

Generates in a temporary directory:
- a ~20 MB comma CSV (int, float, date, datetime, bool, text, a quoted text with commas and
  an occasional embedded newline, a mostly-empty column);
- the same data as a ~20 MB cp1251 semicolon CSV with decimal commas (the single-byte path);
- a ~5 MB XLSX (when openpyxl is importable; it is a dev dependency).
For each: min/median wall time over several runs, peak Python memory of one run
(tracemalloc), and peak RSS growth of one run in a fresh interpreter (which also sees
calamine's Rust allocations for XLSX, invisible to tracemalloc).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.tabular import format_preview, inspect_table  # noqa: E402

CITIES = ["Москва", "Казань", "Berlin", "São Paulo", "New York", "Zürich", "Lyon", "Tokyo"]


def _row(rng: random.Random, i: int, *, decimal_comma: bool) -> list[str]:
    day = dt.date(2020, 1, 1) + dt.timedelta(days=i % 1500)
    price = f"{rng.uniform(0, 10_000):.2f}"
    note = f"{rng.choice(CITIES)}, order {i}"
    if i % 997 == 0:
        note += "\nsecond line"
    return [
        str(i),
        price.replace(".", ",") if decimal_comma else price,
        day.isoformat(),
        f"{day.isoformat()} {rng.randrange(24):02d}:{rng.randrange(60):02d}:00",
        rng.choice(("true", "false")),
        rng.choice(CITIES),
        note,
        "" if i % 50 else "x",
        str(rng.randrange(-1000, 1000)),
        f"{rng.gauss(0, 1):.6f}".replace(".", ",") if decimal_comma else f"{rng.gauss(0, 1):.6f}",
    ]


HEADER = ["id", "price", "day", "moment", "flag", "city", "note", "rare", "delta", "z"]


def make_csv(path: Path, target_mb: float, *, delimiter: str, encoding: str) -> int:
    import csv

    rng = random.Random(42)
    rows = 0
    with path.open("w", encoding=encoding, errors="replace", newline="") as file:
        writer = csv.writer(file, delimiter=delimiter)
        writer.writerow(HEADER)
        while True:
            block = [_row(rng, rows + k, decimal_comma=delimiter == ";") for k in range(5000)]
            writer.writerows(block)
            rows += len(block)
            if file.tell() >= target_mb * 1_000_000:
                return rows


def make_xlsx(path: Path, target_mb: float) -> int | None:
    try:
        from openpyxl import Workbook
    except ImportError:
        return None
    rng = random.Random(7)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Data")
    sheet.append(HEADER)
    # About 68 bytes of compressed XML per row of this shape (measured).
    rows = int(target_mb * 1_000_000 / 68)
    for i in range(rows):
        day = dt.date(2020, 1, 1) + dt.timedelta(days=i % 1500)
        sheet.append(
            [
                i,
                round(rng.uniform(0, 10_000), 2),
                day,
                dt.datetime(day.year, day.month, day.day, rng.randrange(24), rng.randrange(60)),
                rng.random() < 0.5,
                rng.choice(CITIES),
                f"{rng.choice(CITIES)}, order {i}",
                None if i % 50 else "x",
                rng.randrange(-1000, 1000),
                rng.gauss(0, 1),
            ]
        )
    workbook.save(path)
    return rows


_RSS_PROBE = """
import re, sys
from pathlib import Path
from bot.tabular import inspect_table
def hwm():  # VmHWM: this process's peak RSS (ru_maxrss would inherit the parent's peak)
    return int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text())[1])
before = hwm()
inspect_table(Path(sys.argv[1]), sys.argv[2])
print(hwm() - before)
"""


def peak_rss_growth_mb(path: Path, name: str) -> float:
    """Peak RSS growth of one inspection in a fresh interpreter (sees Rust allocations too)."""
    result = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(path), name],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.strip()) / 1024  # KiB


def measure(path: Path, name: str, runs: int) -> None:
    times = []
    info = None
    for _ in range(runs):
        start = time.perf_counter()
        info = inspect_table(path, name)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    inspect_table(path, name)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = peak_rss_growth_mb(path, name)
    assert info is not None
    size_mb = path.stat().st_size / 1e6
    print(
        f"{name:<20} {size_mb:5.1f} MB  {info.rows:>7} rows x {len(info.columns)} cols  "
        f"min {min(times):.3f}s  median {statistics.median(times):.3f}s  "
        f"({size_mb / min(times):.0f} MB/s)  peak: tracemalloc {peak / 1e6:.1f} MB, "
        f"RSS growth {rss:.0f} MB"
    )
    print("  types:", ", ".join(f"{c.name}:{c.dtype}" for c in info.columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv-mb", type=float, default=20)
    parser.add_argument("--xlsx-mb", type=float, default=5)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        utf8 = folder / "big.csv"
        make_csv(utf8, args.csv_mb, delimiter=",", encoding="utf-8")
        cp1251 = folder / "big_cp1251.csv"
        make_csv(cp1251, args.csv_mb, delimiter=";", encoding="cp1251")
        xlsx = folder / "big.xlsx"
        started = time.perf_counter()
        has_xlsx = make_xlsx(xlsx, args.xlsx_mb) is not None
        made = time.perf_counter() - started
        print(f"python {sys.version.split()[0]}, {args.runs} runs each")
        measure(utf8, "big.csv (utf-8 ,)", args.runs)
        measure(cp1251, "big.csv (cp1251 ;)", args.runs)
        if has_xlsx:
            print(f"  (xlsx generated in {made:.1f}s)")
            measure(xlsx, "big.xlsx", max(1, args.runs // 2))
        else:
            print("openpyxl is not importable: XLSX skipped")
        print()
        print(format_preview(inspect_table(utf8, "big.csv")))


if __name__ == "__main__":
    main()
