"""Several instances on one Redis (REDIS_URL): each instance is its own `build_services` (own
Redis connections, engine, files service), as two bot processes would be. They share the
analysis slots (MAX_CONCURRENT_ANALYSES for the whole deployment, one FIFO queue with the
positions users see) and a chat's upload caps. A slot held by a process that dies is
freed when its lease lapses (a real process, killed)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import SHARED_PREFIX, Services, build_services
from bot.engine import Queued, TurnFailed, TurnFinished, TurnRequest
from bot.services.files import FileRejected, RejectReason
from tests.engine.conftest import collect, make_data_file, started
from tests.fakes.responses_api import ResponsesFake, Scenario
from tests.services.conftest import service_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def instances(llm: ResponsesFake, redis_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    made: list[Services] = []

    async def make(**overrides: Any) -> Services:
        values = {"data_dir": tmp_path / "data", "redis_url": redis_url} | overrides
        services = await build_services(service_settings(llm, **values))
        made.append(services)
        return services

    yield make
    for services in made:
        await services.aclose()


def positions(events: list[Any]) -> list[int]:
    return [e.position for e in events if isinstance(e, Queued)]


async def until(condition: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polling state nothing signals
            await asyncio.sleep(0.02)


async def test_one_limit_and_one_fifo_queue_for_the_whole_deployment(
    instances: Any, llm: ResponsesFake, tmp_path: Path
) -> None:
    one = await instances(max_concurrent_analyses=1)
    two = await instances(max_concurrent_analyses=1)
    gate = asyncio.Event()
    llm.enqueue(
        Scenario().text("A").stall(after=2, gate=gate), Scenario().text("B"), Scenario().text("C")
    )
    data = make_data_file(tmp_path)

    run_a = one.engine.run(TurnRequest("A", [data]))
    events_a = await started(run_a)
    b_events: list[Any] = []

    async def run_b() -> list[Any]:
        async for event in two.engine.run(TurnRequest("B", [data])):
            b_events.append(event)
        return b_events

    task_b = asyncio.create_task(run_b())  # on the other instance: it must wait for A
    await until(lambda: positions(b_events) == [1])
    task_c = asyncio.create_task(collect(one.engine.run(TurnRequest("C", [data]))))
    await until(lambda: one.engine.queued == 2)
    await asyncio.sleep(0.5)  # time enough for a wrongly free slot to be taken
    assert [r.json["input"] for r in llm.response_requests()] == ["A"]

    gate.set()
    events_a += await collect(run_a)
    events_b, events_c = await task_b, await task_c

    assert positions(events_a) == []
    assert positions(events_b) == [1]
    assert positions(events_c) == [2, 1]
    for events in (events_a, events_b, events_c):
        assert isinstance(events[-1], TurnFinished)
    assert [r.json["input"] for r in llm.response_requests()] == ["A", "B", "C"]


async def test_cancel_while_queued_leaves_the_shared_queue(
    instances: Any, llm: ResponsesFake, tmp_path: Path
) -> None:
    one = await instances(max_concurrent_analyses=1)
    two = await instances(max_concurrent_analyses=1)
    gate = asyncio.Event()
    llm.enqueue(Scenario().text("A").stall(after=2, gate=gate), Scenario().text("C"))
    data = make_data_file(tmp_path)
    run_a = one.engine.run(TurnRequest("A", [data]))
    await started(run_a)
    run_b = two.engine.run(TurnRequest("B", [data]))
    task_b = asyncio.create_task(collect(run_b))
    await until(lambda: two.engine.queued == 1)
    c_events: list[Any] = []

    async def run_c() -> list[Any]:
        async for event in one.engine.run(TurnRequest("C", [data])):
            c_events.append(event)
        return c_events

    task_c = asyncio.create_task(run_c())
    await until(lambda: positions(c_events) == [2])

    run_b.cancel("user cancelled")
    events_b = await task_b
    await until(lambda: positions(c_events) == [2, 1])  # C moved up: B left the queue
    gate.set()
    await collect(run_a)
    events_c = await task_c

    assert isinstance(events_b[-1], TurnFailed)
    assert isinstance(events_c[-1], TurnFinished)
    assert [r.json["input"] for r in llm.response_requests()] == ["A", "C"]


HOLDER = """
import asyncio, sys
import redis.asyncio as aioredis
from bot.storage.redis_limits import RedisSemaphore

