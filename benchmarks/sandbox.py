"""Benchmark: local code execution (CODE_EXECUTION=local) through the real engine.

A scripted function-calling model (tests/fakes/tool_model.py, over loopback HTTP, answering in
about a millisecond) drives `AnalysisEngine` + `LocalExecutor` + real bubblewrap kernels, so the
figures are the bot's own cost, not a model's thinking time:

- cold first step: a new chat's first turn, from the request to the end of its first code step
  (`import pandas; read_csv; print(len(df))`): sandbox + kernel start, imports, the step;
- warm step: a later turn's `df.describe()` step (CodeRunning → CodeFinished) and the whole
  turn (two model requests + the step) through the engine;
- RSS of an idle kernel (bwrap + ipykernel + pandas/matplotlib loaded), summed over the
  sandbox's processes;
- 10 chats at once: ten new chats asking at the same moment (all cold), wall time and the
  slowest first step.

Run:  .venv/bin/python benchmarks/sandbox.py [--rounds 5] [--venv .sandbox-venv]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.engine import (  # noqa: E402
    AnalysisEngine,
    CodeFinished,
    CodeRunning,
    ColumnInfo,
    DataFile,
    TurnFinished,
    TurnRequest,
)
from bot.engine.local import LocalExecutor  # noqa: E402
from bot.sandbox import KernelPool, SandboxLimits  # noqa: E402
from bot.sandbox.build import build  # noqa: E402
from tests.fakes.tool_model import Answer, Call, Conversation, running_tool_model  # noqa: E402

DATA = ROOT / "datasets" / "superstore_sales.csv"
FIRST = "import pandas as pd\ndf = pd.read_csv('/mnt/data/data.csv')\nprint(len(df))"
WARM = "df.describe()"


def script(chat: Conversation) -> list[Call | Answer]:
    if chat.turn_outputs:
        return [Answer("Done.")]
    return [Call(WARM if chat.question == "warm" else FIRST)]


def data_file() -> DataFile:
    raw = DATA.read_bytes()
    return DataFile(
        name="data.csv",
        path=DATA,
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        rows=raw.count(b"\n") - 1,
        columns=(ColumnInfo("x", "text"),),
        scope="bench",
    )


LAST_RESPONSE: dict[str, str] = {}  # chat → its conversation's last response (a follow-up)


async def turn(engine: AnalysisEngine, chat: str, question: str) -> dict[str, float]:
    began = time.perf_counter()
    marks: dict[str, float] = {}
    request = TurnRequest(
        question, [data_file()], chat_key=chat, previous_response_id=LAST_RESPONSE.get(chat)
    )
    async for event in engine.run(request):
        now = time.perf_counter() - began
        if isinstance(event, CodeRunning):
            marks.setdefault("running", now)
        elif isinstance(event, CodeFinished):
            marks.setdefault("finished", now)
        elif isinstance(event, TurnFinished):
            marks["total"] = now
            LAST_RESPONSE[chat] = event.result.response_id
            if "Error" in "".join(step.logs for step in event.result.code_steps):
                raise SystemExit(f"the step failed: {event.result.code_steps[-1].logs}")
    if "total" not in marks:
        raise SystemExit(f"turn {chat}/{question} failed")
    return marks


def rss_kib(root_pid: int) -> int:
    """VmRSS summed over `root_pid` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


async def main(rounds: int, venv: Path) -> None:
    venv = await asyncio.to_thread(build, venv)
    with tempfile.TemporaryDirectory() as scratch:
        async with running_tool_model(script) as model:
            pool = KernelPool(SandboxLimits(max_idle_kernels=20), Path(scratch) / "sb", venv)
            executor = LocalExecutor(model.client(), model="bench", pool=pool)
            engine = AnalysisEngine(executor, max_concurrent=10, turn_timeout=300)
            await engine.start()
            cold, warm_step, warm_turn, rss = [], [], [], []
            for n in range(rounds):
                first = await turn(engine, f"chat-{n}", "cold")
                cold.append(first["finished"])
                for _ in range(5):
                    marks = await turn(engine, f"chat-{n}", "warm")
                    warm_step.append(marks["finished"] - marks["running"])
                    warm_turn.append(marks["total"])
                await asyncio.sleep(0.5)
                rss.append(rss_kib(pool.kernel_pids()[f"chat-{n}"]) / 1024)
            began = time.perf_counter()
            crowd = await asyncio.gather(*(turn(engine, f"crowd-{i}", "cold") for i in range(10)))
            crowd_wall = time.perf_counter() - began
            await engine.aclose()

    def ms(values: list[float]) -> str:
        return f"median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"

    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"cold first step (new chat, request → step done): {ms(cold)}  [{rounds} chats]")
    print(f"warm df.describe() step (running → done):         {ms(warm_step)}")
    print(f"warm turn through the engine (2 model requests):  {ms(warm_turn)}")
    print(f"idle kernel RSS: median {statistics.median(rss):.0f} MiB, max {max(rss):.0f} MiB")
    firsts = [c["finished"] for c in crowd]
    print(
        f"10 chats at once (all cold): wall {crowd_wall:.2f} s, first steps median "
        f"{statistics.median(firsts):.2f} s, slowest {max(firsts):.2f} s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--venv", type=Path, default=ROOT / ".sandbox-venv")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.venv))
