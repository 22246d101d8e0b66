"""Fixtures for the engine tests: the Responses API fake, an engine factory, data files."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.engine import (
    AnalysisEngine,
    ArtifactCaps,
    ColumnInfo,
    DataFile,
    EngineEvent,
    HostedInterpreter,
    TurnFailed,
    TurnFinished,
    TurnResult,
    TurnRun,
    TurnStarted,
)
from bot.engine.files import MemoryRemoteIndex
from tests.fakes.responses_api import ResponsesFake, running_responses_fake

TRANSCRIPT = Path(__file__).parent / "data" / "responses-ci-turn.sse"


def png(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def make_data_file(
    directory: Path, name: str = "sales.csv", content: bytes | None = None, scope: str = "chat:1"
) -> DataFile:
    content = content if content is not None else b"region,revenue\nEast,1200\nWest,950\n"
    path = directory / f"{hashlib.sha256(content).hexdigest()[:12]}-{name}"
    path.write_bytes(content)
    return DataFile(
        name=name,
        path=path,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        rows=content.count(b"\n") - 1,
        columns=(ColumnInfo("region", "text"), ColumnInfo("revenue", "int")),
        scope=scope,
    )


async def collect(run: TurnRun) -> list[EngineEvent]:
    return [event async for event in run]


async def started(run: TurnRun) -> list[EngineEvent]:
    """Read `run` up to its `TurnStarted` (the turn holds a slot then); the events read so far.
    The rest of the run stays unread."""
    events: list[EngineEvent] = []
    async for event in run:
        events.append(event)
        if isinstance(event, TurnStarted):
            break
    return events


def finished(events: list[EngineEvent]) -> TurnResult:
    """The result of a turn that finished: its last event, and its only terminal one."""
    assert isinstance(events[-1], TurnFinished), events[-1]
    assert sum(isinstance(e, TurnFinished | TurnFailed) for e in events) == 1
    return events[-1].result


def failed(events: list[EngineEvent]) -> TurnFailed:
    """The failure of a turn that failed: its last event, and its only terminal one."""
    assert isinstance(events[-1], TurnFailed), events[-1]
    assert sum(isinstance(e, TurnFinished | TurnFailed) for e in events) == 1
    return events[-1]


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (bounded) until `condition()` holds; fail the test if it never does."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polling state the engine does not signal
            await asyncio.sleep(0.002)


@pytest.fixture
async def openai_fake() -> AsyncIterator[ResponsesFake]:
    async with running_responses_fake(provider="openai") as fake:
        yield fake


@pytest.fixture
async def yandex_fake() -> AsyncIterator[ResponsesFake]:
    async with running_responses_fake(provider="yandex") as fake:
        yield fake


@pytest.fixture
def remote_index() -> MemoryRemoteIndex:
    return MemoryRemoteIndex()


EngineFactory = Callable[..., AnalysisEngine]
ENGINE_KWARGS = ("limiter", "max_concurrent", "turn_timeout")


@pytest.fixture
async def make_engine(remote_index: MemoryRemoteIndex) -> AsyncIterator[EngineFactory]:
    """`make_engine(fake, provider=None, **kwargs)`: an engine whose `HostedInterpreter` talks to
    `fake`, with tiny retry delays; closed at the end of the test. `kwargs` go to the engine
    (`ENGINE_KWARGS`), the artifact caps (`max_artifacts`, `max_artifact_bytes`) or the backend."""
    engines: list[AnalysisEngine] = []

    def factory(fake: ResponsesFake, **kwargs: Any) -> AnalysisEngine:
        provider = kwargs.pop("provider", fake.provider)
        client_kwargs = kwargs.pop("client_kwargs", {})
        engine_kwargs = {k: kwargs.pop(k) for k in ENGINE_KWARGS if k in kwargs}
        caps = ArtifactCaps(
            kwargs.pop("max_artifacts", ArtifactCaps().max_count),
            kwargs.pop("max_artifact_bytes", ArtifactCaps().max_bytes),
        )
        kwargs.setdefault("retry_base_delay", 0.001)
        kwargs.setdefault("max_retry_delay", 0.05)
        kwargs.setdefault("remote_index", remote_index)
        model = "gpt://folder-1/qwen3-235b-a22b-fp8/latest" if provider == "yandex" else "gpt-4.1"
        kwargs.setdefault("model", model)
        backend = HostedInterpreter(
            fake.client(**client_kwargs), provider=provider, caps=caps, **kwargs
        )
        engine = AnalysisEngine(backend, **engine_kwargs)
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        await engine.aclose()