async def main():
    client = aioredis.Redis.from_url(sys.argv[1])
    slots = RedisSemaphore(client, sys.argv[2], 1, lease=float(sys.argv[3]))
    await slots.acquire()
    print("held", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_dead_instances_slot_is_freed(
    instances: Any, llm: ResponsesFake, redis_url: str, tmp_path: Path
) -> None:
    """Another bot process holds the only slot and is killed (no chance to give it back):
    the queued analysis here starts once that process's lease lapses."""
    lease = 1.5
    here = await instances(max_concurrent_analyses=1, shared_lease_seconds=lease)
    account = f"openai:{llm.base_url}"
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        redis_url,
        f"{SHARED_PREFIX}sem:analyses:{account}",
        str(lease),
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"held\n"
        llm.enqueue(Scenario().text("after the crash"))
        events: list[Any] = []

        async def run() -> None:
            async for event in here.engine.run(TurnRequest("Q", [make_data_file(tmp_path)])):
                events.append(event)

        task = asyncio.create_task(run())
        await until(lambda: positions(events) == [1])
        await asyncio.sleep(lease * 2)  # the holder renews: the slot stays taken
        assert llm.response_requests() == []
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
        await asyncio.wait_for(task, 20)
        assert isinstance(events[-1], TurnFinished)
        assert events[-1].result.text == "after the crash"
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


def table(n: int) -> bytes:
    return f"region,revenue\nEast,{n}\nWest,{n + 1}\n".encode()


async def test_uploads_on_two_instances_never_exceed_the_caps(
    instances: Any, tmp_path: Path
) -> None:
    one = await instances(max_files_per_chat=3)
    two = await instances(max_files_per_chat=3)
    chat = 77

    async def upload(services: Services, n: int) -> str:
        temp = services.files.new_temp_path(chat)
        temp.parent.mkdir(parents=True, exist_ok=True)
        temp.write_bytes(table(n))
        try:
            added = await services.files.add_upload(chat, f"t{n}.csv", temp)
        except FileRejected as error:
            return error.reason.value
        return "duplicate" if added.duplicate else "added"

    outcomes = await asyncio.gather(*(upload((one, two)[n % 2], n) for n in range(10)))

    assert outcomes.count("added") == 3
    assert outcomes.count(RejectReason.TOO_MANY_FILES.value) == 7
    for services in (one, two):
        files = await services.files.list_files(chat)
        assert len(files) == 3
    sent = {table(n) for n in range(10)}
    contents = await asyncio.to_thread(lambda: [Path(f.path).read_bytes() for f in files])
    assert all(c in sent for c in contents)  # every accepted file is on the shared disk
    folder = Path(files[0].path).parent
    on_disk = await asyncio.to_thread(lambda: {p.name for p in folder.iterdir() if p.is_file()})
    assert on_disk == {Path(f.path).name for f in files}  # refused ones left nothing behind


async def test_the_same_file_on_two_instances_is_added_once(instances: Any, tmp_path: Path) -> None:
    one = await instances()
    two = await instances()
    chat = 78

    async def upload(services: Services) -> bool:
        temp = services.files.new_temp_path(chat)
        temp.parent.mkdir(parents=True, exist_ok=True)
        temp.write_bytes(table(1))
        return (await services.files.add_upload(chat, "same.csv", temp)).duplicate

    duplicates = await asyncio.gather(*(upload(s) for s in (one, two, one, two)))

    assert sorted(duplicates) == [False, True, True, True]
    assert len(await two.files.list_files(chat)) == 1
