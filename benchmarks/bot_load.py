"""Benchmark: does the bot stay responsive with hundreds of chats?

The real bot (services, SQLite, aiogram long polling, AsyncOpenAI; production logging and edit
intervals) runs in its own process against the loopback Telegram fake (in this process, which
also plays the users) and the Responses API fake (a third process). So the bot's figures —
peak RSS, CPU time, event-loop lag — are its own; all three share this machine's cores.

Idle latency (``--latency-chats N``, default 20): after one warm-up chat (the cold start),
chats one after another upload a small CSV, wait for the preview and ask a question: time from
the question to the first progress message (target p50 ≤ 100 ms, p95 ≤ 300 ms).

Burst (``--chats N``, default 200): every chat uploads a CSV, then all ask in the same second;
the model answers each with 49 stream events (two code steps, a pause of ``--model-seconds``,
a PNG chart and a text answer); ``--concurrent`` (default 200) analyses stream at once. A new
chat sends /start every 0.25 s meanwhile (target p95 ≤ 1 s). Measured: question → first
progress message, the rate those went out at (the overall limit, ``--rate``) and what else
reached these chats before the last of them (target: nothing), question → delivered against
the physical limit (all requests / the overall rate), the bot's CPU per analysis and its
process tree's peak RSS above idle (target ≤ 40 MiB), 429s.

Relay (side by side with the burst): the same stream relayed by a minimal FastAPI SSE endpoint
(``benchmarks/sse_relay.py``, ``uv sync --group bench``), N streams at once: its CPU per
analysis against the bot's.

Load (``--mode load``, the earlier benchmark): every chat at once uploads and asks at once,
with ``--concurrent`` analyses; first reactions, delivery, CPU and memory.

Big upload (``--start-chats N``, default 100): N chats send /start, spread over
``--window`` seconds, once alone and once while another chat uploads a ``--upload-mb`` MB
CSV (Windows-1251, so the bot also re-encodes it). Parsing and re-encoding run off the
event loop, so /start should answer about as fast as without the upload.

Flood limits on the Telegram fake (``--flood``): ``telegram`` (default) enforces Telegram's
per-chat limits and its overall 30 messages/s; ``relaxed`` lifts the overall one; ``off``
disables flood control.

Finding what blocks the loop: ``--trace-stalls-ms 80`` logs the bot's stack to its log
whenever the loop stalls that long; ``--profile FILE`` writes a cProfile of the burst (or
load) phase.

Run:  uv sync --group bench
      .venv/bin/python benchmarks/bot_load.py [--chats 200] [--latency-chats 20]
      [--concurrent 200] [--rate 25] [--start-chats 100] [--upload-mb 20]
      [--model-seconds 0.25] [--flood telegram|relaxed|off]
      [--mode all|latency|burst|relay|load|upload] [--trace-stalls-ms MS] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import logging
import os
import random
import resource
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.bot.harness import BOT_USERNAME, png, settings_for  # noqa: E402
from tests.fakes.responses_api import Scenario, running_responses_fake, sandbox_link  # noqa: E402
from tests.fakes.telegram_api import ApiCall, FloodLimits, TelegramFake  # noqa: E402

CODE_CHUNKS = 8
TEXT_CHUNKS = 12
# response.created + in_progress, 2 code items of (6 + chunks) events, a message of (5 + chunks
# + one citation), response.completed: 49 (counted with the SDK).
EVENTS_PER_TURN = 2 + 2 * (6 + CODE_CHUNKS) + (5 + TEXT_CHUNKS + 1) + 1
STALL_AFTER = 2 + 6 + CODE_CHUNKS  # the model "thinks" after its first code step
TICK = 0.01  # the bot's lag ticker period, seconds
SENDS = {"sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup"}


# ---- the Responses fake (child process) ------------------------------------------------


def answer_scenario(chart: bytes, model_seconds: float) -> Scenario:
    answer = (
        "**Revenue** grew in every region; the East leads with 41 % of the total, "
        "the West follows with 33 %. " * 3 + f"\n\nChart: {sandbox_link('revenue.png')}"
    )
    return (
        Scenario()
        .code(
            "df = pd.read_csv('/mnt/data/sales.csv')\nprint(df.describe())",
            logs="       revenue\ncount  48\nmean   1020\n",
            chunks=CODE_CHUNKS,
        )
        .code(
            "ax = df.groupby('region').revenue.sum().plot.bar()\n"
            "plt.savefig('/mnt/data/revenue.png')",
            logs="",
            saves={"revenue.png": chart},
            chunks=CODE_CHUNKS,
        )
        .text(answer, chunks=TEXT_CHUNKS)
        .usage(2400, 300)
        .stall(after=STALL_AFTER, seconds=model_seconds)
    )


async def serve_llm(model_seconds: float) -> None:
    chart = png(800, 500)
    async with running_responses_fake("openai") as fake:
        fake.default_scenario = lambda body: answer_scenario(chart, model_seconds)
        print(fake.base_url, flush=True)
        reader = await stdin_reader()
        await reader.read()  # until EOF
        summary = {
            "responses": len(fake.response_requests()),
            "uploads": len(fake.uploads),
            "errors": fake.errors[:5],
        }
        print(json.dumps(summary), flush=True)
        fake.errors.clear()


# ---- the bot (child process) -----------------------------------------------------------


async def stdin_reader() -> asyncio.StreamReader:
    """stdin without a blocked executor thread (the bot's to_thread work needs them all)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


class LagMeter:
    """How late the event loop runs a task that sleeps TICK seconds at a time.

    With `trace_ms`, a watchdog thread logs the event loop thread's stack whenever the loop
    has not ticked for that long: the way to find what blocks it."""

    def __init__(self, trace_ms: float = 0) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None
        self._trace = trace_ms / 1000
        self._beat = time.monotonic()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        if self._trace:
            loop_thread = threading.get_ident()
            threading.Thread(target=self._watch, args=(loop_thread,), daemon=True).start()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            self._beat = time.monotonic()
            await asyncio.sleep(TICK)
            self.samples.append(max(0.0, loop.time() - before - TICK))

    def _watch(self, loop_thread: int) -> None:
        reported = 0.0
        while True:
            time.sleep(self._trace / 4)
            beat = self._beat
            if time.monotonic() - beat > self._trace and beat != reported:
                reported = beat
                frame = sys._current_frames().get(loop_thread)
                stack = "".join(traceback.format_stack(frame)) if frame else "?"
                logging.getLogger("bot_load").warning(
                    "event loop stalled > %.0f ms in:\n%s", self._trace * 1000, stack
                )

    def take(self) -> list[float]:
        samples, self.samples = self.samples, []
        return samples


class GcMeter:
    """Full (generation 2) garbage collections and how long each held the event loop."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._started)

    def take(self) -> list[float]:
        pauses, self.pauses = self.pauses, []
        return pauses


def memory_mib(pid: int | str = "self", field: str = "VmRSS") -> float:
    """VmRSS (now) or VmHWM (peak) of a process, from /proc."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:  # it has just exited
        return 0.0
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_of(pid: int | str) -> float:
    """User + system CPU seconds of a process, from /proc (0 when it has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TreeMemory:
    """The peak RSS of the bot's process tree (itself and its children, e.g. the parsing
    worker), sampled every 50 ms."""

    def __init__(self) -> None:
        self.peak = 0.0
        self.children_cpu: dict[int, float] = {}  # last CPU seen of every child

    def now(self) -> float:
        pids = child_pids()
        for pid in pids:
            self.children_cpu[pid] = max(self.children_cpu.get(pid, 0.0), cpu_of(pid))
        return memory_mib() + sum(memory_mib(pid) for pid in pids)

    async def run(self) -> None:
        while True:
            self.peak = max(self.peak, self.now())
            await asyncio.sleep(0.05)

    def take(self) -> float:
        peak, self.peak = max(self.peak, self.now()), 0.0
        return peak


def child_pids() -> list[int]:
    """The bot's own child processes (the parser worker)."""
    pids: list[int] = []
    for children in Path("/proc/self/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids.extend(int(pid) for pid in children.read_text().split())
    return pids


async def serve_bot(config: dict[str, Any]) -> None:
    from bot.app import build_services
    from bot.logs import setup_logging
    from bot.runtime import Runtime
    from bot.telegram.factory import create_bot, response_types
    from bot.telegram.runners import make_runner

    tg = SimpleNamespace(token=config["token"], base_url=config["tg"], local_mode=False)
    llm = SimpleNamespace(provider="openai", base_url=config["llm"])
    settings = settings_for(tg, llm, Path(config["data_dir"]), **config["overrides"])  # type: ignore[arg-type]
    setup_logging(settings)
    services = await build_services(settings)
    runtime = Runtime()
    runtime.keep_alive(response_types())  # as `serve()` does
    runner = make_runner(settings, services, create_bot(settings), runtime)
    task = asyncio.create_task(runner.run())
    lag = LagMeter(config["trace_stalls_ms"])
    lag.start()
    tree = TreeMemory()
    sampling = asyncio.create_task(tree.run())
    collections = GcMeter()
    reader = await stdin_reader()
    profiler = cProfile.Profile() if config["profile"] else None
    phase, cpu, wall = "startup", time.process_time(), time.perf_counter()

    def report(name: str) -> None:
        samples = lag.take()
        pauses = collections.take()
        print(
            json.dumps(
                {
                    "phase": name,
                    "cpu_s": time.process_time() - cpu,
                    "wall_s": time.perf_counter() - wall,
                    "lag_max_ms": 1000 * max(samples, default=0.0),
                    "lag_p99_ms": 1000 * quantile(samples, 0.99),
                    "ticks": len(samples),
                    "full_gcs": len(pauses),
                    "full_gc_max_ms": 1000 * max(pauses, default=0.0),
                    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                    "rss_mib": memory_mib(),
                    "workers_peak_rss_mib": [memory_mib(p, "VmHWM") for p in child_pids()],
                    "tree_rss_mib": tree.now(),
                    "tree_peak_rss_mib": tree.take(),
                    "children_cpu_s": sum(tree.children_cpu.values()),
                }
            ),
            flush=True,
        )

    while line := (await reader.readline()).decode().strip():
        command, _, argument = line.partition(" ")
        report(phase)
        if profiler is not None and phase in ("load", "burst"):
            profiler.disable()
            profiler.dump_stats(config["profile"])
        phase, cpu, wall = argument, time.process_time(), time.perf_counter()
        if profiler is not None and phase in ("load", "burst"):
            profiler.enable()
        if command == "stop":
            break
    sampling.cancel()
    runner.stop()
    try:
        await asyncio.wait_for(task, timeout=30)
    finally:
        await services.aclose()


# ---- the users (this process) ------------------------------------------------------------


def quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def sales_csv(seed: int, rows: int = 48) -> bytes:
    rng = random.Random(seed)
    lines = ["region,month,revenue,units"]
    for n in range(rows):
        region = ("East", "West", "North", "South")[n % 4]
        lines.append(f"{region},2024-{n // 4 % 12 + 1:02d},{rng.randint(300, 2000)},{n % 9 + 1}")
    return ("\n".join(lines) + "\n").encode()


def big_csv(size: int) -> bytes:
    """About `size` bytes of CSV in Windows-1251 (Cyrillic text, so the bot re-encodes it)."""
    rng = random.Random(1)
    header = "дата;город;товар;количество;цена;сумма;комментарий\n"
    cities = ("Москва", "Казань", "Пермь", "Самара", "Омск", "Тула", "Сочи")
    goods = ("чай", "кофе", "сахар", "мука", "соль", "масло", "рис", "гречка")
    lines = [header]
    total = len(header.encode("cp1251"))
    day = 0
    while total < size:
        count, price = rng.randint(1, 50), rng.randint(30, 900)
        line = (
            f"2024-{day // 28 % 12 + 1:02d}-{day % 28 + 1:02d};{rng.choice(cities)};"
            f"{rng.choice(goods)};{count};{price},{rng.randint(0, 99):02d};{count * price};"
            f"заказ {rng.randint(10000, 99999)}\n"
        )
        lines.append(line)
        total += len(line)  # one byte per character in cp1251
        day += 1
    return "".join(lines).encode("cp1251")


@dataclass
class Watcher:
    """Follows the Telegram fake's requests; resolves "the first bot request to chat X
    after time T that matches" without each simulated user re-scanning everything."""

    tg: TelegramFake
    seen: int = 0
    pending: list[ApiCall] = field(default_factory=list)
    history: dict[int, list[ApiCall]] = field(default_factory=lambda: defaultdict(list))
    waiters: dict[int, list[tuple[float, Callable[[ApiCall], bool], asyncio.Future[float]]]] = (
        field(default_factory=lambda: defaultdict(list))
    )

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await self.tg.wait_for(lambda: len(self.tg.calls) > self.seen, timeout=0.05)
            fresh = self.tg.calls[self.seen :]
            self.seen += len(fresh)
            waiting = self.pending + fresh
            self.pending = []
            for call in waiting:
                if call.status is None:
                    self.pending.append(call)
                elif call.ok and call.method in SENDS | {"editMessageText"}:
                    self._record(call)

    def _record(self, call: ApiCall) -> None:
        chat_id = int(call.params.get("chat_id", 0))
        self.history[chat_id].append(call)
        keep = []
        for after, predicate, future in self.waiters[chat_id]:
            if future.done():
                continue
            if call.at >= after and predicate(call):
                future.set_result(call.at)
            else:
                keep.append((after, predicate, future))
        self.waiters[chat_id] = keep

    async def first(
        self, chat_id: int, after: float, predicate: Callable[[ApiCall], bool], timeout: float
    ) -> float:
        for call in self.history[chat_id]:
            if call.at >= after and predicate(call):
                return call.at
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters[chat_id].append((after, predicate, future))
        return await asyncio.wait_for(future, timeout)


def is_send(call: ApiCall) -> bool:
    return call.method in SENDS


def is_code_document(call: ApiCall) -> bool:
    """The analysis' last message: the code it ran, as a .py document."""
    return call.method == "sendDocument" and any(
        upload.filename.endswith(".py") for upload in call.files.values()
    )


class Child:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, *args: str, stderr: Any) -> Child:
        # Started with -c, so the bot's parser worker process (multiprocessing "spawn") does not
        # re-import this script, just as with `python -m bot`.
        boot = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "import bot_load; bot_load.cli(sys.argv[1:])"
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            boot,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
        return cls(process)

    @classmethod
    async def start_script(cls, script: str, *args: str, stderr: Any) -> Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            script,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
        return cls(process)

    async def line(self, timeout: float = 60) -> str:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not raw:
            raise RuntimeError(f"child {self.process.pid} exited ({self.process.returncode})")
        return raw.decode().strip()

    async def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        await self.process.stdin.drain()

    async def close(self, timeout: float = 60) -> str:
        assert self.process.stdin is not None
        self.process.stdin.close()
        out, _ = await asyncio.wait_for(self.process.communicate(), timeout)
        return out.decode()

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bot(Child):
    children_cpu = 0.0
    idle_tree_mib = 0.0  # the process tree's RSS when idle (after a warm-up)

    async def phase(self, name: str) -> dict[str, Any]:
        """End the current phase (its figures) and begin `name`."""
        await self.send(f"phase {name}")
        figures: dict[str, Any] = json.loads(await self.line())
        figures["children_cpu_delta_s"] = figures["children_cpu_s"] - self.children_cpu
        self.children_cpu = figures["children_cpu_s"]
        return figures

    async def stop(self) -> dict[str, Any]:
        await self.send("stop end")
        figures = json.loads(await self.line())
        await self.close()
        return figures


def ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"p50 {1000 * quantile(values, 0.5):7.0f} ms   p95 {1000 * quantile(values, 0.95):7.0f} ms"
        f"   max {1000 * max(values):7.0f} ms"
    )


def flood_limits(kind: str) -> FloodLimits:
    if kind == "off":
        return FloodLimits.off()
    if kind == "telegram":
        return FloodLimits()
    return FloodLimits(global_per_second=100_000, global_burst=100_000)


def print_bot(figures: dict[str, Any]) -> None:
    print(
        f"  bot process: CPU {figures['cpu_s']:.1f} s over {figures['wall_s']:.1f} s; "
        f"event-loop lag max {figures['lag_max_ms']:.0f} ms, p99 {figures['lag_p99_ms']:.0f} ms "
        f"({figures['ticks']} ticks of {TICK * 1000:.0f} ms); "
        f"RSS {figures['rss_mib']:.0f} MiB, peak {figures['peak_rss_mib']:.0f} MiB"
    )
    if figures["full_gcs"]:
        print(
            f"  full garbage collections: {figures['full_gcs']}, "
            f"longest {figures['full_gc_max_ms']:.0f} ms"
        )
    workers = figures["workers_peak_rss_mib"]
    if workers:
        peaks = ", ".join(f"{w:.0f}" for w in workers)
        print(f"  the bot's child processes (parser worker, its helper): peak RSS {peaks} MiB")


