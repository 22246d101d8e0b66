"""First contact with the real providers: behaviour their documentation describes that a turn
must survive (issue 11). Each test reproduces one case against the Responses API fake."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.engine import (
    CodeStepStarted,
    FailureReason,
    FileCited,
    TurnFailed,
    TurnRequest,
    TurnStarted,
)
from tests.engine.conftest import (
    EngineFactory,
    collect,
    failed,
    finished,
    make_data_file,
    until,
)
from tests.fakes.responses_api import ResponsesFake, Scenario, sandbox_link

CSV = b"region,revenue\nEast,1200\nWest,950\n"
# Events of `Scenario().code("print(1)", logs="1\n").text("The answer is 1.")` before
# `response.completed`: created, in_progress, 9 for the code item, 9 for the message.
CODE_ITEM_DONE = 10  # the position of the code item's `output_item.done`
COMPLETED = 20  # the position of `response.completed`


def answer_one() -> Scenario:
    return Scenario().code("print(1)", logs="1\n").text("The answer is 1.")


def generated_files(fake: ResponsesFake) -> list[str]:
    return [f.filename for f in fake.files.values() if f.purpose == "assistants_output"]


# ---- Yandex deletes the previous turn's sandbox data ---------------------------------------


async def test_yandex_prompt_says_every_turn_starts_in_a_fresh_sandbox(
    yandex_fake: ResponsesFake,
    openai_fake: ResponsesFake,
    make_engine: EngineFactory,
    tmp_path: Path,
) -> None:
    yandex_fake.enqueue(Scenario().text("ok"))
    openai_fake.enqueue(Scenario().text("ok"))
    for fake in (yandex_fake, openai_fake):
        engine = make_engine(fake)
        finished(await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)]))))
    on_yandex = yandex_fake.response_requests()[0].json["instructions"]
    on_openai = openai_fake.response_requests()[0].json["instructions"]
    assert "Every question starts in a fresh sandbox" in on_yandex
    assert "Never rely on them" in on_yandex
    assert "fresh sandbox" not in on_openai  # OpenAI keeps the container while it lives...
    assert "check that it exists" in on_openai  # ...but it may expire


# ---- a stream that ends without response.completed -------------------------------------------


async def test_a_cut_stream_is_retrieved_until_the_response_is_terminal(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(answer_one().cut(after=COMPLETED, completes_after=3))
    engine = make_engine(openai_fake)
    result = finished(await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)]))))
    assert result.text == "The answer is 1."
    assert result.code_steps[0].logs == "1\n"
    assert openai_fake.retrieves[:3] == [result.response_id] * 3
    assert len(openai_fake.response_requests()) == 1  # never re-sent


async def test_a_cut_stream_that_stays_unfinished_is_interrupted_after_bounded_polls(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(answer_one().cut(after=COMPLETED))
    engine = make_engine(openai_fake, max_polls=4, background="off")
    failure = failed(await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)]))))
    assert failure.reason is FailureReason.INTERRUPTED
    assert failure.code_ran
    assert openai_fake.retrieves == [failure.response_id] * 4


async def test_retrieve_sends_include_like_create_on_openai(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    # The stream ends before the code item is done: its logs come from the retrieved response,
    # which carries them only when `include` asks for them.
    openai_fake.enqueue(answer_one().cut(after=CODE_ITEM_DONE, completes_after=1))
    engine = make_engine(openai_fake)
    result = finished(await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)]))))
    assert result.code_steps[0].logs == "1\n"
    assert result.text == "The answer is 1."
    gets = [r for r in openai_fake.requests if r.method == "GET" and "/responses/" in r.path]
    assert gets
    assert all("code_interpreter_call.outputs" in r.query.values() for r in gets)


# ---- an expired container / unknown previous response reported inside the stream -----------


async def test_expired_container_in_an_error_event_starts_a_fresh_chain(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(
        Scenario().text("one"),
        Scenario().text("lost").error_event(after=2, code=None, message="Container is expired."),
        Scenario().text("two"),
    )
    engine = make_engine(openai_fake)
    data_file = make_data_file(tmp_path)
    first = finished(await collect(engine.run(TurnRequest("one", [data_file]))))
    request = TurnRequest("two", [data_file], previous_response_id=first.response_id)
    second = finished(await collect(engine.run(request)))
    assert second.text == "two"
    assert second.context_reset
    refused, fresh = (r.json for r in openai_fake.response_requests()[1:])
    assert refused["previous_response_id"] == first.response_id
    assert "previous_response_id" not in fresh
    assert second.response_id not in (first.response_id, "")


async def test_a_dead_chain_in_response_failed_is_reported_when_the_fresh_chain_fails_too(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(
        Scenario().text("one"),
        Scenario().fail(code="invalid_prompt", message="Container is expired."),
        Scenario().http_error(400, message="Something else is wrong."),
    )
    engine = make_engine(openai_fake, max_retries=0)
    data_file = make_data_file(tmp_path)
    first = finished(await collect(engine.run(TurnRequest("one", [data_file]))))
    request = TurnRequest("two", [data_file], previous_response_id=first.response_id)
    failure = failed(await collect(engine.run(request)))
    assert failure.reason is FailureReason.BAD_REQUEST
    assert failure.chain_gone  # the services must not offer first.response_id again
    assert "previous_response_id" not in openai_fake.response_requests()[2].json


async def test_an_ordinary_failure_does_not_say_the_chain_is_gone(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(Scenario().text("one"), Scenario().fail(code="invalid_prompt"))
    engine = make_engine(openai_fake)
    data_file = make_data_file(tmp_path)
    first = finished(await collect(engine.run(TurnRequest("one", [data_file]))))
    request = TurnRequest("two", [data_file], previous_response_id=first.response_id)
    failure = failed(await collect(engine.run(request)))
    assert failure.reason is FailureReason.MODEL_ERROR
    assert not failure.chain_gone
    assert len(openai_fake.response_requests()) == 2


# ---- generated-file copies are removed on failure and cancel -------------------------------


async def test_yandex_generated_copies_are_deleted_when_the_turn_fails(
    yandex_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    yandex_fake.enqueue(
        Scenario()
        .code("df.to_csv('/mnt/data/out.csv')", saves={"out.csv": CSV})
        .text(f"Saved {sandbox_link('out.csv')}")
        .fail()
    )
    engine = make_engine(yandex_fake)
    events = await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)])))
    assert failed(events).reason is FailureReason.MODEL_ERROR
    assert FileCited("out.csv") in events
    assert generated_files(yandex_fake) == []
    assert len(yandex_fake.files) == 1  # the input file stays


async def test_yandex_generated_copies_are_deleted_when_the_turn_is_cancelled(
    yandex_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    yandex_fake.enqueue(
        Scenario()
        .code("df.to_csv('/mnt/data/out.csv')", saves={"out.csv": CSV})
        .text(f"Saved {sandbox_link('out.csv')}")
        .stall(after=COMPLETED)
    )
    engine = make_engine(yandex_fake)
    run = engine.run(TurnRequest("q", [make_data_file(tmp_path)]))
    events = []
    async for event in run:
        events.append(event)
        if isinstance(event, FileCited):
            assert generated_files(yandex_fake) == ["out.csv"]
            run.cancel()
    assert failed(events).reason is FailureReason.CANCELLED
    assert generated_files(yandex_fake) == []


# ---- upload names OpenAI accepts -----------------------------------------------------------


async def test_openai_gets_table_files_under_names_it_accepts(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(Scenario().text("ok"))
    engine = make_engine(openai_fake)
    files = [
        make_data_file(tmp_path, "sales.tsv", b"region\trevenue\nEast\t1200\n"),
        make_data_file(tmp_path, "sales.csv", CSV),
        make_data_file(tmp_path, "book.xlsm", b"PK\x03\x04 not really a workbook"),
    ]
    finished(await collect(engine.run(TurnRequest("q", files))))
    uploaded = sorted(f.filename for f in openai_fake.uploads)
    assert uploaded == ["book.xlsx", "sales.csv", "sales_tsv.csv"]
    instructions = openai_fake.response_requests()[0].json["instructions"]
    assert "`sales_tsv.csv`" in instructions
    assert "`book.xlsx`" in instructions
    assert ".tsv`" not in instructions
    assert ".xlsm`" not in instructions


async def test_yandex_keeps_the_original_names(
    yandex_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    yandex_fake.enqueue(Scenario().text("ok"))
    engine = make_engine(yandex_fake)
    data_file = make_data_file(tmp_path, "sales.tsv", b"region\trevenue\nEast\t1200\n")
    finished(await collect(engine.run(TurnRequest("q", [data_file]))))
    assert [f.filename for f in yandex_fake.uploads] == ["sales.tsv"]


# ---- cancel frees the provider's slot ------------------------------------------------------


async def test_cancel_cancels_the_background_response(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(answer_one().stall(after=5))
    engine = make_engine(openai_fake)
    run = engine.run(TurnRequest("q", [make_data_file(tmp_path)]))
    events = []
    async for event in run:
        events.append(event)
        if isinstance(event, CodeStepStarted):
            run.cancel()
    failure = failed(events)
    assert failure.reason is FailureReason.CANCELLED
    assert openai_fake.response_requests()[0].json["background"] is True
    assert openai_fake.cancelled == [failure.response_id]
    assert openai_fake.responses[failure.response_id]["status"] == "cancelled"
    assert await openai_fake.wait_for_disconnect()


async def test_timeout_cancels_the_background_response(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(answer_one().stall(after=5))
    engine = make_engine(openai_fake, turn_timeout=0.5)
    failure = failed(await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)]))))
    assert failure.reason is FailureReason.TIMEOUT
    assert openai_fake.cancelled == [failure.response_id]


async def test_refused_background_mode_falls_back_once_for_the_process(
    yandex_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    yandex_fake.refuse_background = True
    yandex_fake.enqueue(Scenario().text("one"), Scenario().stall(after=3).text("two"))
    engine = make_engine(yandex_fake)
    data_file = make_data_file(tmp_path)
    assert finished(await collect(engine.run(TurnRequest("one", [data_file])))).text == "one"
    run = engine.run(TurnRequest("two", [data_file]))
    async for event in run:
        if isinstance(event, TurnStarted):
            run.cancel()  # nothing to cancel remotely: closing the stream is all there is
    assert isinstance(run.outcome, TurnFailed)
    sent = [r.json.get("background") for r in yandex_fake.response_requests()]
    assert sent == [True, None, None]
    assert yandex_fake.cancelled == []
    assert [r.path for r in yandex_fake.requests if r.path.endswith("/cancel")] == []


async def test_background_off_never_sends_it(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(Scenario().text("ok"))
    engine = make_engine(openai_fake, background="off")
    finished(await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)]))))
    assert "background" not in openai_fake.response_requests()[0].json


# ---- a consumer that fails or is cancelled cancels its run at once ------------------------


async def test_a_cancelled_consumer_frees_the_slot_for_the_next_turn_at_once(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(answer_one().stall(after=5), Scenario().text("B"))
    engine = make_engine(openai_fake, max_concurrent=1, turn_timeout=600)
    data_file = make_data_file(tmp_path)
    run_a = engine.run(TurnRequest("A", [data_file]))
    seen_a: list[object] = []

    async def consume_a() -> None:  # a consumer without `async with`, e.g. a handler task
        async for event in run_a:
            seen_a.append(event)

    consumer = asyncio.create_task(consume_a())
    await until(lambda: any(isinstance(e, CodeStepStarted) for e in seen_a))
    run_b = engine.run(TurnRequest("B", [data_file]))
    task_b = asyncio.create_task(collect(run_b))
    await until(lambda: engine.queued == 1)

    consumer.cancel()
    assert await openai_fake.wait_for_disconnect()
    assert finished(await asyncio.wait_for(task_b, 5)).text == "B"
    assert isinstance(run_a.outcome, TurnFailed)
    assert run_a.outcome.reason is FailureReason.CANCELLED
    assert openai_fake.cancelled == [run_a.outcome.response_id]
    assert engine.busy == 0


async def test_a_failing_consumer_leaving_async_with_frees_the_slot_at_once(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(answer_one().stall(after=5), Scenario().text("B"))
    engine = make_engine(openai_fake, max_concurrent=1, turn_timeout=600)
    data_file = make_data_file(tmp_path)
    task_b: asyncio.Task[list[object]] | None = None
    try:
        async with engine.run(TurnRequest("A", [data_file])) as run_a:
            async for event in run_a:
                if isinstance(event, CodeStepStarted):
                    task_b = asyncio.create_task(collect(engine.run(TurnRequest("B", [data_file]))))
                    await until(lambda: engine.queued == 1)
                    raise RuntimeError("the consumer broke")
    except RuntimeError:
        pass
    assert await openai_fake.wait_for_disconnect()
    assert task_b is not None
    assert finished(await asyncio.wait_for(task_b, 5)).text == "B"
    assert openai_fake.cancelled == [run_a.outcome.response_id if run_a.outcome else ""]


async def test_a_broken_connection_is_recovered_by_retrieving_the_response(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(answer_one().drop(after=COMPLETED - 3, completes_after=2))
    engine = make_engine(openai_fake)
    result = finished(await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)]))))
    assert result.text == "The answer is 1."
    assert len(openai_fake.response_requests()) == 1
    assert openai_fake.cancelled == []


async def test_background_mode_that_streams_nothing_is_dropped_and_the_turn_re_sent(
    yandex_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    # Unknown provider behaviour guarded against: `background` accepted, `stream` ignored (the
    # body is not an event stream, so not even the response id is known: the turn is re-sent).
    yandex_fake.background_ignores_stream = True
    yandex_fake.enqueue(answer_one(), answer_one(), Scenario().text("two"))
    engine = make_engine(yandex_fake)
    data_file = make_data_file(tmp_path)
    first = finished(await collect(engine.run(TurnRequest("one", [data_file]))))
    assert first.text == "The answer is 1."
    assert first.code_steps[0].logs == "1\n"
    second = finished(await collect(engine.run(TurnRequest("two", [data_file]))))
    assert second.text == "two"
    sent = [r.json.get("background") for r in yandex_fake.response_requests()]
    assert sent == [True, None, None]
