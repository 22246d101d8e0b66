"""Benchmark: the analysis engine consuming scripted 200-event turns from the Responses API fake.

The fake runs in a subprocess, so this process's CPU time (`time.process_time`) is the engine's
own share: the SDK's SSE parsing, httpx2, the event translation, uploads reuse and artifact
downloads. The fake's CPU is read from /proc for comparison. Memory: tracemalloc peak per turn
(measured in a separate pass, since tracing slows Python down).

Run:  .venv/bin/python benchmarks/engine_turns.py [--turns 50] [--provider openai|yandex]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from bot.engine import (  # noqa: E402
    AnalysisEngine,
    ColumnInfo,
    DataFile,
    HostedInterpreter,
    TurnFinished,
    TurnRequest,
)
from bot.engine.files import MemoryRemoteIndex  # noqa: E402
from tests.fakes.responses_api import Scenario, running_responses_fake, sandbox_link  # noqa: E402

CODE_STEPS = 5
CODE_DELTAS = 24  # per step: added, in_progress, deltas, code.done, interpreting, completed, done
TEXT_DELTAS = 40  # message: added, part.added, deltas, 2 annotations, text.done, part.done, done
EVENTS_PER_TURN = 2 + CODE_STEPS * (6 + CODE_DELTAS) + (5 + TEXT_DELTAS + 2) + 1


def chart_png() -> bytes:
    rng = random.Random(7)
    image = Image.new("RGB", (800, 500), "white")
    pixels = image.load()
    for x in range(800):
        height = rng.randint(20, 480)
        for y in range(500 - height, 500):
            shade = 12 * (rng.random() < 0.1)  # some noise, so the PNG has a chart-like size
            pixels[x, y] = (40 + shade, 90 + shade, 200)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def table_csv() -> bytes:
    rows = ["region,month,revenue"] + [
        f"R{n % 7},2025-{n % 12 + 1:02d},{n * 37 % 1000}" for n in range(400)
    ]
    return ("\n".join(rows) + "\n").encode()


def scenario(png: bytes, csv: bytes) -> Scenario:
    turn = Scenario()
    for step in range(1, CODE_STEPS + 1):
        code = "\n".join(
            f"result_{step}_{n} = df.groupby('region')['revenue'].agg(['sum', 'mean'])"
            for n in range(CODE_DELTAS)
        )
        saves = {"revenue.png": png, "revenue.csv": csv} if step == CODE_STEPS else None
        turn.code(code, logs=f"step {step}: ok\n" * 20, saves=saves, chunks=CODE_DELTAS)
    answer = (
        "Revenue is concentrated in three regions; R3 leads with 14 % of the total. " * 8
        + f"\n\nChart: {sandbox_link('revenue.png')}\nTable: {sandbox_link('revenue.csv')}"
    )
    return turn.text(answer, chunks=TEXT_DELTAS).usage(5200, 900)


# ---- the fake, in a subprocess ----------------------------------------------------------


async def serve(provider: str) -> None:
    png, csv = chart_png(), table_csv()
    async with running_responses_fake(provider) as fake:
        fake.default_scenario = lambda body: scenario(png, csv)
        print(fake.base_url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF


def cpu_seconds_of(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- the measurement --------------------------------------------------------------------


async def one_turn(engine: AnalysisEngine, data_file: DataFile) -> int:
    events = 0
    async for event in engine.run(TurnRequest("Revenue by region?", [data_file])):
        events += 1
        if not isinstance(event, TurnFinished) and type(event).__name__ == "TurnFailed":
            raise RuntimeError(f"turn failed: {event}")
        if isinstance(event, TurnFinished):
            assert len(event.result.artifacts) == 2
    return events


async def measure(base_url: str, provider: str, turns: int, fake_pid: int) -> None:
    import openai

    directory = Path(tempfile.mkdtemp())
    content = table_csv()
    path = directory / "sales.csv"
    path.write_bytes(content)
    data_file = DataFile(
        name="sales.csv",
        path=path,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        rows=400,
        columns=(
            ColumnInfo("region", "text"),
            ColumnInfo("month", "text"),
            ColumnInfo("revenue", "int"),
        ),
        scope="chat:1",
    )
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    backend = HostedInterpreter(
        client,
        provider=provider,
        model="gpt-4.1",
        remote_index=MemoryRemoteIndex(),
        remote_check_interval=3600,
    )
    engine = AnalysisEngine(backend, max_concurrent=turns)
    engine_events = await one_turn(engine, data_file)  # warm-up: upload, connections, imports

    rows = []
    for label, concurrent in (("sequential", False), (f"concurrent x{turns}", True)):
        fake_before = cpu_seconds_of(fake_pid)
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        if concurrent:
            await asyncio.gather(*(one_turn(engine, data_file) for _ in range(turns)))
        else:
            for _ in range(turns):
                await one_turn(engine, data_file)
        cpu = time.process_time() - cpu_before
        wall = time.perf_counter() - wall_before
        fake_after = cpu_seconds_of(fake_pid)
        fake_cpu = None if fake_before is None or fake_after is None else fake_after - fake_before
        rows.append((label, turns, wall, turns / wall, cpu / turns, fake_cpu))

    peaks = []
    tracemalloc.start()
    for _ in range(min(turns, 10)):
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        await one_turn(engine, data_file)
        peaks.append(tracemalloc.get_traced_memory()[1] - baseline)
    tracemalloc.stop()
    await engine.aclose()
    await client.close()

    png, csv = chart_png(), table_csv()
    print(
        f"turn: {EVENTS_PER_TURN} SSE events ({CODE_STEPS} code steps, {TEXT_DELTAS} text deltas), "
        f"2 generated files (PNG {len(png) / 1024:.0f} KiB, CSV {len(csv) / 1024:.0f} KiB); "
        f"{engine_events} engine events per turn; provider={provider}; "
        f"Python {sys.version.split()[0]}"
    )
    print()
    header = (
        f"{'mode':<16} {'turns':>5} {'wall s':>7} {'turns/s':>8} "
        f"{'engine CPU ms/turn':>19} {'fake CPU ms/turn':>17}"
    )
    print(header)
    print("-" * len(header))
    for label, count, wall, rate, cpu, fake_cpu in rows:
        fake = "n/a" if fake_cpu is None else f"{fake_cpu / count * 1000:.1f}"
        print(f"{label:<16} {count:>5} {wall:>7.2f} {rate:>8.1f} {cpu * 1000:>19.1f} {fake:>17}")
    print()
    print(
        f"tracemalloc peak per turn (sequential, {len(peaks)} turns): "
        f"median {sorted(peaks)[len(peaks) // 2] / 1024:.0f} KiB, max {max(peaks) / 1024:.0f} KiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--provider", choices=("openai", "yandex"), default="openai")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.provider))
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--provider", args.provider],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        asyncio.run(measure(base_url, args.provider, args.turns, server.pid))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
