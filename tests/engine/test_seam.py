"""The seam for code-execution backends: the engine's generic parts work with any `Executor`,
and no engine module reaches into another object's underscored members."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

from bot.engine import (
    AnalysisEngine,
    Artifact,
    ArtifactCaps,
    CodeStepStarted,
    FailureReason,
    ProgressRecord,
    Queued,
    TextDelta,
    Turn,
    TurnFailed,
    TurnFinished,
    TurnRequest,
    TurnResult,
    TurnStarted,
    Usage,
    keep_within_caps,
)
from tests.engine.conftest import collect, failed, finished, until

ENGINE = Path(__file__).resolve().parents[2] / "bot" / "engine"


class ScriptedBackend:
    """A minimal second backend: emits a code step and an answer, or waits on a gate."""

    def __init__(self, gate: asyncio.Event | None = None, crash: bool = False) -> None:
        self.gate = gate
        self.crash = crash
        self.started: list[str] = []
        self.cleaned_up: list[str] = []
        self.closed = False

    async def run_turn(self, turn: Turn) -> TurnFinished | TurnFailed:
        self.started.append(turn.request.question)
        progress = ProgressRecord(response_id=f"local-{len(self.started)}")
        turn.progress = progress
        turn.emit(TurnStarted(progress.response_id or ""))
        turn.emit(CodeStepStarted(1))
        progress.code_ran = True
        progress.usage = Usage(10, 2)
        try:
            if self.crash:
                raise RuntimeError("kernel died")
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.cleaned_up.append(turn.request.question)
        turn.emit(TextDelta("42", "42"))
        return TurnFinished(TurnResult(response_id=progress.response_id or "", text="42"))

    async def delete_remote_file(self, file_id: str) -> None:
        return None

    async def aclose(self) -> None:
        self.closed = True


async def test_a_backend_gets_the_queue_and_one_terminal_event() -> None:
    gate = asyncio.Event()
    backend = ScriptedBackend(gate)
    engine = AnalysisEngine(backend, max_concurrent=1)
    first = asyncio.create_task(collect(engine.run(TurnRequest("A", [], analysis_id="a1"))))
    await until(lambda: engine.busy == 1)
    second = asyncio.create_task(collect(engine.run(TurnRequest("B", []))))
    await until(lambda: engine.queued == 1)
    gate.set()
    events_a, events_b = await first, await second
    assert finished(events_a).text == "42"
    assert [type(e) for e in events_b][:2] == [Queued, TurnStarted]
    assert finished(events_b).response_id == "local-2"
    await engine.aclose()
    assert backend.closed


async def test_cancel_and_timeout_end_a_backend_turn_with_its_progress() -> None:
    backend = ScriptedBackend(asyncio.Event())  # never set: the turn would wait forever
    engine = AnalysisEngine(backend, turn_timeout=0.2)
    timed_out = failed(await collect(engine.run(TurnRequest("slow", []))))
    assert timed_out.reason is FailureReason.TIMEOUT
    assert (timed_out.code_ran, timed_out.response_id) == (True, "local-1")
    assert timed_out.usage == Usage(10, 2)

    engine = AnalysisEngine(backend)
    run = engine.run(TurnRequest("cancelled", []))
    seen = []
    async for event in run:
        seen.append(event)
        if isinstance(event, CodeStepStarted):
            run.cancel()
    assert failed(seen).reason is FailureReason.CANCELLED
    assert backend.cleaned_up == ["slow", "cancelled"]
    assert engine.busy == 0


async def test_a_crashing_backend_fails_the_turn_instead_of_hanging() -> None:
    engine = AnalysisEngine(ScriptedBackend(crash=True))
    failure = failed(await collect(engine.run(TurnRequest("q", []))))
    assert failure.reason is FailureReason.UNAVAILABLE
    assert "kernel died" in failure.detail
    assert failure.code_ran
    assert engine.busy == 0


def test_artifact_caps_apply_to_any_backend() -> None:
    small = [Artifact(f"{n}.csv", "text/csv", f"{n}".encode()) for n in range(4)]
    big = Artifact("big.png", "image/png", b"x" * 100)
    kept, dropped = keep_within_caps(
        [small[0], big, small[0], *small[1:]], ArtifactCaps(max_count=2, max_bytes=50)
    )
    assert [a.name for a in kept] == ["0.csv", "1.csv"]
    assert dropped == 3  # the big one, and two over the count; the duplicate is not counted


def test_engine_modules_do_not_touch_other_objects_private_members() -> None:
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Attribute):
                continue
            name = node.attr
            if not name.startswith("_") or name.startswith("__"):
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Name) and owner.id[:1].isupper():
                continue  # a class's own table, e.g. TurnAccumulator._on_completed
            offenders.append(f"{path.name}:{node.lineno} .{name}")
    assert not offenders, offenders


class EmitsItsOwnEnd(ScriptedBackend):
    async def run_turn(self, turn: Turn) -> TurnFinished | TurnFailed:
        finished_ = TurnFinished(TurnResult(response_id="x", text="early"))
        turn.emit(finished_)  # wrong: the terminal event is returned, never emitted
        return finished_


async def test_a_backend_cannot_emit_a_second_terminal_event() -> None:
    engine = AnalysisEngine(EmitsItsOwnEnd())
    events = await collect(engine.run(TurnRequest("q", [])))
    assert failed(events).reason is FailureReason.UNAVAILABLE
    assert "return the terminal event" in failed(events).detail