def print_flood(tg: TelegramFake, since: tuple[int, int]) -> None:
    refusals = len(tg.flood_refusals) - since[0]
    violations = len(tg.flood_violations) - since[1]
    print(f"  flood control: {refusals} refusals (429), {violations} violations")


@dataclass
class ChatTimes:
    upload: float  # upload → preview reply
    question: float  # question → progress message
    finished: float  # question → the analysis' last message


class Lost(Exception):
    """A reply the user never got (`stage`: preview, progress or delivery)."""

    def __init__(self, stage: str) -> None:
        super().__init__(stage)
        self.stage = stage


async def one_chat(
    tg: TelegramFake, watcher: Watcher, index: int, analysis_timeout: float = 60
) -> ChatTimes:
    """One user: upload, preview, question, analysis. Raises Lost if a reply never comes."""

    async def reply(
        stage: str, after: float, match: Callable[[ApiCall], bool], wait: float
    ) -> float:
        try:
            return await watcher.first(chat.id, after, match, timeout=wait)
        except TimeoutError:
            raise Lost(stage) from None

    person = tg.user(f"User{index}", language_code="ru" if index % 2 else "en")
    chat = tg.private_chat(person)
    sent = time.monotonic()
    tg.send_document(chat, person, f"sales_{index}.csv", sales_csv(index))
    preview = await reply("preview", sent, is_send, 60)
    asked = time.monotonic()
    tg.send_text(chat, person, "Which region sells most? Plot revenue by region.")
    progress = await reply("progress", asked, is_send, 60)
    done = await reply("delivery", asked, is_code_document, analysis_timeout)
    return ChatTimes(preview - sent, progress - asked, done - asked)


