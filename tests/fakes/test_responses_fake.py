"""The Responses API fake itself, driven by the plain SDK (no engine)."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter, ValidationError

from tests.fakes.responses_api import (
    ProtocolError,
    Scenario,
    fill_usage_details,
    running_responses_fake,
    sandbox_link,
)

TRANSCRIPT = Path(__file__).parents[1] / "engine" / "data" / "responses-ci-turn.sse"
TOOLS = [{"type": "code_interpreter", "container": {"type": "auto", "file_ids": []}}]


async def test_a_scenario_streams_valid_events_the_sdk_accumulates() -> None:
    async with running_responses_fake() as fake:
        fake.enqueue(
            Scenario()
            .reasoning("think")
            .code("print(1)", logs="1\n", saves={"a.csv": b"x\n1\n"})
            .text(f"Done: {sandbox_link('a.csv')}")
            .usage(10, 5)
        )
        client = fake.client()
        async with client.responses.stream(
            model="m", input="q", tools=TOOLS, include=["code_interpreter_call.outputs"]
        ) as stream:
            types = [event.type async for event in stream]
            final = await stream.get_final_response()
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert "response.reasoning_text.delta" in types
    assert types.count("response.output_text.annotation.added") == 1
    assert final.status == "completed"
    assert final.output_text == "Done: [a.csv](sandbox:/mnt/data/a.csv)"
    annotation = final.output[-1].content[0].annotations[0]
    assert final.output_text[annotation.start_index : annotation.end_index] == sandbox_link("a.csv")
    assert final.usage is not None
    assert final.usage.total_tokens == 15
    assert final.output[1].outputs[0].logs == "1\n"


async def test_outputs_need_include_on_openai_but_not_on_yandex() -> None:
    for provider, expected in (("openai", None), ("yandex", "1\n")):
        async with running_responses_fake(provider) as fake:
            fake.enqueue(Scenario().code("print(1)", logs="1\n"))
            client = fake.client()
            async with client.responses.stream(model="m", input="q", tools=TOOLS) as stream:
                final = await stream.get_final_response()
        outputs = final.output[0].outputs
        assert (outputs[0].logs if outputs else None) == expected


async def test_generated_files_are_served_where_the_provider_serves_them() -> None:
    for provider in ("openai", "yandex"):
        async with running_responses_fake(provider) as fake:
            fake.enqueue(
                Scenario().code("...", saves={"a.csv": b"1\n"}).text(sandbox_link("a.csv"))
            )
            client = fake.client()
            async with client.responses.stream(model="m", input="q", tools=TOOLS) as stream:
                final = await stream.get_final_response()
            citation = final.output[-1].content[0].annotations[0]
            container_path = client.containers.files.content.retrieve(
                citation.file_id, container_id=citation.container_id
            )
            files_path = client.files.content(citation.file_id)
            if provider == "openai":
                assert citation.file_id.startswith("cfile_")
                assert (await container_path).read() == b"1\n"
                with pytest.raises(openai.NotFoundError):
                    await files_path
            else:
                assert len(citation.file_id) == 20
                assert (await files_path).read() == b"1\n"
                with pytest.raises(openai.NotFoundError):
                    await container_path


async def test_files_endpoints_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    source.write_bytes(b"a,b\n1,2\n")
    async with running_responses_fake() as fake:
        client = fake.client()
        with source.open("rb") as handle:
            created = await client.files.create(file=("data.csv", handle), purpose="assistants")
        assert (created.filename, created.bytes, created.purpose) == ("data.csv", 8, "assistants")
        assert (await client.files.retrieve(created.id)).id == created.id
        assert (await client.files.content(created.id)).read() == b"a,b\n1,2\n"
        assert fake.uploads[0].data == b"a,b\n1,2\n"
        assert fake.requests[0].form == {"purpose": "assistants"}
        fake.vanish_file(created.id)
        with pytest.raises(openai.NotFoundError):
            await client.files.retrieve(created.id)
        other = fake.add_file(b"z")
        assert (await client.files.delete(other)).deleted
        with pytest.raises(openai.NotFoundError):
            await client.files.delete(other)


async def test_requests_are_checked_like_the_real_service() -> None:
    async with running_responses_fake() as fake:
        client = fake.client()
        bad_key = [{"type": "code_interpreter", "container": {"type": "auto", "files": ["x"]}}]
        with pytest.raises(openai.BadRequestError) as unknown:
            await client.responses.create(model="m", input="q", tools=bad_key, stream=True)
        assert unknown.value.code == "unknown_parameter"
        missing = [{"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["f"]}}]
        with pytest.raises(openai.BadRequestError, match="File 'f' not found"):
            await client.responses.create(model="m", input="q", tools=missing, stream=True)
        with pytest.raises(openai.BadRequestError) as previous:
            await client.responses.create(
                model="m", input="q", tools=TOOLS, stream=True, previous_response_id="resp_x"
            )
        assert previous.value.param == "previous_response_id"

        fake.enqueue(Scenario().text("hi"), Scenario().text("again"))
        async with client.responses.stream(model="m", input="q", tools=TOOLS) as stream:
            first = await stream.get_final_response()
        fake.expire_containers()
        with pytest.raises(openai.BadRequestError, match="Container is expired"):
            await client.responses.create(
                model="m", input="q", tools=TOOLS, stream=True, previous_response_id=first.id
            )
        assert len(fake.scenarios) == 1  # refused requests consume no scenario


async def test_http_errors_come_first_with_their_headers() -> None:
    async with running_responses_fake() as fake:
        fake.enqueue(Scenario().text("ok").http_error(429, times=2, retry_after="7"))
        client = fake.client()
        for _ in range(2):
            with pytest.raises(openai.RateLimitError) as error:
                await client.responses.create(model="m", input="q", tools=TOOLS, stream=True)
            assert error.value.response.headers["retry-after"] == "7"
            assert error.value.code == "rate_limit_exceeded"
        async with client.responses.stream(model="m", input="q", tools=TOOLS) as stream:
            assert (await stream.get_final_response()).output_text == "ok"


async def test_default_scenario_factory_sees_the_request() -> None:
    async with running_responses_fake() as fake:
        fake.default_scenario = lambda body: Scenario().text(f"echo: {body['input']}")
        client = fake.client()
        for question in ("one", "two"):
            async with client.responses.stream(model="m", input=question, tools=TOOLS) as stream:
                assert (await stream.get_final_response()).output_text == f"echo: {question}"


async def test_client_disconnect_is_recorded() -> None:
    async with running_responses_fake() as fake:
        fake.enqueue(Scenario().text("never finished").stall(after=3))
        client = fake.client()
        stream = await client.responses.create(model="m", input="q", tools=TOOLS, stream=True)
        first = await stream.__anext__()
        assert fake.disconnects == []
        await stream.close()
        assert await fake.wait_for_disconnect()
        assert fake.disconnects == [first.response.id]


async def stream_with_invalid_event() -> None:
    async with running_responses_fake() as fake:
        fake.enqueue(Scenario().text("x").fail(code="not_a_known_code"))
        client = fake.client()
        stream = await client.responses.create(model="m", input="q", tools=TOOLS, stream=True)
        async for _ in stream:
            pass


async def test_an_invalid_event_fails_loudly() -> None:
    with pytest.raises(ProtocolError, match=r"response\.failed"):
        await stream_with_invalid_event()


async def request_without_scenario() -> None:
    async with running_responses_fake() as fake:
        with pytest.raises(openai.InternalServerError):
            await fake.client().responses.create(model="m", input="q", tools=TOOLS, stream=True)


async def test_no_scenario_fails_loudly() -> None:
    with pytest.raises(ProtocolError, match="no scenario queued"):
        await request_without_scenario()


def test_shared_transcript_lacks_one_field_the_sdk_requires() -> None:
    """The notes' transcript omits `cache_write_tokens` (required by openai 3.57); nothing else
    differs from the SDK's models. The replay scenario adds it with `fill_usage_details`."""
    adapter: TypeAdapter[object] = TypeAdapter(ResponseStreamEvent)
    events = [
        json.loads(line[len("data: ") :])
        for line in TRANSCRIPT.read_text(encoding="utf-8").splitlines()
        if line.startswith("data: ")
    ]
    assert len(events) == 22
    rejected = []
    for event in events:
        try:
            adapter.validate_python(event)
        except ValidationError:
            rejected.append(event["type"])
        adapter.validate_python(fill_usage_details(event))
    assert rejected == ["response.completed"]


