"""Complete turns through the real SDK and HTTP against the Responses API fake."""

from __future__ import annotations

from pathlib import Path

from bot.config import Settings
from bot.engine import (
    AnalysisEngine,
    CodeDelta,
    CodeDone,
    CodeFinished,
    CodeRunning,
    CodeStepStarted,
    FileCited,
    ImageOutput,
    TextDelta,
    TurnRequest,
    TurnStarted,
    UploadingFiles,
)
from bot.engine.files import MemoryRemoteIndex
from tests.engine.conftest import (
    TRANSCRIPT,
    EngineFactory,
    collect,
    finished,
    make_data_file,
    png,
)
from tests.fakes.responses_api import (
    ResponsesFake,
    Scenario,
    fill_usage_details,
    running_responses_fake,
    sandbox_link,
)

CSV = b"region,revenue\nEast,1200\nWest,950\n"


async def test_multi_step_turn_with_code_logs_png_and_csv(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    chart = png()
    openai_fake.enqueue(
        Scenario()
        .code(
            "import pandas as pd\ndf = pd.read_csv('/mnt/data/sales.csv')\nprint(df.shape)",
            logs="(2, 2)\n",
        )
        .code(
            "summary = df.groupby('region').revenue.sum()\nsummary.plot.bar()\n"
            "plt.savefig('/mnt/data/revenue.png')\nsummary.to_csv('/mnt/data/revenue.csv')",
            logs="saved\n",
            saves={"revenue.png": chart, "revenue.csv": CSV},
        )
        .text(
            f"East leads with 1200.\n\nChart: {sandbox_link('revenue.png')}\n"
            f"Table: {sandbox_link('revenue.csv')}"
        )
        .usage(900, 150)
    )
    engine = make_engine(openai_fake)
    events = await collect(
        engine.run(TurnRequest("Which region sells most?", [make_data_file(tmp_path)]))
    )
    result = finished(events)

    kinds = [type(e) for e in events]
    assert kinds[:3] == [UploadingFiles, TurnStarted, CodeStepStarted]
    assert [e.step for e in events if isinstance(e, CodeStepStarted)] == [1, 2]
    for step in (1, 2):
        step_kinds = [type(e) for e in events if getattr(e, "step", None) == step]
        assert step_kinds[0] is CodeStepStarted
        assert CodeDelta in step_kinds
        assert step_kinds[-3:] == [CodeDone, CodeRunning, CodeFinished]
    deltas = [e for e in events if isinstance(e, CodeDelta) and e.step == 1]
    assert deltas[-1].code == result.code_steps[0].code
    assert [e.logs for e in events if isinstance(e, CodeFinished)] == ["(2, 2)\n", "saved\n"]
    assert [e.filename for e in events if isinstance(e, FileCited)] == [
        "revenue.png",
        "revenue.csv",
    ]
    streamed = [e for e in events if isinstance(e, TextDelta)][-1].text
    assert streamed.endswith(sandbox_link("revenue.csv"))  # raw while streaming

    assert [(a.name, a.mime_type, a.data) for a in result.artifacts] == [
        ("revenue.png", "image/png", chart),
        ("revenue.csv", "text/csv", CSV),
    ]
    assert result.artifacts[0].is_image
    assert not result.artifacts[1].is_image
    assert result.text == "East leads with 1200.\n\nChart: **revenue.png**\nTable: **revenue.csv**"
    assert [s.logs for s in result.code_steps] == ["(2, 2)\n", "saved\n"]
    assert result.usage.input_tokens == 900
    assert result.usage.total_tokens == 1050
    assert result.dropped_artifacts == 0
    assert not result.context_reset
    assert result.response_id == events[1].response_id


async def test_text_only_answer_downloads_nothing(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(Scenario().text("Привет! Загрузите файл, и я его проанализирую.", chunks=5))
    engine = make_engine(openai_fake)
    events = await collect(engine.run(TurnRequest("Привет", [make_data_file(tmp_path)])))
    result = finished(events)
    assert result.text == "Привет! Загрузите файл, и я его проанализирую."
    assert result.artifacts == ()
    assert result.code_steps == ()
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(texts) == 5
    assert texts[-1] == result.text
    assert not [p for p in openai_fake.paths("GET") if "/content" in p or "/responses/" in p]


async def test_yandex_sends_folder_and_downloads_through_files_api(
    yandex_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    chart = png()
    yandex_fake.enqueue(
        Scenario()
        .code("df.plot()\nplt.savefig('/mnt/data/chart.png')", logs="", saves={"chart.png": chart})
        .text(f"Готово: {sandbox_link('chart.png')}")
    )
    engine = make_engine(yandex_fake, client_kwargs={"project": "folder-1"})
    result = finished(await collect(engine.run(TurnRequest("График", [make_data_file(tmp_path)]))))

    assert [(a.name, a.data) for a in result.artifacts] == [("chart.png", chart)]
    download = [p for p in yandex_fake.paths("GET") if p.endswith("/content")]
    assert len(download) == 1
    assert download[0].startswith("/v1/files/")
    assert not [p for p in yandex_fake.paths() if p.startswith("/v1/containers/")]
    generated_id = result.artifacts[0].file_id
    assert yandex_fake.paths("DELETE") == [f"/v1/files/{generated_id}"]  # the input file stays
    assert list(yandex_fake.files) == [yandex_fake.uploads[0].id]
    sent = yandex_fake.response_requests()[0]
    assert sent.headers["openai-project"] == "folder-1"
    assert sent.json["model"] == "gpt://folder-1/qwen3-235b-a22b-fp8/latest"
    assert "include" not in sent.json


async def test_openai_downloads_from_the_container_and_asks_for_outputs(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(
        Scenario()
        .code("df.to_csv('/mnt/data/out.csv')", logs="done\n", saves={"out.csv": CSV})
        .text(f"See {sandbox_link('out.csv')}.")
    )
    engine = make_engine(openai_fake)
    data_file = make_data_file(tmp_path)
    result = finished(await collect(engine.run(TurnRequest("Export", [data_file]))))

    assert [(a.name, a.mime_type, a.data) for a in result.artifacts] == [
        ("out.csv", "text/csv", CSV)
    ]
    assert result.code_steps[0].logs == "done\n"  # outputs came back because we asked for them
    download = [p for p in openai_fake.paths("GET") if p.endswith("/content")]
    assert len(download) == 1
    assert download[0].startswith("/v1/containers/cntr_")
    body = openai_fake.response_requests()[0].json
    assert body["include"] == ["code_interpreter_call.outputs"]
    assert body["stream"] is True
    assert body["input"] == "Export"
    assert body["tools"] == [
        {
            "type": "code_interpreter",
            "container": {"type": "auto", "file_ids": [openai_fake.uploads[0].id]},
        }
    ]
    assert "previous_response_id" not in body
    assert openai_fake.paths("DELETE") == []  # container files expire with the container
    upload = openai_fake.uploads[0]
    assert (upload.filename, upload.purpose, upload.data) == ("sales.csv", "assistants", CSV)


async def test_inline_images_are_artifacts_and_deduplicated_with_cited_copies(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    shown, saved_too = png((0, 0, 255)), png((0, 255, 0))
    openai_fake.enqueue(
        Scenario()
        .code("plt.show()", images=[shown, saved_too], saves={"green.png": saved_too})
        .text(f"Two charts; the green one is {sandbox_link('green.png')}.")
    )
    engine = make_engine(openai_fake)
    events = await collect(engine.run(TurnRequest("Plot", [make_data_file(tmp_path)])))
    result = finished(events)

    inline = [e for e in events if isinstance(e, ImageOutput)]
    assert [(e.step, e.artifact.data, e.artifact.mime_type) for e in inline] == [
        (1, shown, "image/png"),
        (1, saved_too, "image/png"),
    ]
    assert [a.data for a in result.artifacts] == [saved_too, shown]
    assert result.artifacts[0].name == "green.png"
    assert result.artifacts[1].name.endswith(".png")
    assert result.artifacts[1].is_image


async def test_follow_up_carries_previous_response_id_and_resends_instructions(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(Scenario().text("First."), Scenario().text("Second."))
    engine = make_engine(openai_fake)
    data_file = make_data_file(tmp_path)
    first = finished(await collect(engine.run(TurnRequest("one", [data_file], language="en"))))
    second = finished(
        await collect(
            engine.run(
                TurnRequest(
                    "two", [data_file], previous_response_id=first.response_id, language="en"
                )
            )
        )
    )
    assert second.text == "Second."
    assert not second.context_reset
    one, two = (r.json for r in openai_fake.response_requests())
    assert two["previous_response_id"] == first.response_id
    assert two["instructions"] == one["instructions"]
    assert "`sales.csv`" in two["instructions"]
    assert "English" in two["instructions"]
    assert "plt.savefig('/mnt/data/<name>.png'" in two["instructions"]
    assert two["tools"] == one["tools"]  # the files are attached every turn
    assert len(openai_fake.uploads) == 1


async def test_replayed_transcript_gives_answer_artifacts_and_logs(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    chart, table = png(), b"region,revenue\nEast,1200\nWest,950\n"
    openai_fake.enqueue(
        Scenario.replay(
            TRANSCRIPT,
            files={"revenue_by_region.png": chart, "revenue_by_region.csv": table},
            fix=fill_usage_details,
        )
    )
    engine = make_engine(openai_fake)
    events = await collect(
        engine.run(TurnRequest("Revenue by region?", [make_data_file(tmp_path)]))
    )
    result = finished(events)
    assert result.response_id == "resp_68a0c0ffee0001"
    assert result.text == (
        "East leads with 1200 in revenue.\n\n"
        "Chart: **revenue_by_region.png**\nTable: **revenue_by_region.csv**"
    )
    assert [(a.name, a.mime_type, a.data, a.file_id) for a in result.artifacts] == [
        ("revenue_by_region.png", "image/png", chart, "cfile_68a0c0ffee0005"),
        ("revenue_by_region.csv", "text/csv", table, "cfile_68a0c0ffee0006"),
    ]
    assert len(result.code_steps) == 1
    assert "East     1200" in result.code_steps[0].logs
    assert "plt.savefig('/mnt/data/revenue_by_region.png')" in result.code_steps[0].code
    assert (result.usage.input_tokens, result.usage.output_tokens) == (812, 196)


async def test_files_cited_only_in_the_stored_response_are_fetched_via_retrieve(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(
        Scenario()
        .code("df.to_csv('/mnt/data/t.csv')", saves={"t.csv": CSV})
        .text(f"Table: {sandbox_link('t.csv')}")
        .without_stream_annotations()
    )
    engine = make_engine(openai_fake)
    events = await collect(engine.run(TurnRequest("Table", [make_data_file(tmp_path)])))
    result = finished(events)
    assert [(a.name, a.data) for a in result.artifacts] == [("t.csv", CSV)]
    assert f"/v1/responses/{result.response_id}" in openai_fake.paths("GET")
    assert [e.filename for e in events if isinstance(e, FileCited)] == ["t.csv"]


async def test_engine_from_settings_talks_to_yandex_with_folder_and_key(tmp_path: Path) -> None:
    async with running_responses_fake(provider="yandex") as fake:
        fake.require_api_key = "yc-secret-key"
        fake.enqueue(Scenario().code("print(2)", logs="2\n").text("Два."))
        settings = Settings(
            _env_file=None,
            telegram_bot_token="123:abc",
            llm_provider="yandex",
            yandex_api_key="yc-secret-key",
            yandex_folder_id="b1gfolder",
            llm_base_url=fake.base_url,
            llm_max_retries=0,
        )
        engine = AnalysisEngine.from_settings(settings, MemoryRemoteIndex())
        try:
            result = finished(
                await collect(engine.run(TurnRequest("2?", [make_data_file(tmp_path)])))
            )
        finally:
            await engine.aclose()
        assert result.text == "Два."
        assert result.code_steps[0].logs == "2\n"
        sent = fake.response_requests()[0]
        assert sent.json["model"] == "gpt://b1gfolder/qwen3-235b-a22b-fp8/latest"
        assert sent.headers["openai-project"] == "b1gfolder"
        assert sent.headers["authorization"] == "Bearer yc-secret-key"
        assert sent.headers["x-stainless-retry-count"] == "0"


async def test_custom_system_prompt_template(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(Scenario().text("ok"))
    engine = make_engine(
        openai_fake, system_prompt_template="Files:\n$files\nSpeak $language. {braces} stay."
    )
    finished(await collect(engine.run(TurnRequest("q", [make_data_file(tmp_path)], language="ru"))))
    instructions = openai_fake.response_requests()[0].json["instructions"]
    assert instructions.startswith("Files:\n1. `sales.csv`: 2 rows × 2 columns")
    assert "`region` (text), `revenue` (int)" in instructions
    assert instructions.endswith("Speak Russian. {braces} stay.")