async def run_load(tg: TelegramFake, watcher: Watcher, bot: Bot, chats: int) -> None:
    await bot.phase("warm-up")
    first = await one_chat(tg, watcher, -1)
    cold = await bot.phase("load")
    print(
        f"Cold start (the first chat alone): upload → preview {1000 * first.upload:.0f} ms, "
        f"question → progress {1000 * first.question:.0f} ms, → delivered "
        f"{1000 * first.finished:.0f} ms; event-loop lag max {cold['lag_max_ms']:.0f} ms "
        "(first use of library code: imports, pydantic schemas)"
    )
    print()

    flood_before = (len(tg.flood_refusals), len(tg.flood_violations))
    calls_before = len(tg.calls)
    started = time.perf_counter()
    results = await asyncio.gather(
        *(one_chat(tg, watcher, i, 60 + chats / 2) for i in range(chats)),
        return_exceptions=True,
    )
    wall = time.perf_counter() - started
    figures = await bot.phase("idle")
    times = [r for r in results if isinstance(r, ChatTimes)]
    lost = Counter(
        r.stage if isinstance(r, Lost) else repr(r) for r in results if isinstance(r, BaseException)
    )

    print(f"Load: {chats} private chats at once, each uploads a CSV and asks one question")
    print(f"  first reaction to the upload (preview):      {ms([t.upload for t in times])}")
    print(f"  first reaction to the question (progress):   {ms([t.question for t in times])}")
    print(f"  question → analysis delivered:               {ms([t.finished for t in times])}")
    print(
        f"  {len(times)} analyses in {wall:.1f} s wall ({len(times) / wall:.1f} analyses/s "
        f"end to end)"
    )
    if lost:
        print(f"  chats that never got a reply: {dict(lost)}")
    print_bot(figures)
    print(f"  bot CPU per analysis: {1000 * figures['cpu_s'] / max(1, len(times)):.0f} ms")
    methods = Counter(call.method for call in tg.calls[calls_before:])
    per_chat = ", ".join(f"{name} {count / chats:.1f}" for name, count in methods.most_common())
    print(f"  Telegram requests per chat: {per_chat}")
    print_flood(tg, flood_before)


