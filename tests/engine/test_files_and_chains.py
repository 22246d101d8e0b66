"""Input-file reuse and re-upload, conversation chains, artifact caps, remote file deletion."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.engine import (
    FailureReason,
    TurnFailed,
    TurnRequest,
    UploadingFiles,
)
from bot.engine.files import MemoryRemoteIndex
from tests.engine.conftest import EngineFactory, collect, finished, make_data_file, png
from tests.fakes.responses_api import ResponsesFake, Scenario, sandbox_link


def file_ids(fake: ResponsesFake, request_number: int) -> list[str]:
    body = fake.response_requests()[request_number].json
    return body["tools"][0]["container"]["file_ids"]


async def test_same_bytes_are_uploaded_once(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(Scenario().text("one"), Scenario().text("two"))
    engine = make_engine(openai_fake)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first_copy = make_data_file(tmp_path / "a")  # two local copies of the same bytes
    second_copy = make_data_file(tmp_path / "b")
    first = await collect(engine.run(TurnRequest("one", [first_copy])))
    second = await collect(engine.run(TurnRequest("two", [second_copy])))
    finished(first), finished(second)
    assert len(openai_fake.uploads) == 1
    assert [type(e) for e in first].count(UploadingFiles) == 1
    assert UploadingFiles not in [type(e) for e in second]
    assert file_ids(openai_fake, 0) == file_ids(openai_fake, 1) == [openai_fake.uploads[0].id]


async def test_other_scope_gets_its_own_copy_and_each_file_is_attached(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(Scenario().text("ok"))
    engine = make_engine(openai_fake)
    mine = make_data_file(tmp_path, "sales.csv", scope="chat:1")
    theirs = make_data_file(tmp_path, "sales.csv", scope="chat:2")
    other = make_data_file(tmp_path, "costs.csv", b"item,cost\nrent,10\n", scope="chat:1")
    events = await collect(engine.run(TurnRequest("q", [mine, theirs, other])))
    finished(events)
    assert [e.count for e in events if isinstance(e, UploadingFiles)] == [3]
    assert sorted(u.filename for u in openai_fake.uploads) == [
        "costs.csv",
        "sales.csv",
        "sales.csv",
    ]
    assert file_ids(openai_fake, 0) == [u.id for u in openai_fake.uploads]


async def test_expired_remote_file_is_reuploaded_before_the_turn(
    openai_fake: ResponsesFake,
    make_engine: EngineFactory,
    remote_index: MemoryRemoteIndex,
    tmp_path: Path,
) -> None:
    openai_fake.enqueue(Scenario().text("one"), Scenario().text("two"))
    engine = make_engine(openai_fake, remote_check_interval=0)
    data_file = make_data_file(tmp_path)
    finished(await collect(engine.run(TurnRequest("one", [data_file]))))
    old_id = openai_fake.uploads[0].id
    openai_fake.vanish_file(old_id)

    events = await collect(engine.run(TurnRequest("two", [data_file])))
    finished(events)
    new_id = openai_fake.uploads[1].id
    assert new_id != old_id
    assert openai_fake.uploads[1].data == data_file.path.read_bytes()
    assert [e.count for e in events if isinstance(e, UploadingFiles)] == [1]
    assert f"/v1/files/{old_id}" in openai_fake.paths("GET")
    assert file_ids(openai_fake, 1) == [new_id]
    assert len(openai_fake.response_requests()) == 2  # no failed attempt
    assert remote_index.ids[(data_file.scope, data_file.sha256)] == new_id


@pytest.mark.parametrize("status", [400, 404])
async def test_file_refused_by_the_turn_request_is_reuploaded_and_the_turn_retried(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path, status: int
) -> None:
    openai_fake.missing_file_status = status
    openai_fake.enqueue(Scenario().text("one"), Scenario().text("two"))
    engine = make_engine(openai_fake, remote_check_interval=3600, max_retries=0)
    data_file = make_data_file(tmp_path)
    finished(await collect(engine.run(TurnRequest("one", [data_file]))))
    old_id = openai_fake.uploads[0].id
    openai_fake.vanish_file(old_id)  # the engine still trusts its recent check

    result = finished(await collect(engine.run(TurnRequest("two", [data_file]))))
    assert result.text == "two"
    new_id = openai_fake.uploads[1].id
    assert [file_ids(openai_fake, n) for n in (1, 2)] == [[old_id], [new_id]]


async def test_missing_local_copy_is_an_upload_failure(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    engine = make_engine(openai_fake)
    data_file = make_data_file(tmp_path)
    data_file.path.unlink()
    events = await collect(engine.run(TurnRequest("q", [data_file])))
    assert isinstance(events[-1], TurnFailed)
    assert events[-1].reason is FailureReason.UPLOAD_FAILED
    assert "sales.csv" in events[-1].detail


async def test_expired_container_starts_a_fresh_chain_with_the_files(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(Scenario().text("one"), Scenario().text("two"))
    engine = make_engine(openai_fake, max_retries=0)
    data_file = make_data_file(tmp_path)
    first = finished(await collect(engine.run(TurnRequest("one", [data_file]))))
    openai_fake.expire_containers()

    second = finished(
        await collect(
            engine.run(TurnRequest("two", [data_file], previous_response_id=first.response_id))
        )
    )
    assert second.text == "two"
    assert second.context_reset
    refused, fresh = (r.json for r in openai_fake.response_requests()[1:])
    assert refused["previous_response_id"] == first.response_id
    assert "previous_response_id" not in fresh
    assert fresh["tools"][0]["container"]["file_ids"] == [openai_fake.uploads[0].id]
    assert fresh["instructions"] == refused["instructions"]


async def test_unknown_previous_response_starts_a_fresh_chain(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(Scenario().text("fresh"))
    engine = make_engine(openai_fake, max_retries=0)
    request = TurnRequest("q", [make_data_file(tmp_path)], previous_response_id="resp_gone")
    result = finished(await collect(engine.run(request)))
    assert result.context_reset
    assert result.text == "fresh"
    assert len(openai_fake.response_requests()) == 2


async def test_artifact_count_cap(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    saves = {f"t{n}.csv": f"n\n{n}\n".encode() for n in range(4)}
    openai_fake.enqueue(
        Scenario()
        .code("...", saves=saves, images=[png()])
        .text(" ".join(sandbox_link(name) for name in saves))
    )
    engine = make_engine(openai_fake, max_artifacts=2)
    result = finished(await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)]))))
    assert [a.name for a in result.artifacts] == ["t0.csv", "t1.csv"]
    assert result.dropped_artifacts == 3  # two more tables and the inline image
    downloads = [p for p in openai_fake.paths("GET") if p.endswith("/content")]
    assert len(downloads) == 2  # files over the cap are not even downloaded


async def test_artifact_size_cap(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    small = png()
    big = b"x" * 5000
    openai_fake.enqueue(
        Scenario()
        .code("...", saves={"big.csv": big, "chart.png": small}, images=[b"\x89PNG" + big])
        .text(f"{sandbox_link('big.csv')} {sandbox_link('chart.png')}")
    )
    engine = make_engine(openai_fake, max_artifact_bytes=1000)
    result = finished(await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)]))))
    assert [(a.name, a.data) for a in result.artifacts] == [("chart.png", small)]
    assert result.dropped_artifacts == 2
    assert result.text == "**big.csv** **chart.png**"


async def test_sandbox_links_are_rewritten(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(
        Scenario()
        .code("...", saves={"top.csv": b"a\n1\n"})
        .text(
            "Download [the table](sandbox:/mnt/data/top.csv), see ![chart](sandbox:/mnt/data/c.png)"
            " or open sandbox:/mnt/data/top.csv directly; it is in /mnt/data/top.csv."
        )
    )
    engine = make_engine(openai_fake)
    result = finished(await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)]))))
    assert result.text == (
        "Download **the table**, see **chart** or open top.csv directly; it is in top.csv."
    )
    assert "sandbox:" not in result.text
    assert "/mnt/data" not in result.text


async def test_delete_remote_file(openai_fake: ResponsesFake, make_engine: EngineFactory) -> None:
    engine = make_engine(openai_fake)
    file_id = openai_fake.add_file(b"a,b\n1,2\n")
    await engine.delete_remote_file(file_id)
    assert file_id not in openai_fake.files
    await engine.delete_remote_file(file_id)  # already gone: a 404, ignored
    assert openai_fake.paths("DELETE") == [f"/v1/files/{file_id}"] * 2