async def test_transcript_replays_verbatim_apart_from_the_fix() -> None:
    async with running_responses_fake() as fake:
        fake.enqueue(
            Scenario.replay(
                TRANSCRIPT, files={"revenue_by_region.png": b"png"}, fix=fill_usage_details
            )
        )
        client = fake.client()
        async with client.responses.stream(model="m", input="q", tools=TOOLS) as stream:
            final = await stream.get_final_response()
        assert final.id == "resp_68a0c0ffee0001"
        content = await client.containers.files.content.retrieve(
            "cfile_68a0c0ffee0005", container_id="cntr_68a0c0ffee0004"
        )
        assert content.read() == b"png"
        assert (await client.responses.retrieve(final.id)).output_text == final.output_text


async def test_only_background_responses_can_be_cancelled_and_retrieve_honours_include() -> None:
    async with running_responses_fake() as fake:
        fake.enqueue(Scenario().code("print(1)", logs="1\n"), Scenario().text("bg").stall(after=2))
        client = fake.client()
        async with client.responses.stream(model="m", input="q", tools=TOOLS) as stream:
            plain = await stream.get_final_response()
        with pytest.raises(openai.BadRequestError):
            await client.responses.cancel(plain.id)
        bare = await client.responses.retrieve(plain.id)
        full = await client.responses.retrieve(plain.id, include=["code_interpreter_call.outputs"])
        assert bare.output[0].outputs is None
        assert full.output[0].outputs is not None
        assert full.output[0].outputs[0].logs == "1\n"

        events = await client.responses.create(model="m", input="q", background=True, stream=True)
        response_id = ""
        async for event in events:
            response_id = response_id or event.response.id
            break
        await events.close()
        cancelled = await client.responses.cancel(response_id)
    assert cancelled.status == "cancelled"
    assert cancelled.background is True
    assert fake.cancelled == [response_id]


async def test_background_can_be_refused_naming_the_parameter() -> None:
    async with running_responses_fake("yandex") as fake:
        fake.refuse_background = True
        fake.enqueue(Scenario().text("x"))
        with pytest.raises(openai.BadRequestError) as refused:
            await fake.client().responses.create(model="m", input="q", background=True, stream=True)
    assert refused.value.param == "background"
