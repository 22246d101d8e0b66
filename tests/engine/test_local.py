"""The local backend end to end: a scripted function-calling model (Responses API and Chat
Completions, over HTTP) drives the real engine through real sandboxed kernels on real files."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import statistics
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from PIL import Image

from bot.config import ConfigError
from bot.engine import (
    AnalysisEngine,
    ArtifactCaps,
    CodeDelta,
    CodeDone,
    CodeFinished,
    CodeRunning,
    CodeStepStarted,
    ColumnInfo,
    DataFile,
    FailureReason,
    FileCited,
    ImageOutput,
    TextDelta,
    TurnRequest,
    TurnStarted,
)
from bot.engine.local import LAST_WORD, LocalExecutor, preview_code
from bot.sandbox import KernelPool, SandboxLimits
from tests.engine.conftest import collect, failed, finished, until
from tests.fakes.tool_model import Answer, Call, Conversation, ToolModel, running_tool_model

REPO = Path(__file__).resolve().parents[2]
GAPMINDER = REPO / "datasets" / "gapminder.csv"


def gapminder_file() -> DataFile:
    data = GAPMINDER.read_bytes()
    return DataFile(
        name="gapminder.csv",
        path=GAPMINDER,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        rows=data.count(b"\n") - 1,
        columns=(ColumnInfo("country", "text"), ColumnInfo("life_expectancy", "float")),
        scope="chat:1",
    )


def expected_mean_2000() -> float:
    with GAPMINDER.open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["year"] == "2000"]
    return round(
        statistics.fmean(float(r["life_expectancy"]) for r in rows if r["life_expectancy"]), 3
    )


ANALYSE = (
    "import pandas as pd, matplotlib.pyplot as plt\n"
    "df = pd.read_csv('/mnt/data/gapminder.csv')\n"
    "y2000 = df[df.year == 2000]\n"
    "print(round(y2000.life_expectancy.mean(), 3))\n"
    "y2000.groupby('region').life_expectancy.mean().plot.bar(); plt.show()\n"
    "y2000.groupby('region').population.sum().to_csv('/mnt/data/population.csv')\n"
)


def analyst(chat: Conversation) -> list[Call | Answer]:
    """Step 1 analyses, then answers with the number the code printed."""
    if not chat.turn_outputs:
        return [Call(ANALYSE, chunks=5)]
    number = chat.turn_outputs[-1].splitlines()[0]
    return [Answer(f"Mean life expectancy in 2000: **{number}** years.")]


Factory = Callable[..., AnalysisEngine]


@pytest.fixture
async def local_engine(tmp_path: Path, sandbox_venv: Path) -> AsyncIterator[Factory]:
    engines: list[AnalysisEngine] = []

    def make(
        model: ToolModel,
        *,
        api: str = "responses",
        max_steps: int = 12,
        step_seconds: float = 8,
        turn_timeout: float = 120,
        caps: ArtifactCaps | None = None,
    ) -> AnalysisEngine:
        pool = KernelPool(
            SandboxLimits(step_seconds=step_seconds, interrupt_grace=3, memory_mb=1024),
            root_dir=tmp_path / f"sandbox{len(engines)}",
            venv=sandbox_venv,
        )
        executor = LocalExecutor(
            model.client(),
            model="local-model",
            pool=pool,
            api=api,  # type: ignore[arg-type]
            max_steps=max_steps,
            retry_base_delay=0.01,
            caps=caps,
        )
        engine = AnalysisEngine(executor, max_concurrent=2, turn_timeout=turn_timeout)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.aclose()


@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_a_csv_is_analysed_in_the_sandbox(local_engine: Factory, api: str) -> None:
    async with running_tool_model(analyst) as model:
        engine = local_engine(model, api=api)
        await engine.start()
        request = TurnRequest("Life expectancy in 2000?", [gapminder_file()], chat_key="1")
        events = await collect(engine.run(request))
        result = finished(events)

    expected = expected_mean_2000()
    assert f"**{expected}**" in result.text
    assert len(result.code_steps) == 1
    assert result.code_steps[0].logs.startswith(str(expected))
    by_name = {a.name: a for a in result.artifacts}
    assert set(by_name) == {"population.csv", "chart_1_1.png"}
    assert by_name["population.csv"].data.decode().startswith("region,population\n")
    assert Image.open(io.BytesIO(by_name["chart_1_1.png"].data)).format == "PNG"
    assert result.usage.input_tokens > 0

    kinds = [type(e) for e in events]
    assert kinds[0] is TurnStarted
    assert kinds[1] is CodeStepStarted
    first_done = kinds.index(CodeDone)
    assert set(kinds[2:first_done]) == {CodeDelta}
    assert kinds[first_done : first_done + 3] == [CodeDone, CodeRunning, CodeFinished]
    assert ImageOutput in kinds
    assert kinds.index(ImageOutput) < kinds.index(TextDelta)
    deltas = [e for e in events if isinstance(e, CodeDelta)]
    assert deltas[-1].code == ANALYSE
    assert [e.filename for e in events if isinstance(e, FileCited)] == ["population.csv"]
    # Nothing but model requests went to the provider: no file was uploaded.
    endpoint = "/responses" if api == "responses" else "/chat/completions"
    assert {path for path, _ in model.requests} == {endpoint}
    assert all("gapminder" not in str(body.get("tools")) for _, body in model.requests)


async def test_stateful_requests_chain_and_variables_persist_across_turns(
    local_engine: Factory,
) -> None:
    def script(chat: Conversation) -> list[Call | Answer]:
        if chat.question.startswith("First"):
            if not chat.turn_outputs:
                return [Call("import pandas as pd\ndf = pd.read_csv('gapminder.csv')\nlen(df)")]
            return [Answer(f"{chat.turn_outputs[-1].strip()} rows.")]
        if not chat.turn_outputs:
            return [Call("print(df.country.nunique())")]  # df from the first question
        return [Answer(f"{chat.turn_outputs[-1].strip()} countries.")]

    async with running_tool_model(script) as model:
        engine = local_engine(model)
        await engine.start()
        files = [gapminder_file()]
        first = finished(await collect(engine.run(TurnRequest("First?", files, chat_key="7"))))
        second = finished(
            await collect(
                engine.run(
                    TurnRequest(
                        "Second?", files, chat_key="7", previous_response_id=first.response_id
                    )
                )
            )
        )

    with GAPMINDER.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert first.text == f"{len(rows)} rows."
    assert second.text == f"{len({r['country'] for r in rows})} countries."
    bodies = [body for _, body in model.requests]
    assert "previous_response_id" not in bodies[0]
    # The outputs went back on the response that made the call, then the answer chained on.
    assert bodies[1]["previous_response_id"] not in (None, first.response_id)
    assert bodies[1]["input"][0]["type"] == "function_call_output"
    assert bodies[2]["previous_response_id"] == first.response_id
    assert "just been started" in bodies[0]["instructions"]
    assert "just been started" not in bodies[2]["instructions"]
    assert "persist" in bodies[2]["instructions"]


async def test_a_server_that_keeps_no_responses_gets_the_whole_transcript(
    local_engine: Factory,
) -> None:
    def script(chat: Conversation) -> list[Call | Answer]:
        if not chat.turn_outputs:
            return [Call("x = 20 + 1\nprint(x)")]
        return [Answer(f"It is {chat.turn_outputs[-1].strip()} ({len(chat.user_messages)} q).")]

    async with running_tool_model(script, keeps_responses=False) as model:
        engine = local_engine(model)
        await engine.start()
        first = finished(await collect(engine.run(TurnRequest("One?", [], chat_key="3"))))
        events = await collect(
            engine.run(
                TurnRequest("Two?", [], chat_key="3", previous_response_id=first.response_id)
            )
        )
        second = finished(events)

    assert first.text == "It is 21 (1 q)."
    assert second.text == "It is 21 (2 q)."  # the earlier question came along in the transcript
    last = model.requests[-1][1]
    assert last["store"] is False
    assert "previous_response_id" not in last
    assert [i.get("content") for i in last["input"] if i.get("role") == "user"] == ["One?", "Two?"]


async def test_past_the_step_limit_the_model_must_answer(local_engine: Factory) -> None:
    def script(chat: Conversation) -> list[Call | Answer]:
        if chat.tool_choice == "none":
            return [Answer(f"Stopped after {len(chat.outputs)} runs.")]
        return [Call(f"print({len(chat.turn_outputs)})")]

    async with running_tool_model(script) as model:
        engine = local_engine(model, max_steps=3)
        await engine.start()
        result = finished(await collect(engine.run(TurnRequest("Loop", [], chat_key="1"))))

    assert result.text == "Stopped after 3 runs."
    assert [s.logs.strip() for s in result.code_steps] == ["0", "1", "2"]
    last = model.requests[-1][1]
    assert last["tool_choice"] == "none"
    assert last["input"][-1]["content"] == LAST_WORD.format(steps=3)


async def test_a_long_step_is_interrupted_and_the_model_is_told(local_engine: Factory) -> None:
    def script(chat: Conversation) -> list[Call | Answer]:
        outputs = chat.turn_outputs
        if not outputs:
            return [Call("kept = 5")]
        if len(outputs) == 1:
            return [Call("import time\nwhile True:\n    time.sleep(0.1)")]
        if len(outputs) == 2:
            return [Call("print(kept * 2)")]
        return [Answer(f"{'interrupted' in outputs[1]} {outputs[2].strip()}")]

    async with running_tool_model(script) as model:
        engine = local_engine(model, step_seconds=2)
        await engine.start()
        result = finished(await collect(engine.run(TurnRequest("Slow", [], chat_key="1"))))
    assert result.text == "True 10"


async def test_a_dead_kernel_is_restarted_with_a_note(local_engine: Factory) -> None:
    def script(chat: Conversation) -> list[Call | Answer]:
        outputs = chat.turn_outputs
        if not outputs:
            return [Call("import os\nos._exit(1)")]
        if len(outputs) == 1:
            return [Call("print(sorted(__import__('os').listdir()))")]
        return [Answer(f"{'died' in outputs[0]} {'fresh Python kernel' in outputs[1]}")]

    async with running_tool_model(script) as model:
        engine = local_engine(model)
        await engine.start()
        result = finished(
            await collect(engine.run(TurnRequest("Die", [gapminder_file()], chat_key="1")))
        )
    assert result.text == "True True"
    assert "gapminder.csv" in result.code_steps[1].logs


async def test_cancel_during_a_step_stops_the_code_and_the_chat_goes_on(
    local_engine: Factory,
) -> None:
    def script(chat: Conversation) -> list[Call | Answer]:
        if chat.question == "Slow":
            return [Call("import time\nwhile True:\n    time.sleep(0.1)")]
        if not chat.turn_outputs:
            return [Call("print('quick')")]
        return [Answer(chat.turn_outputs[-1].strip())]

    async with running_tool_model(script) as model:
        engine = local_engine(model, step_seconds=60)
        await engine.start()
        run = engine.run(TurnRequest("Slow", [], chat_key="1"))
        seen: list[object] = []

        async def consume() -> None:
            async for event in run:
                seen.append(event)

        task = asyncio.create_task(consume())
        await until(lambda: any(isinstance(e, CodeRunning) for e in seen), timeout=30)
        run.cancel()
        await asyncio.wait_for(task, 10)
        assert failed(seen).reason is FailureReason.CANCELLED  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        began = loop.time()
        result = finished(await collect(engine.run(TurnRequest("Quick", [], chat_key="1"))))
        assert result.text == "quick"
        assert loop.time() - began < 20  # the abandoned loop did not block the chat


async def test_the_whole_turn_timeout_ends_a_running_step(local_engine: Factory) -> None:
    def script(chat: Conversation) -> list[Call | Answer]:
        return [Call("import time\ntime.sleep(30)")]

    async with running_tool_model(script) as model:
        engine = local_engine(model, step_seconds=60, turn_timeout=2)
        await engine.start()
        events = await collect(engine.run(TurnRequest("Slow", [], chat_key="1")))
    failure = failed(events)
    assert failure.reason is FailureReason.TIMEOUT
    assert failure.code_ran


async def test_transient_model_errors_are_retried(local_engine: Factory) -> None:
    async with running_tool_model(analyst) as model:
        engine = local_engine(model)
        await engine.start()
        model.fail_next(503, times=2)
        result = finished(
            await collect(engine.run(TurnRequest("Q", [gapminder_file()], chat_key="1")))
        )
    assert str(expected_mean_2000()) in result.text


async def test_a_host_that_cannot_sandbox_gets_one_clear_line(tmp_path: Path) -> None:
    async with running_tool_model(analyst) as model:
        pool = KernelPool(SandboxLimits(), tmp_path, tmp_path / "no-venv")
        executor = LocalExecutor(model.client(), model="m", pool=pool)
        engine = AnalysisEngine(executor)
        with pytest.raises(ConfigError) as caught:
            await engine.start()
        await engine.aclose()
    message = str(caught.value)
    assert message.startswith("CODE_EXECUTION=local cannot work here: ")
    assert "\n" not in message
    assert "bot.sandbox.build" in message


def test_the_code_is_previewed_while_its_json_streams() -> None:
    assert preview_code('{"code": "import pa') == "import pa"
    assert preview_code('{"code": "a = 1\\nprint(\\"hi') == 'a = 1\nprint("hi'
    assert preview_code('{"code": "x\\u00e9y", ') == "xéy"
    assert preview_code('{"co') == ""
    assert preview_code('{"code": "tail\\') == "tail"


async def test_an_unknown_previous_response_starts_a_fresh_chain(local_engine: Factory) -> None:
    def script(chat: Conversation) -> list[Call | Answer]:
        if not chat.turn_outputs:
            return [Call("print(2 + 2)")]
        return [Answer(chat.turn_outputs[-1].strip())]

    async with running_tool_model(script) as model:
        engine = local_engine(model)
        await engine.start()
        request = TurnRequest("Q", [], chat_key="1", previous_response_id="resp_expired")
        result = finished(await collect(engine.run(request)))
        assert result.text == "4"
        assert result.context_reset
        # The server still keeps responses: the next turn chains again.
        follow = TurnRequest("Q2", [], chat_key="1", previous_response_id=result.response_id)
        finished(await collect(engine.run(follow)))
    assert model.requests[-2][1]["previous_response_id"] == result.response_id
    assert "store" not in model.requests[-1][1]


async def test_a_new_conversation_gets_a_fresh_kernel(local_engine: Factory) -> None:
    def script(chat: Conversation) -> list[Call | Answer]:
        code = "x = 1" if chat.question == "define" else "print('x' in globals())"
        if not chat.turn_outputs:
            return [Call(code)]
        return [Answer(chat.turn_outputs[-1].strip() or "defined")]

    async with running_tool_model(script) as model:
        engine = local_engine(model)
        await engine.start()
        first = finished(await collect(engine.run(TurnRequest("define", [], chat_key="5"))))
        follow = TurnRequest("check", [], chat_key="5", previous_response_id=first.response_id)
        assert finished(await collect(engine.run(follow))).text == "True"
        anew = finished(await collect(engine.run(TurnRequest("check", [], chat_key="5"))))
        assert anew.text == "False"
    assert "just been started" in model.requests[-2][1]["instructions"]


async def test_links_planted_in_place_of_written_files_are_not_sent(
    local_engine: Factory, tmp_path: Path
) -> None:
    secret = tmp_path / "host"
    secret.mkdir()
    (secret / "a.csv").write_text("TOKEN=host-secret\n")
    (secret / "out.csv").write_text("TOKEN=host-secret\n")
    steps = [
        "import os\nos.makedirs('sub', exist_ok=True)\n"
        "open('out.csv', 'w').write('x\\n1\\n')\nopen('sub/a.csv', 'w').write('y\\n2\\n')",
        "import os, shutil\nos.remove('out.csv')\n"
        f"os.symlink({str(secret / 'out.csv')!r}, 'out.csv')\n"
        f"shutil.rmtree('sub')\nos.symlink({str(secret)!r}, 'sub')\n"
        "os.symlink('/proc/self/environ', 'env.txt')",
    ]

    def script(chat: Conversation) -> list[Call | Answer]:
        if len(chat.turn_outputs) < len(steps):
            return [Call(steps[len(chat.turn_outputs)])]
        return [Answer("done")]

    async with running_tool_model(script) as model:
        engine = local_engine(model)
        await engine.start()
        result = finished(await collect(engine.run(TurnRequest("go", [], chat_key="9"))))
    assert result.text == "done"
    for artifact in result.artifacts:
        assert b"host-secret" not in artifact.data
        assert b"PATH=" not in artifact.data
    assert not {a.name for a in result.artifacts} & {"out.csv", "a.csv", "env.txt"}


async def test_the_chats_kernel_is_kept_while_the_model_thinks_between_steps(
    local_engine: Factory,
) -> None:
    reaps: list[asyncio.Task[int]] = []

    def script(chat: Conversation) -> list[Call | Answer]:
        if not chat.turn_outputs:
            return [Call("x = 41\nopen('kept.txt', 'w').write('yes')")]
        if len(chat.turn_outputs) == 1:
            # Between the steps the chat looks idle for an hour, and the reaper runs.
            pool = engine.executor.pool  # type: ignore[attr-defined]
            pool._entries["7"].last_used -= 3600
            reaps.append(asyncio.ensure_future(pool.reap()))
            return [Call("print(x + 1, open('kept.txt').read())")]
        return [Answer(chat.turn_outputs[-1].strip())]

    async with running_tool_model(script) as model:
        engine = local_engine(model)
        await engine.start()
        result = finished(await collect(engine.run(TurnRequest("go", [], chat_key="7"))))
        assert await reaps[0] == 0
    assert result.text == "42 yes"
    assert "7" in engine.executor.pool.kernel_pids()  # type: ignore[attr-defined]


async def test_stateless_history_is_kept_for_a_bounded_number_of_chats(
    local_engine: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.engine.local.HISTORY_CHATS", 2, raising=False)

    def script(chat: Conversation) -> list[Call | Answer]:
        return [Answer("ok")]

    async with running_tool_model(script, keeps_responses=False) as model:
        engine = local_engine(model, api="chat")
        await engine.start()
        for key in ("a", "b", "c"):
            finished(await collect(engine.run(TurnRequest("q", [], chat_key=key))))
        history = engine.executor._history  # type: ignore[attr-defined]
    assert list(history) == ["b", "c"]
