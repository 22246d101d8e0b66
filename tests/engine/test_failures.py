"""Retries, failures, timeouts and cancellation, against the Responses API fake."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.engine import (
    CodeStepStarted,
    FailureReason,
    TurnFailed,
    TurnFinished,
    TurnRequest,
    TurnStarted,
    UploadingFiles,
)
from tests.engine.conftest import EngineFactory, collect, failed, make_data_file, until
from tests.fakes.responses_api import ResponsesFake, Scenario


def code_turn() -> Scenario:
    return Scenario().code("x = 1\nprint(x)", logs="1\n").text("x is 1.")


async def test_rate_limit_then_success(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(code_turn().http_error(429, times=2, retry_after="0"))
    engine = make_engine(openai_fake, max_retries=3)
    events = await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)])))
    assert isinstance(events[-1], TurnFinished)
    assert events[-1].result.text == "x is 1."
    retries = [r.headers["x-stainless-retry-count"] for r in openai_fake.response_requests()]
    assert len(retries) == 3  # two 429s, then the stream


async def test_server_errors_exhausted_give_unavailable(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(code_turn().http_error(503, times=10))
    engine = make_engine(openai_fake, max_retries=2)
    failure = failed(await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)]))))
    assert failure.reason is FailureReason.UNAVAILABLE
    assert "503" in failure.detail
    assert not failure.code_ran
    assert len(openai_fake.response_requests()) == 3


async def test_rate_limit_exhausted_gives_rate_limited(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(code_turn().http_error(429, times=10, retry_after="0"))
    engine = make_engine(openai_fake, max_retries=1)
    failure = failed(await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)]))))
    assert failure.reason is FailureReason.RATE_LIMITED
    assert len(openai_fake.response_requests()) == 2


async def test_bad_request_is_not_retried(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(code_turn().http_error(422, message="Unsupported model option."))
    engine = make_engine(openai_fake, max_retries=3)
    failure = failed(await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)]))))
    assert failure.reason is FailureReason.BAD_REQUEST
    assert len(openai_fake.response_requests()) == 1


async def test_wrong_api_key_is_an_auth_failure(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.require_api_key = "the-right-key"
    engine = make_engine(openai_fake)
    failure = failed(await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)]))))
    assert failure.reason is FailureReason.AUTH
    assert openai_fake.uploads == []


async def test_error_event_mid_stream_fails_and_closes_the_stream(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(code_turn().error_event(after=9, code="server_error", message="boom"))
    engine = make_engine(openai_fake, max_retries=3)
    events = await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)])))
    failure = failed(events)
    assert failure.reason is FailureReason.MODEL_ERROR
    assert "boom" in failure.detail
    assert failure.code_ran
    assert failure.response_id == next(e for e in events if isinstance(e, TurnStarted)).response_id
    assert len(openai_fake.response_requests()) == 1  # code ran: never re-sent
    # The fake keeps the connection open after `error`; the engine hung up by itself.
    assert await openai_fake.wait_for_disconnect()


async def test_transient_error_event_before_any_output_is_retried(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(
        Scenario().text("never shown").error_event(after=2, code="server_error"),
        Scenario().text("Second try worked."),
    )
    engine = make_engine(openai_fake, max_retries=2)
    events = await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)])))
    assert isinstance(events[-1], TurnFinished)
    assert events[-1].result.text == "Second try worked."
    assert len(openai_fake.response_requests()) == 2


async def test_response_failed_is_a_model_error(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(code_turn().fail(code="invalid_prompt", message="Prompt rejected."))
    engine = make_engine(openai_fake)
    failure = failed(await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)]))))
    assert failure.reason is FailureReason.MODEL_ERROR
    assert "invalid_prompt" in failure.detail
    assert "Prompt rejected." in failure.detail
    assert failure.code_ran
    assert failure.usage.input_tokens == 120


async def test_response_incomplete(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(code_turn().incomplete("max_output_tokens"))
    engine = make_engine(openai_fake)
    failure = failed(await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)]))))
    assert failure.reason is FailureReason.INCOMPLETE
    assert "max_output_tokens" in failure.detail


async def test_stream_cut_after_code_ran_is_interrupted_and_not_resent(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(code_turn().cut(after=10))
    engine = make_engine(openai_fake, max_retries=3)
    events = await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)])))
    failure = failed(events)
    assert failure.reason is FailureReason.INTERRUPTED
    assert failure.code_ran
    assert any(isinstance(e, CodeStepStarted) for e in events)
    assert len(openai_fake.response_requests()) == 1


async def test_cut_stream_of_a_completed_response_is_recovered(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(code_turn().cut(after=10, stored_status="completed"))
    engine = make_engine(openai_fake)
    events = await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)])))
    assert isinstance(events[-1], TurnFinished)
    assert events[-1].result.text == "x is 1."
    assert events[-1].result.code_steps[0].logs == "1\n"


async def test_stream_cut_before_any_output_is_resent(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(code_turn().cut(after=2), code_turn())
    engine = make_engine(openai_fake, max_retries=1)
    events = await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)])))
    assert isinstance(events[-1], TurnFinished)
    assert len(openai_fake.response_requests()) == 2
    assert len([e for e in events if isinstance(e, TurnStarted)]) == 2


async def test_turn_timeout_fails_and_closes_the_stream(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(code_turn().stall(after=6))
    engine = make_engine(openai_fake, turn_timeout=0.5)
    events = await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)])))
    failure = failed(events)
    assert failure.reason is FailureReason.TIMEOUT
    assert await openai_fake.wait_for_disconnect()
    assert openai_fake.disconnects == [failure.response_id]
    assert engine.busy == 0


async def test_cancel_while_streaming_closes_the_http_stream(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(code_turn().stall(after=5))
    engine = make_engine(openai_fake)
    run = engine.run(TurnRequest("q", [make_data_file(tmp_path)]))
    seen = []
    async for event in run:
        seen.append(event)
        if isinstance(event, CodeStepStarted):
            run.cancel()
    failure = failed(seen)
    assert failure.reason is FailureReason.CANCELLED
    assert await openai_fake.wait_for_disconnect()
    assert openai_fake.disconnects == [failure.response_id]
    assert engine.busy == 0
    assert run.done


async def test_cancel_while_uploading(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.upload_gate = asyncio.Event()  # uploads never finish
    engine = make_engine(openai_fake)
    run = engine.run(TurnRequest("q", [make_data_file(tmp_path)]))
    seen = []
    async for event in run:
        seen.append(event)
        if isinstance(event, UploadingFiles):
            await until(lambda: "/v1/files" in openai_fake.paths("POST"))
            run.cancel()
    assert failed(seen).reason is FailureReason.CANCELLED
    assert await openai_fake.wait_for_disconnect()
    assert openai_fake.response_requests() == []


async def test_cancel_before_start_and_after_finish(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    engine = make_engine(openai_fake)
    run = engine.run(TurnRequest("q", [make_data_file(tmp_path)]))
    run.cancel()
    assert [type(e) for e in await collect(run)] == [TurnFailed]
    assert openai_fake.requests == []
    openai_fake.enqueue(code_turn())
    done = engine.run(TurnRequest("q", [make_data_file(tmp_path)]))
    events = await collect(done)
    done.cancel()  # too late: no effect
    assert isinstance(events[-1], TurnFinished)
    assert await collect(done) == []
    assert done.outcome is events[-1]


async def test_abandoned_run_is_cancelled_by_its_context_manager(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(code_turn().stall(after=4))
    engine = make_engine(openai_fake)
    async with engine.run(TurnRequest("q", [make_data_file(tmp_path)])) as run:
        async for event in run:
            if isinstance(event, CodeStepStarted):
                break
    assert isinstance(run.outcome, TurnFailed)
    assert run.outcome.reason is FailureReason.CANCELLED
    assert await openai_fake.wait_for_disconnect()


async def test_engine_close_cancels_running_turns(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(code_turn().stall(after=4))
    engine = make_engine(openai_fake)
    run = engine.run(TurnRequest("q", [make_data_file(tmp_path)]))
    async for event in run:
        if isinstance(event, CodeStepStarted):
            break
    await engine.aclose()
    rest = await collect(run)
    assert failed(rest).reason is FailureReason.CANCELLED
    assert await openai_fake.wait_for_disconnect()