async def run_latency(tg: TelegramFake, watcher: Watcher, bot: Bot, count: int) -> None:
    """An idle bot: chats one after another (upload, question, analysis)."""
    await bot.phase("warm-up")
    await one_chat(tg, watcher, -1)  # the cold start: first use of library code
    warm = await bot.phase("latency")
    bot.idle_tree_mib = warm["tree_rss_mib"]
    times = [await one_chat(tg, watcher, 10_000 + i) for i in range(count)]
    figures = await bot.phase("idle")
    print(f"Idle bot: {count} chats one after another (upload, question, analysis)")
    print(f"  upload → preview:                 {ms([t.upload for t in times])}")
    print(
        f"  question → first progress message: {ms([t.question for t in times])}"
        "   (target p50 ≤ 100 ms, p95 ≤ 300 ms)"
    )
    print(f"  question → analysis delivered:     {ms([t.finished for t in times])}")
    print(f"  bot CPU per analysis (incl. upload and preview): {cpu_ms(figures, len(times))}")


def cpu_ms(figures: dict[str, Any], analyses: int) -> str:
    total = figures["cpu_s"] + figures.get("children_cpu_delta_s", 0.0)
    return f"{1000 * total / max(1, analyses):.0f} ms"


@dataclass
class Burst:
    asked: float
    progress: float  # the first progress message, as Telegram got it
    delivered: float


async def start_prober(
    tg: TelegramFake, watcher: Watcher, stop: asyncio.Event, tag: str, every: float = 0.25
) -> list[tuple[float, float]]:
    """New chats send /start, one every `every` seconds until `stop`: [(sent, latency)]."""
    latencies: list[tuple[float, float]] = []
    pending: list[asyncio.Task[None]] = []

    async def one(index: int) -> None:
        person = tg.user(f"{tag}{index}", language_code="en")
        chat = tg.private_chat(person)
        sent = time.monotonic()
        tg.send_text(chat, person, "/start")
        latencies.append((sent, await watcher.first(chat.id, sent, is_send, timeout=120) - sent))

    index = 0
    while not stop.is_set():
        pending.append(asyncio.create_task(one(index)))
        index += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
    await asyncio.gather(*pending, return_exceptions=True)
    return latencies


