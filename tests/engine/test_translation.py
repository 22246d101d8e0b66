"""The stream translator and text helpers on their own, with hand-made inputs."""

from __future__ import annotations

import base64
from types import SimpleNamespace

from bot.engine import (
    CodeDone,
    CodeFinished,
    CodeStepStarted,
    FailureReason,
    FileCited,
    TextDelta,
    rewrite_sandbox_links,
)
from bot.engine.stream import TurnAccumulator


def ev(**fields: object) -> SimpleNamespace:
    return SimpleNamespace(**fields)


def test_unknown_and_partial_events_are_tolerated() -> None:
    acc = TurnAccumulator()
    assert acc.feed(ev(type="response.some_future_event", sequence_number=1)) == []
    assert acc.feed(ev(type="response.output_text.delta")) == []  # no delta field at all
    out = acc.feed(ev(type="response.code_interpreter_call_code.delta", output_index=0, delta="a"))
    assert isinstance(out[0], CodeStepStarted)
    assert out[0].step == 1
    assert acc.status == "running"
    assert acc.output_seen


def test_code_done_falls_back_to_the_deltas_when_final_code_is_empty() -> None:
    acc = TurnAccumulator()
    for delta in ("x = ", "1"):
        acc.feed(ev(type="response.code_interpreter_call_code.delta", item_id="ci", delta=delta))
    out = acc.feed(ev(type="response.code_interpreter_call_code.done", item_id="ci", code=""))
    assert out == [CodeDone(1, "x = 1")]


def test_steps_are_keyed_by_item_so_interleaved_events_stay_apart() -> None:
    acc = TurnAccumulator()
    acc.feed(
        ev(
            type="response.output_item.added",
            output_index=0,
            item={"type": "code_interpreter_call", "id": "ci_a"},
        )
    )
    acc.feed(
        ev(
            type="response.output_item.added",
            output_index=2,
            item={"type": "code_interpreter_call", "id": "ci_b"},
        )
    )
    acc.feed(ev(type="response.code_interpreter_call_code.delta", item_id="ci_b", delta="b"))
    acc.feed(ev(type="response.code_interpreter_call_code.delta", item_id="ci_a", delta="a"))
    item = {
        "type": "code_interpreter_call",
        "id": "ci_b",
        "status": "completed",
        "outputs": [{"type": "logs", "logs": "B\n"}],
    }
    out = acc.feed(ev(type="response.output_item.done", output_index=2, item=item))
    assert out == [CodeDone(2, "b"), CodeFinished(2, "B\n")]
    assert [(s.step, s.code) for s in acc.code_steps()] == [(1, "a"), (2, "b")]


def test_dict_annotations_and_interim_messages() -> None:
    acc = TurnAccumulator()
    acc.feed(ev(type="response.output_text.delta", item_id="m1", delta="Looking."))
    out = acc.feed(ev(type="response.output_text.delta", item_id="m2", delta="Done."))
    assert out == [TextDelta("Done.", "Looking.\n\nDone.")]
    annotation = {
        "type": "container_file_citation",
        "file_id": "f1",
        "container_id": "c",
        "filename": "/mnt/data/a.png",
        "start_index": 0,
        "end_index": 0,
    }
    assert acc.feed(ev(type="response.output_text.annotation.added", annotation=annotation)) == [
        FileCited("a.png")
    ]
    assert acc.feed(ev(type="response.output_text.annotation.added", annotation=annotation)) == []
    assert acc.feed(ev(type="response.output_text.annotation.added", annotation=None)) == []


def test_inline_image_data_url_is_decoded() -> None:
    acc = TurnAccumulator()
    url = "data:image/png;base64," + base64.b64encode(b"\x89PNGdata").decode()
    item = {
        "type": "code_interpreter_call",
        "id": "ci",
        "status": "completed",
        "code": "plot()",
        "outputs": [{"type": "image", "url": url}, {"type": "image", "url": "https://x/y.png"}],
    }
    out = acc.feed(ev(type="response.output_item.done", output_index=0, item=item))
    images = [e for e in out if type(e).__name__ == "ImageOutput"]
    assert len(images) == 1
    assert images[0].artifact.data == b"\x89PNGdata"
    assert images[0].artifact.mime_type == "image/png"


def test_terminal_events() -> None:
    failed = TurnAccumulator()
    failed.feed(ev(type="error", code="rate_limit_exceeded", message="slow down"))
    assert failed.failure_reason is FailureReason.RATE_LIMITED
    assert failed.transient_failure
    assert failed.feed(ev(type="response.completed", response={"id": "r"})) == []
    incomplete = TurnAccumulator()
    incomplete.feed(
        ev(
            type="response.incomplete",
            response={"incomplete_details": {"reason": "content_filter"}},
        )
    )
    assert incomplete.failure_reason is FailureReason.INCOMPLETE
    assert "content_filter" in incomplete.failure_message


def test_rewrite_sandbox_links() -> None:
    assert rewrite_sandbox_links("no links here") == "no links here"
    assert rewrite_sandbox_links("[x.csv](sandbox:/mnt/data/x.csv)") == "**x.csv**"
    assert rewrite_sandbox_links("[](sandbox:/mnt/data/out/y.png)") == "**y.png**"
    assert rewrite_sandbox_links("[`x.csv`](sandbox:/mnt/data/x.csv)") == "`x.csv`"
    assert rewrite_sandbox_links("see sandbox:/mnt/data/x.csv.") == "see x.csv."
    assert rewrite_sandbox_links("(файл: /mnt/data/отчёт.xlsx)") == "(файл: отчёт.xlsx)"
    assert rewrite_sandbox_links("[site](https://example.org/mnt/data/a)") == (
        "[site](https://example.org/mnt/data/a)"
    )
