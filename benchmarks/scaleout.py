"""Benchmark: several bot instances on one Redis, in webhook mode behind a load balancer.

Three bot processes (the real bot: services on Redis, aiogram webhook, AsyncOpenAI) share a
real redis-server, so they share the overall Telegram budget, MAX_CONCURRENT_ANALYSES (3 for
the whole deployment, one FIFO queue), the chats' upload caps and a lock per chat for sends.
This process runs the loopback Telegram fake with Telegram's limits (about one message a
second per private chat with short bursts, 30 a second overall), a round-robin load balancer
in front of the three webhooks (the fake POSTs every update to it, as Telegram would to a
reverse proxy), and plays the users; the Responses API fake (the model) is a child process.

Load (``--chats N``, default 200): every chat uploads a small CSV, waits for the preview and
asks one question, so a chat's upload and question usually reach different instances. The
model answers each with 49 stream events (two code steps, a ``--model-seconds`` pause, a PNG
and a text answer). Measured: 429 answers from the fake (target 0) and flood violations; lost
and duplicated answers (each chat must get exactly one analysis, target 0); queue fairness —
the order in which analyses got a slot (the order the model saw them) against the order the
questions arrived: mean and largest displacement in places, and the share of pairs served out
of order; throughput (analyses a second) and the bots' CPU per analysis (the three processes
summed).

Run:  .venv/bin/python benchmarks/scaleout.py [--chats 200] [--instances 3]
      [--model-seconds 0.25] [--max-concurrent 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from bot_load import (  # noqa: E402
    EVENTS_PER_TURN,
    Watcher,
    answer_scenario,
    is_code_document,
    is_send,
    quantile,
    sales_csv,
    stdin_reader,
)

from tests.bot.harness import BOT_USERNAME, png, settings_for  # noqa: E402
from tests.fakes.responses_api import running_responses_fake  # noqa: E402
from tests.fakes.telegram_api import FloodLimits, TelegramFake  # noqa: E402
from tests.fixtures.redis_server import start_redis_server, stop_redis_server  # noqa: E402

SECRET = "scaleout-Secret_1"


# ---- children: the model and the bots --------------------------------------------------------


async def serve_llm(model_seconds: float) -> None:
    chart = png(800, 500)
    async with running_responses_fake("openai") as fake:
        fake.default_scenario = lambda body: answer_scenario(chart, model_seconds)
        print(fake.base_url, flush=True)
        await (await stdin_reader()).read()  # until EOF
        summary = {"responses": len(fake.response_requests()), "errors": fake.errors[:5]}
        print(json.dumps(summary), flush=True)


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
    runner = make_runner(settings, services, create_bot(settings, services.shared), Runtime())
    task = asyncio.create_task(runner.run())

    def dump_tasks() -> None:  # kill -USR1 <bot pid>: every task's stack into the bot's log
        for each in asyncio.all_tasks():
            each.print_stack(limit=12, file=sys.stderr)
        sys.stderr.flush()

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)
    reader = await stdin_reader()
    cpu, wall = time.process_time(), time.perf_counter()
    while line := (await reader.readline()).decode().strip():
        print(
            json.dumps({"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}),
            flush=True,
        )
        cpu, wall = time.process_time(), time.perf_counter()
        if line == "stop":
            break
    runner.stop()
    try:
        await asyncio.wait_for(task, timeout=30)
    finally:
        await services.aclose()


class Child:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, *args: str, stderr: Any = None) -> Child:
        boot = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "import scaleout; scaleout.cli(sys.argv[1:])"
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

    async def line(self, timeout: float = 120) -> str:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not raw:
            raise RuntimeError(f"child {self.process.pid} exited ({self.process.returncode})")
        return raw.decode().strip()

    async def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        await self.process.stdin.drain()

    async def figures(self, command: str = "phase") -> dict[str, Any]:
        await self.send(command)
        return json.loads(await self.line())

    async def close(self, timeout: float = 60) -> str:
        assert self.process.stdin is not None
        self.process.stdin.close()
        out, _ = await asyncio.wait_for(self.process.communicate(), timeout)
        return out.decode()


# ---- the load balancer -----------------------------------------------------------------------


class RoundRobin:
    """Forwards every request to the next instance in turn (what the reverse proxy does)."""

    def __init__(self, ports: list[int]) -> None:
        self.targets = itertools.cycle(ports)
        self.count: Counter[int] = Counter()
        self.port = 0
        self._client: ClientSession | None = None
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self._client is not None
        port = next(self.targets)
        self.count[port] += 1
        url = f"http://127.0.0.1:{port}{request.rel_url}"
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self._client.request(
            request.method, url, data=await request.read(), headers=headers
        ) as response:
            body = await response.read()
            return web.Response(
                status=response.status,
                body=body,
                content_type=response.content_type,
            )

    async def start(self) -> None:
        self._client = ClientSession(timeout=ClientTimeout(total=60))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the users -------------------------------------------------------------------------------


class Chats:
    def __init__(self, tg: TelegramFake, watcher: Watcher) -> None:
        self.tg = tg
        self.watcher = watcher
        self.asked: list[tuple[float, int]] = []  # (when, chat index) the question went in
        self.outcome: dict[int, str] = {}
        self.chat_ids: dict[int, int] = {}

    async def one(self, index: int, timeout: float) -> None:
        tg = self.tg
        person = tg.user(f"User{index}", language_code="ru" if index % 2 else "en")
        chat = tg.private_chat(person)
        self.chat_ids[index] = chat.id
        sent = time.monotonic()
        tg.send_document(chat, person, f"sales_{index}.csv", sales_csv(index))
        try:
            await self.watcher.first(chat.id, sent, is_send, timeout=timeout)
        except TimeoutError:
            self.outcome[index] = "no preview"
            return
        asked = time.monotonic()
        self.asked.append((asked, index))
        tg.send_text(chat, person, f"Which region sells most? Plot revenue by region. (#{index})")
        try:
            await self.watcher.first(chat.id, asked, is_code_document, timeout=timeout)
        except TimeoutError:
            self.outcome[index] = "no answer"
            return
        self.outcome[index] = "answered"


LOG_LINE = re.compile(
    r"^(\S+ \S+) INFO bot\.engine\.engine: turn \w+ chat=(-?\d+) (started|queued at)"
)


def turn_times(paths: list[Path]) -> dict[int, tuple[str, str]]:
    """chat id -> (when its turn joined the shared queue, when it got a slot), from the bots'
    logs (one clock: the processes share the machine; millisecond timestamps)."""
    joined: dict[int, str] = {}
    started: dict[int, str] = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            found = LOG_LINE.match(line)
            if found is None:
                continue
            chat = int(found[2])
            joined.setdefault(chat, found[1])
            if found[3] == "started":
                started[chat] = found[1]
    return {chat: (joined[chat], at) for chat, at in started.items()}


def displacement(arrival: list[int], served: list[int]) -> tuple[float, int, float]:
    """Mean and largest |served place - arrival place|, and the share of pairs out of order."""
    place = {chat: n for n, chat in enumerate(arrival)}
    ranks = [place[c] for c in served if c in place]
    moves = [abs(n - r) for n, r in enumerate(ranks)]
    pairs = len(ranks) * (len(ranks) - 1) // 2
    inverted = sum(
        1 for i, j in itertools.combinations(range(len(ranks)), 2) if ranks[i] > ranks[j]
    )
    return (
        sum(moves) / max(1, len(moves)),
        max(moves, default=0),
        inverted / max(1, pairs),
    )


async def main(args: argparse.Namespace) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is needed (apt-get install redis-server)")
    workdir = Path(tempfile.mkdtemp(prefix="scaleout-"))
    redis = await asyncio.to_thread(start_redis_server, binary, workdir)
    balancer: RoundRobin | None = None
    bots: list[Child] = []
    logs = []
    try:
        async with TelegramFake(bot_username=BOT_USERNAME, flood=FloodLimits()) as tg:
            llm = await Child.start("--serve-llm", "--model-seconds", str(args.model_seconds))
            llm_url = await llm.line()
            ports = [free_port() for _ in range(args.instances)]
            balancer = RoundRobin(ports)
            await balancer.start()
            for n, port in enumerate(ports):
                config = {
                    "token": tg.token,
                    "tg": tg.base_url,
                    "llm": llm_url,
                    "data_dir": str(workdir / "data"),  # the shared volume
                    "overrides": {
                        "redis_url": redis.url,
                        "webhook_url": f"http://127.0.0.1:{balancer.port}/telegram/hook",
                        "webhook_secret": SECRET,
                        "webhook_host": "127.0.0.1",
                        "webhook_port": port,
                        "max_concurrent_analyses": args.max_concurrent,
                        "edit_interval_private": 1.0,
                        "llm_max_retries": 3,
                        "daily_user_quota": 1000,
                        "daily_chat_quota": 1000,
                    },
                }
                log = (workdir / f"bot{n}.log").open("w")
                logs.append(log)
                bots.append(await Child.start("--serve-bot", json.dumps(config), stderr=log))
            await tg.wait_for(lambda: len(tg.calls_of("setWebhook")) >= len(bots), timeout=120)
            await asyncio.sleep(1)
            watcher = Watcher(tg)
            watching = asyncio.create_task(watcher.run())
            chats = Chats(tg, watcher)
            try:
                # Warm-up: each instance's first use of library code (not measured).
                await asyncio.gather(*(chats.one(-1 - n, 120) for n in range(len(bots))))
                for bot in bots:
                    await bot.figures()
                refusals, violations = len(tg.flood_refusals), len(tg.flood_violations)
                calls_before = len(tg.calls)
                chats.asked.clear()
                started = time.perf_counter()
                await asyncio.gather(
                    *(chats.one(i, 120 + args.chats * 2.0) for i in range(args.chats))
                )
                wall = time.perf_counter() - started
                load = [await bot.figures() for bot in bots]
                methods = Counter(call.method for call in tg.calls[calls_before:])
                refusals = len(tg.flood_refusals) - refusals
                violations = len(tg.flood_violations) - violations
                documents = Counter(
                    int(call.params.get("chat_id", 0))
                    for call in tg.calls
                    if call.ok and is_code_document(call)
                )
                per_chat = [documents[chats.chat_ids[i]] for i in range(args.chats)]
            finally:
                watching.cancel()
                for bot in bots:
                    with contextlib.suppress(Exception):
                        await bot.figures("stop")
                        await bot.close()
            summary = json.loads((await llm.close()).strip().splitlines()[-1])
    finally:
        if balancer is not None:
            await balancer.stop()
        for bot in bots:
            if bot.process.returncode is None:
                bot.process.kill()
                await bot.process.wait()
        for log in logs:
            log.close()
        await asyncio.to_thread(stop_redis_server, redis.process)

    arrival = [index for _, index in sorted(chats.asked)]
    index_of = {chat: index for index, chat in chats.chat_ids.items() if index >= 0}
    times = {
        index_of[chat]: both
        for chat, both in turn_times([workdir / f"bot{n}.log" for n in range(len(bots))]).items()
        if chat in index_of
    }
    served = sorted(times, key=lambda index: (times[index][1], arrival.index(index)))
    joined = sorted(times, key=lambda index: (times[index][0], arrival.index(index)))
    mean_move, max_move, inverted = displacement(arrival, served)
    queue_mean, queue_max, queue_inverted = displacement(joined, served)
    answered = sum(1 for n in per_chat if n >= 1)
    cpu = sum(f["cpu_s"] for f in load)
    print(
        f"{args.instances} webhook instances on one redis-server behind a round-robin balancer; "
        f"{args.chats} private chats; MAX_CONCURRENT_ANALYSES={args.max_concurrent} for the "
        f"deployment; turn = {EVENTS_PER_TURN} stream events, {args.model_seconds} s model "
        f"pause; Telegram limits on (1/s per chat with bursts, 30/s overall); "
        f"{os.cpu_count()} CPUs shared by everything"
    )
    print(f"  updates per instance (balancer): {sorted(balancer.count.values())}")
    print(f"  429 answers: {refusals}; flood violations: {violations}")
    print(
        f"  answers: {answered}/{args.chats} chats answered; lost {args.chats - answered}; "
        f"duplicated {sum(1 for n in per_chat if n > 1)}; "
        f"outcomes {dict(Counter(v for k, v in chats.outcome.items() if k >= 0))}"
    )
    print(
        f"  fairness, {len(served)} analyses: order of getting a slot vs order the questions "
        f"reached Telegram: mean displacement {mean_move:.1f} places, largest {max_move}, "
        f"pairs out of order {100 * inverted:.1f} %"
    )
    print(
        f"    the shared queue alone (slot order vs order of joining it, any instance): "
        f"mean {queue_mean:.1f} places, largest {queue_max}, pairs out of order "
        f"{100 * queue_inverted:.1f} % (ties within a millisecond count as in order)"
    )
    print(
        f"  throughput: {answered / wall:.2f} analyses/s ({wall:.1f} s wall); bots' CPU "
        f"{cpu:.1f} s = {1000 * cpu / max(1, answered):.0f} ms per analysis "
        f"(per instance: {', '.join(format(f['cpu_s'], '.1f') for f in load)} s)"
    )
    to_chats = sum(n for name, n in methods.items() if name not in ("getFile", "getMe"))
    common = ", ".join(f"{name} {n / args.chats:.1f}" for name, n in methods.most_common(6))
    print(f"  Telegram requests: {to_chats / wall:.1f}/s to chats over the run; per chat: {common}")
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(sorted(chats.asked))]
    print(
        f"  questions arrived over {sum(gaps):.1f} s (median gap {1000 * quantile(gaps, 0.5):.0f} "
        f"ms); model errors: {summary['errors'] or 'none'}; logs in {workdir}"
    )


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--model-seconds", type=float, default=0.25)
    parser.add_argument("--max-concurrent", type=int, default=3)
    parser.add_argument("--serve-llm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-bot", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_llm:
        asyncio.run(serve_llm(args.model_seconds))
    elif args.serve_bot:
        asyncio.run(serve_bot(json.loads(args.serve_bot)))
    else:
        asyncio.run(main(args))


if __name__ == "__main__":
    cli()