async def run_burst(
    tg: TelegramFake, watcher: Watcher, bot: Bot, chats: int, rate: float, concurrent: int
) -> dict[str, Any]:
    """`chats` chats with a file each ask a question in the same second, while other chats
    send /start: the scheduler's priorities and the overall rate limit at work."""
    people = [tg.user(f"Burst{i}", language_code="ru" if i % 2 else "en") for i in range(chats)]
    rooms = [tg.private_chat(p) for p in people]
    await bot.phase("uploads")

    async def upload(i: int) -> None:
        sent = time.monotonic()
        tg.send_document(rooms[i], people[i], f"sales_{i}.csv", sales_csv(i))
        await watcher.first(rooms[i].id, sent, is_send, timeout=120)

    await asyncio.gather(*(upload(i) for i in range(chats)))
    await asyncio.sleep(3)  # the previews' chat allowances refill
    uploaded = await bot.phase("burst")
    flood_before = (len(tg.flood_refusals), len(tg.flood_violations))
    calls_before = len(tg.calls)
    # Probes while the first progress messages go out, then (once they are out and the
    # probes' replies came) while the analyses stream.
    firsts_out = asyncio.Event()
    probing = asyncio.create_task(start_prober(tg, watcher, firsts_out, "ProbeA"))
    started = time.perf_counter()
    asked = []
    for person, chat in zip(people, rooms, strict=True):
        asked.append(time.monotonic())
        tg.send_text(chat, person, "Which region sells most? Plot revenue by region.")
    progressed = 0

    async def follow(i: int) -> Burst:
        nonlocal progressed
        chat_id = rooms[i].id
        try:
            progress = await watcher.first(chat_id, asked[i], is_send, timeout=300)
        finally:
            progressed += 1
            if progressed == chats:
                firsts_out.set()
        done = await watcher.first(chat_id, asked[i], is_code_document, timeout=600)
        return Burst(asked[i], progress, done)

    following = asyncio.gather(*(follow(i) for i in range(chats)), return_exceptions=True)
    await firsts_out.wait()
    during = [latency for _, latency in await probing]
    all_done = asyncio.Event()
    probing = asyncio.create_task(start_prober(tg, watcher, all_done, "ProbeB"))
    results = await following
    wall = time.perf_counter() - started
    all_done.set()
    streaming = [latency for _, latency in await probing]
    figures = await bot.phase("idle")
    bursts = [r for r in results if isinstance(r, Burst)]
    if not bot.idle_tree_mib:
        bot.idle_tree_mib = uploaded["tree_rss_mib"]
    lost = len(results) - len(bursts)

    firsts = sorted(b.progress for b in bursts)
    span = firsts[-1] - firsts[0] if len(firsts) > 1 else 0.0
    progress_ids = {
        id(c)
        for c in tg.calls[calls_before:]
        if c.ok and c.method == "sendMessage" and c.at in set(firsts)
    }
    last_first = firsts[-1] if firsts else 0.0
    burst_chats = {r.id for r in rooms}
    ahead = Counter(
        c.method
        for c in tg.calls[calls_before:]
        if c.ok
        and c.at <= last_first
        and "chat_id" in c.params
        and int(c.params["chat_id"]) in burst_chats
        and id(c) not in progress_ids
        and c.method != "sendChatAction"
    )
    print(
        f"Burst: {chats} chats ask in the same second (max_concurrent_analyses={concurrent}), "
        f"while a new chat sends /start every 0.25 s"
    )
    print(f"  question → first progress message: {ms([b.progress - b.asked for b in bursts])}")
    print(
        f"  first progress messages went out at {(len(firsts) - 1) / span if span else 0:.1f}/s "
        f"(overall limit TELEGRAM_MESSAGES_PER_SECOND={rate:g}; {len(firsts)} in {span:.2f} s); "
        f"other requests to these chats ahead of the last one: {dict(ahead) or 'none'}"
    )
    print(
        f"  /start in another chat while the first progress messages go out: {ms(during)} "
        f"({len(during)})"
    )
    print(
        f"  /start in another chat after that, while the analyses stream: {ms(streaming)} "
        f"({len(streaming)}; target p95 ≤ 1 s)"
    )
    print(
        f"  question → analysis delivered:     {ms([b.delivered - b.asked for b in bursts])}; "
        f"{len(bursts)} analyses in {wall:.1f} s wall"
        + (f"; {lost} never delivered" if lost else "")
    )
    sends = Counter(c.method for c in tg.calls[calls_before:] if c.ok and "chat_id" in c.params)
    total = sum(n for m, n in sends.items() if m != "sendChatAction")
    print(
        f"  Telegram requests to chats: {dict(sends.most_common())}; at {rate:g}/s the "
        f"{total} of them need at least {total / rate:.1f} s (the physical limit)"
    )
    print_bot(figures)
    peak = figures["tree_peak_rss_mib"]
    print(
        f"  the bot's process tree (incl. the parsing worker): peak RSS {peak:.0f} MiB, "
        f"{peak - bot.idle_tree_mib:.0f} MiB above idle ({bot.idle_tree_mib:.0f} MiB; target ≤ 40)"
    )
    print(f"  bot CPU per analysis (question → delivered): {cpu_ms(figures, len(bursts))}")
    print_flood(tg, flood_before)
    return figures


