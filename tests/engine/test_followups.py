"""Follow-up questions at the end of the model's answer: parsed into `TurnResult.follow_ups`,
never shown in the answer, neither at the end nor while it streams."""

from __future__ import annotations

from pathlib import Path

from bot.engine import TextDelta, TurnRequest
from bot.engine.followups import split_follow_ups, visible_while_streaming
from tests.engine.conftest import EngineFactory, collect, finished, make_data_file
from tests.fakes.responses_api import ResponsesFake, Scenario

ANSWER = "East leads with **2500**.\n\n| region | revenue |\n|---|---|\n| East | 2500 |"
BLOCK = (
    "\n\n```followups\n- Which month grew fastest?\n* «Как West по units?»\n"
    "3. Show revenue per unit\n- One too many?\n```\n"
)


def test_block_is_split_off() -> None:
    visible, questions = split_follow_ups(ANSWER + BLOCK)
    assert visible == ANSWER
    assert questions == (
        "Which month grew fastest?",
        "Как West по units?",
        "Show revenue per unit",
    )


def test_no_block_or_empty_block_means_none() -> None:
    assert split_follow_ups(ANSWER) == (ANSWER, ())
    assert split_follow_ups(ANSWER + "\n\n```followups\n```") == (ANSWER, ())
    # an ordinary code block is part of the answer
    code = ANSWER + "\n\n```python\nprint(1)\n```"
    assert split_follow_ups(code) == (code, ())


def test_unclosed_block_and_spelling_variants() -> None:
    assert split_follow_ups("A.\n~~~follow-ups\n- Why?") == ("A.", ("Why?",))
    assert split_follow_ups("A.\n``` Follow_Ups \n1) Why?\n```\nB.") == ("A.\n\nB.", ("Why?",))


def test_long_or_repeated_questions_are_dropped() -> None:
    block = "A\n```followups\n- " + "x" * 300 + "\n- Same\n- Same\n- Other\n```"
    assert split_follow_ups(block)[1] == ("Same", "Other")


def test_streaming_hides_the_block_and_a_fence_being_written() -> None:
    full = ANSWER + BLOCK
    shown = [visible_while_streaming(full[:n]) for n in range(len(full) + 1)]
    assert all("follow" not in s and "`" not in s for s in shown)
    assert shown[-1] == ANSWER
    # a code fence that is not the follow-up block shows once it is told apart
    assert visible_while_streaming("Look:\n```py") == "Look:\n```py"
    assert visible_while_streaming("Look:\n```") == "Look:"


async def test_engine_strips_the_block_from_deltas_and_result(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(Scenario().text(ANSWER + BLOCK, chunks=12).usage(100, 20))
    engine = make_engine(openai_fake)
    events = await collect(engine.run(TurnRequest("Who leads?", [make_data_file(tmp_path)])))
    result = finished(events)
    assert result.text == ANSWER
    assert result.follow_ups == (
        "Which month grew fastest?",
        "Как West по units?",
        "Show revenue per unit",
    )
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 2
    assert all("followups" not in e.text and "Which month" not in e.text for e in deltas)
    assert deltas[-1].text == ANSWER
    assert "".join(e.delta for e in deltas) == ANSWER


async def test_engine_without_block_has_no_follow_ups(
    openai_fake: ResponsesFake, make_engine: EngineFactory, tmp_path: Path
) -> None:
    openai_fake.enqueue(Scenario().text(ANSWER).usage(100, 20))
    engine = make_engine(openai_fake)
    result = finished(await collect(engine.run(TurnRequest("?", [make_data_file(tmp_path)]))))
    assert (result.text, result.follow_ups) == (ANSWER, ())
