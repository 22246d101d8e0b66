"""The global limit on simultaneous turns: FIFO order and queue positions."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.engine import (
    FailureReason,
    Queued,
    TurnFailed,
    TurnFinished,
    TurnLimiter,
    TurnRequest,
)
from tests.engine.conftest import EngineFactory, collect, make_data_file, started, until
from tests.fakes.responses_api import ResponsesFake, Scenario


async def test_turns_wait_in_fifo_order_and_see_their_positions(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    gate = asyncio.Event()
    openai_fake.enqueue(
        Scenario().text("A").stall(after=2, gate=gate), Scenario().text("B"), Scenario().text("C")
    )
    engine = make_engine(openai_fake, max_concurrent=1)
    data_file = make_data_file(tmp_path)

    run_a = engine.run(TurnRequest("A", [data_file]))
    events_a = await started(run_a)
    task_b = asyncio.create_task(collect(engine.run(TurnRequest("B", [data_file]))))
    await until(lambda: engine.queued == 1)
    task_c = asyncio.create_task(collect(engine.run(TurnRequest("C", [data_file]))))
    await until(lambda: engine.queued == 2)
    assert engine.busy == 1

    gate.set()
    events_a += await collect(run_a)
    events_b, events_c = await task_b, await task_c

    assert not any(isinstance(e, Queued) for e in events_a)
    assert [e.position for e in events_b if isinstance(e, Queued)] == [1]
    assert [e.position for e in events_c if isinstance(e, Queued)] == [2, 1]
    for events, answer in ((events_a, "A"), (events_b, "B"), (events_c, "C")):
        assert isinstance(events[-1], TurnFinished)
        assert events[-1].result.text == answer
    assert [r.json["input"] for r in openai_fake.response_requests()] == ["A", "B", "C"]
    assert engine.busy == 0
    assert engine.queued == 0


async def test_cancel_while_queued_leaves_the_queue(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    gate = asyncio.Event()
    openai_fake.enqueue(Scenario().text("A").stall(after=2, gate=gate), Scenario().text("C"))
    engine = make_engine(openai_fake, max_concurrent=1)
    data_file = make_data_file(tmp_path)
    run_a = engine.run(TurnRequest("A", [data_file]))
    await started(run_a)
    run_b = engine.run(TurnRequest("B", [data_file]))
    task_b = asyncio.create_task(collect(run_b))
    await until(lambda: engine.queued == 1)
    task_c = asyncio.create_task(collect(engine.run(TurnRequest("C", [data_file]))))
    await until(lambda: engine.queued == 2)

    run_b.cancel()
    events_b = await task_b
    assert [type(e) for e in events_b] == [Queued, TurnFailed]
    assert events_b[-1].reason is FailureReason.CANCELLED
    assert engine.queued == 1

    gate.set()
    await collect(run_a)
    events_c = await task_c
    assert [e.position for e in events_c if isinstance(e, Queued)] == [2, 1]
    assert [r.json["input"] for r in openai_fake.response_requests()] == ["A", "C"]


async def test_limiter_hands_slots_over_in_order() -> None:
    limiter = TurnLimiter(2)
    await limiter.acquire()
    await limiter.acquire()
    positions: dict[str, list[int]] = {"x": [], "y": []}
    order: list[str] = []

    async def wait(name: str) -> None:
        await limiter.acquire(positions[name].append)
        order.append(name)

    x = asyncio.create_task(wait("x"))
    await until(lambda: limiter.queued == 1)
    y = asyncio.create_task(wait("y"))
    await until(lambda: limiter.queued == 2)
    limiter.release()
    await x
    assert order == ["x"]
    assert positions == {"x": [1], "y": [2, 1]}
    limiter.release()
    await y
    assert order == ["x", "y"]
    assert limiter.running == 2
    assert limiter.queued == 0