async def run_relay(llm_url: str, streams: int, bot_cpu_per_analysis: float | None) -> None:
    """The same Responses stream relayed by a minimal FastAPI SSE endpoint, `streams` at once."""
    import aiohttp

    relay = await Child.start_script(
        str(Path(__file__).parent / "sse_relay.py"), "--llm", llm_url, stderr=None
    )
    url = await relay.line()
    async with aiohttp.ClientSession() as http:

        async def one(i: int) -> int:
            events = 0
            params = {"q": f"Which region sells most? ({i})"}
            async with http.get(f"{url}/ask", params=params) as response:
                async for line in response.content:
                    events += line.startswith(b"data: ")
            return events

        await one(-1)  # warm-up
        before = relay.cpu_seconds()
        started = time.perf_counter()
        counts = await asyncio.gather(*(one(i) for i in range(streams)))
        wall = time.perf_counter() - started
        cpu = relay.cpu_seconds() - before
    await relay.close()
    per = cpu / streams
    print(
        f"Plain relay (benchmarks/sse_relay.py: FastAPI + uvicorn, the same SDK and stream): "
        f"{streams} streams at once, {sum(counts) / streams:.0f} events each, {wall:.1f} s wall"
    )
    line = f"  relay CPU per analysis: {1000 * per:.0f} ms"
    if bot_cpu_per_analysis is not None:
        line += (
            f"; the bot's: {1000 * bot_cpu_per_analysis:.0f} ms = "
            f"{bot_cpu_per_analysis / per:.2f} × the relay's (target ≤ 0.5)"
        )
    print(line)


async def start_wave(
    tg: TelegramFake, watcher: Watcher, count: int, window: float, tag: str
) -> list[tuple[float, float]]:
    """`count` new chats send /start, spread over `window` seconds: [(sent, latency)]."""
    people = [tg.user(f"{tag}{i}", language_code="en") for i in range(count)]
    results: list[tuple[float, float]] = []

    async def one(index: int) -> None:
        await asyncio.sleep(window * index / count)
        chat = tg.private_chat(people[index])
        sent = time.monotonic()
        tg.send_text(chat, people[index], "/start")
        results.append((sent, await watcher.first(chat.id, sent, is_send, timeout=60) - sent))

    await asyncio.gather(*(one(i) for i in range(count)))
    return results


async def run_upload(
    tg: TelegramFake, watcher: Watcher, bot: Bot, count: int, window: float, size: int
) -> None:
    flood_before = (len(tg.flood_refusals), len(tg.flood_violations))
    data = await asyncio.to_thread(big_csv, size)

    await bot.phase("start-alone")
    alone = [latency for _, latency in await start_wave(tg, watcher, count, window, "Solo")]
    figures_alone = await bot.phase("start-with-upload")

    owner = tg.user("BigFile", language_code="en")
    chat = tg.private_chat(owner)
    sent = time.monotonic()
    tg.send_document(chat, owner, "big_sales.csv", data, mime_type="text/csv")
    preview = asyncio.create_task(watcher.first(chat.id, sent, is_send, timeout=120))
    wave = await start_wave(tg, watcher, count, window, "Busy")
    preview_at = await preview
    figures_busy = await bot.phase("idle")
    during = [latency for at, latency in wave if sent <= at <= preview_at]
    busy = [latency for _, latency in wave]

    print(
        f"/start while a {len(data) / 1e6:.1f} MB CSV (Windows-1251) is uploaded: {count} chats "
        f"over {window:.1f} s"
    )
    print(f"  /start alone:                    {ms(alone)}")
    print(f"  /start with the upload:          {ms(busy)}")
    print(f"    of them during its processing: {ms(during)} ({len(during)} replies)")
    print(f"  upload → preview reply:          {preview_at - sent:.2f} s")
    print("  alone:")
    print_bot(figures_alone)
    print("  with the upload:")
    print_bot(figures_busy)
    print_flood(tg, flood_before)


