"""Benchmark: how long building and writing a 📄 Report takes, and how big it gets.

The report is written when the answer is delivered (so its button works after a restart),
off the event loop, before the answer is sent: this time is added to every answer. Builds a
report with ``--charts`` PNG charts of ``--chart-kb`` KB each (noise, so they do not
compress), ``--steps`` code steps and a Markdown answer with a table, ``--runs`` times, and
prints the median and worst build+write time and the file size.

    uv run python benchmarks/report_build.py --charts 10 --chart-kb 300
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from bot.engine.types import Artifact, CodeStep, TurnResult, Usage
from bot.services.answers import Answers
from bot.storage import LocalFileStore, SqliteStore
from bot.telegram.extras import report_labels
from bot.telegram.i18n import translator


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--charts", type=int, default=10)
    parser.add_argument("--chart-kb", type=int, default=300)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args))


async def run(args: argparse.Namespace) -> None:
    charts = tuple(
        Artifact(f"chart_{n}.png", "image/png", os.urandom(args.chart_kb * 1024))
        for n in range(args.charts)
    )
    table = "| region | revenue |\n|---|---:|\n" + "".join(
        f"| R{n} | {n * 100} |\n" for n in range(50)
    )
    result = TurnResult(
        response_id="resp",
        text="## Findings\n\n" + "East leads by **25 %**. " * 40 + "\n\n" + table,
        artifacts=charts,
        code_steps=tuple(
            CodeStep(n, "import pandas as pd\n" * 30, "ok\n" * 20) for n in range(1, args.steps + 1)
        ),
        usage=Usage(12000, 800),
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "state.sqlite3")
        await store.open()
        answers = Answers(store, LocalFileStore(Path(tmp) / "files"))
        labels = report_labels(translator("en"))
        times = []
        for run_number in range(args.runs):
            started = time.perf_counter()
            await answers.keep(
                1,
                f"{run_number:06x}",
                question="Who leads?",
                result=result,
                files=(),
                elapsed="42 s",
                labels=labels,
            )
            times.append(time.perf_counter() - started)
        size = len(await answers.report(1, "000000") or b"")
        await store.close()
    print(f"charts={args.charts} x {args.chart_kb} KB, steps={args.steps}, runs={args.runs}")
    median, worst = statistics.median(times) * 1000, max(times) * 1000
    print(f"build+write: median {median:.1f} ms, worst {worst:.1f} ms (the first run included)")
    print(f"report size: {size / 1024 / 1024:.2f} MB")


if __name__ == "__main__":
    main()
