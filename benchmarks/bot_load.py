"""Benchmark: does the bot stay responsive with hundreds of chats?

The real bot (services, SQLite, aiogram long polling, AsyncOpenAI; production logging and edit
intervals) runs in its own process against the loopback Telegram fake (in this process, which
also plays the users) and the Responses API fake (a third process). So the bot's figures —
peak RSS, CPU time, event-loop lag — are its own; all three share this machine's cores.

Load (``--chats N``, default 200): after one warm-up chat (the cold start: first use of
library code), every chat at once uploads a small CSV, waits for the preview and asks a
question. The model answers each with 49 stream events: two code steps, a pause of
``--model-seconds`` ("thinking"), a PNG chart and a text answer. With
``max_concurrent_analyses`` at its default (3) most analyses queue. Measured: time from a
user's message to the bot's first reaction (the preview reply to the upload; the progress
message to the question — it shows the queue position while waiting), to the end of each
analysis (its last message), wall time and analyses per second, the bot's peak RSS, CPU time,
event-loop lag (a ticker's worst scheduling delay), full garbage collections, and the fake's
flood-control records.

Big upload (``--start-chats N``, default 100): N chats send /start, spread over
``--window`` seconds, once alone and once while another chat uploads a ``--upload-mb`` MB
CSV (Windows-1251, so the bot also re-encodes it). Parsing and re-encoding run off the
event loop, so /start should answer about as fast as without the upload.

Flood limits on the Telegram fake (``--flood``): ``relaxed`` (default) keeps Telegram's
per-chat limits but lifts the global 30 messages/s, which is not the point here; ``telegram``
keeps everything; ``off`` disables flood control.

Finding what blocks the loop: ``--trace-stalls-ms 80`` logs the bot's stack to its log
whenever the loop stalls that long; ``--profile FILE`` writes a cProfile of the load phase.

Run:  .venv/bin/python benchmarks/bot_load.py [--chats 200] [--start-chats 100]
      [--upload-mb 20] [--model-seconds 0.25] [--flood relaxed|telegram|off]
      [--mode all|load|upload] [--trace-stalls-ms MS] [--profile FILE]
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
    from bot.telegram.factory import create_bot
    from bot.telegram.runners import make_runner

    tg = SimpleNamespace(token=config["token"], base_url=config["tg"], local_mode=False)
    llm = SimpleNamespace(provider="openai", base_url=config["llm"])
    settings = settings_for(tg, llm, Path(config["data_dir"]), **config["overrides"])  # type: ignore[arg-type]
    setup_logging(settings)
    services = await build_services(settings)
    runner = make_runner(settings, services, create_bot(settings), Runtime())
    task = asyncio.create_task(runner.run())
    lag = LagMeter(config["trace_stalls_ms"])
    lag.start()
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
                }
            ),
            flush=True,
        )

    while line := (await reader.readline()).decode().strip():
        command, _, argument = line.partition(" ")
        report(phase)
        if profiler is not None and phase == "load":
            profiler.disable()
            profiler.dump_stats(config["profile"])
        phase, cpu, wall = argument, time.process_time(), time.perf_counter()
        if profiler is not None and phase == "load":
            profiler.enable()
        if command == "stop":
            break
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
    async def phase(self, name: str) -> dict[str, Any]:
        """End the current phase (its figures) and begin `name`."""
        await self.send(f"phase {name}")
        return json.loads(await self.line())

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
    overrides = {"edit_interval_private": 1.0, "edit_interval_group": 3.0, "llm_max_retries": 3}
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
                    f"text, {args.model_seconds} s model pause; max_concurrent_analyses=3; "
                    f"flood limits: {args.flood}; Python {sys.version.split()[0]}, "
                    f"{os.cpu_count()} CPUs"
                )
                print()
                if args.mode in ("all", "load"):
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
    parser.add_argument("--flood", choices=("relaxed", "telegram", "off"), default="relaxed")
    parser.add_argument("--mode", choices=("all", "load", "upload"), default="all")
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