async def main(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="bot-load-"))
    logs = data_dir / "bot.log"
    overrides = {
        "edit_interval_private": 1.0,
        "edit_interval_group": 3.0,
        "llm_max_retries": 3,
        "max_concurrent_analyses": args.concurrent,
        "telegram_messages_per_second": args.rate,
    }
    async with TelegramFake(bot_username=BOT_USERNAME, flood=flood_limits(args.flood)) as tg:
        llm = await Child.start(
            "--serve-llm", "--model-seconds", str(args.model_seconds), stderr=None
        )
        llm_url = await llm.line()
        config = {
            "token": tg.token,
            "tg": tg.base_url,
            "llm": llm_url,
            "data_dir": str(data_dir / "data"),
            "overrides": overrides,
            "trace_stalls_ms": args.trace_stalls_ms,
            "profile": args.profile,
        }
        with logs.open("w") as log_file:
            bot = await Bot.start("--serve-bot", json.dumps(config), stderr=log_file)
            watcher = Watcher(tg)
            watching = asyncio.create_task(watcher.run())
            try:
                await tg.wait_for(lambda: tg.polls, timeout=60)
                startup = await bot.phase("idle")
                print(
                    f"Bot started: RSS {startup['rss_mib']:.0f} MiB; "
                    f"turn = {EVENTS_PER_TURN} stream events incl. 2 code steps, a PNG and "
                    f"text, {args.model_seconds} s model pause; "
                    f"max_concurrent_analyses={args.concurrent}; "
                    f"flood limits: {args.flood}; Python {sys.version.split()[0]}, "
                    f"{os.cpu_count()} CPUs"
                )
                print()
                bot_cpu = None
                if args.mode in ("all", "latency"):
                    await run_latency(tg, watcher, bot, args.latency_chats)
                    print()
                if args.mode in ("all", "burst"):
                    burst = await run_burst(
                        tg, watcher, bot, args.chats, args.rate, args.concurrent
                    )
                    bot_cpu = (burst["cpu_s"] + burst["children_cpu_delta_s"]) / args.chats
                    print()
                if args.mode in ("all", "burst", "relay"):
                    await run_relay(llm_url, args.chats, bot_cpu)
                    print()
                if args.mode == "load":
                    await run_load(tg, watcher, bot, args.chats)
                    print()
                if args.mode in ("all", "upload"):
                    size = int(args.upload_mb * 1_000_000)
                    await run_upload(tg, watcher, bot, args.start_chats, args.window, size)
                    print()
                final = await bot.stop()
                print(
                    f"Bot peak RSS over the whole run: {final['peak_rss_mib']:.0f} MiB "
                    f"(ru_maxrss); Responses fake CPU {llm.cpu_seconds():.1f} s"
                )
            finally:
                watching.cancel()
                if bot.process.returncode is None:
                    bot.process.kill()
                    await bot.process.wait()
        summary = json.loads((await llm.close()).strip().splitlines()[-1])
        print(
            f"Responses fake: {summary['responses']} responses, {summary['uploads']} uploads, "
            f"errors: {summary['errors'] or 'none'}; bot log: {logs}"
        )
        unhandled = sorted(set(tg.unhandled_methods))
        if unhandled:
            print(f"Telegram methods the fake does not model: {unhandled}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=200, help="chats in the load test")
    parser.add_argument("--start-chats", type=int, default=100, help="chats sending /start")
    parser.add_argument("--window", type=float, default=2.0, help="seconds to spread /start over")
    parser.add_argument("--upload-mb", type=float, default=20.0, help="big CSV size, MB")
    parser.add_argument("--model-seconds", type=float, default=0.25, help="model pause per turn")
    parser.add_argument("--flood", choices=("relaxed", "telegram", "off"), default="telegram")
    parser.add_argument(
        "--mode",
        choices=("all", "latency", "burst", "relay", "load", "upload"),
        default="all",
        help="all = latency, burst, relay (side by side with the burst) and upload",
    )
    parser.add_argument(
        "--latency-chats", type=int, default=20, help="chats one after another on an idle bot"
    )
    parser.add_argument(
        "--concurrent", type=int, default=200, help="max_concurrent_analyses (all stream)"
    )
    parser.add_argument(
        "--rate", type=float, default=25.0, help="the bot's TELEGRAM_MESSAGES_PER_SECOND"
    )
    parser.add_argument(
        "--trace-stalls-ms",
        type=float,
        default=0,
        help="log the bot's stack (to its log) whenever its event loop stalls this long",
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile the bot during the load")
    parser.add_argument("--serve-llm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-bot", metavar="CONFIG", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def cli(argv: list[str] | None = None) -> None:
    arguments = parse_args(argv)
    if arguments.serve_llm:
        asyncio.run(serve_llm(arguments.model_seconds))
    elif arguments.serve_bot:
        asyncio.run(serve_bot(json.loads(arguments.serve_bot)))
    else:
        asyncio.run(main(arguments))


if __name__ == "__main__":
    cli()
