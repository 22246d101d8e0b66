"""A long queue: positions far back are reported in steps, the last places exactly."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from bot.engine import Queued, TurnFinished, TurnRequest
from tests.engine.conftest import EngineFactory, collect, make_data_file, started, until
from tests.fakes.responses_api import ResponsesFake, Scenario


async def test_a_turn_far_back_sees_its_position_fall_in_small_steps(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    gate = asyncio.Event()
    openai_fake.enqueue(Scenario().text("first").stall(after=2, gate=gate))
    openai_fake.default_scenario = Scenario().text("ok")
    engine = make_engine(openai_fake, max_concurrent=1)
    data_file = make_data_file(tmp_path)

    first = engine.run(TurnRequest("first", [data_file]))
    await started(first)
    waiting = []
    for number in range(40):
        waiting.append(
            asyncio.create_task(collect(engine.run(TurnRequest(f"q{number}", [data_file]))))
        )
        await until(lambda n=number: engine.queued == n + 1)
    gate.set()
    await collect(first)
    results = await asyncio.gather(*waiting)

    assert all(isinstance(events[-1], TurnFinished) for events in results)
    last = [e.position for e in results[-1] if isinstance(e, Queued)]
    assert last[0] == 40
    assert last[-10:] == list(range(10, 0, -1))  # exact near the front
    steps = list(itertools.pairwise(last))
    assert all(later < earlier for earlier, later in steps)
    assert all(later >= earlier * 0.9 - 1 for earlier, later in steps)  # ~10 % at most
    assert len(last) < 25  # not one event per move (40)
