"""What the progress message says as the engine's events arrive."""

from __future__ import annotations

from bot.engine.types import (
    CodeDelta,
    CodeFinished,
    CodeRunning,
    CodeStepStarted,
    Queued,
    TextDelta,
    TurnStarted,
)
from bot.telegram.i18n import translator
from bot.telegram.progress import ProgressView


def test_progress_follows_the_turn() -> None:
    view = ProgressView(translator("en"))
    view.apply(Queued(position=2))
    assert "number 2 in line" in view.render()
    view.apply(TurnStarted(response_id="r1"))
    view.apply(CodeStepStarted(step=1))
    code = "".join(f"line_{i} = {i}\n" for i in range(20))
    view.apply(CodeDelta(step=1, delta=code, code=code))
    text = view.render()
    assert "Writing code (step 1)" in text
    assert "line_19" in text
    assert "line_5 " not in text
    view.apply(CodeRunning(step=1))
    assert "Running the code (step 1)" in view.render()
    view.apply(CodeFinished(step=1, logs="ok"))
    view.apply(TextDelta(delta="East > West & co", text="East > West & co"))
    text = view.render()
    assert "Step 1 done" in text
    assert "Writing the answer" in text
    assert "East &gt; West &amp; co" in text


def test_long_answer_preview_stays_short() -> None:
    view = ProgressView(translator("ru"))
    answer = "слово " * 2000
    view.apply(TextDelta(delta=answer, text=answer))
    assert len(view.render()) < 1200


def test_answer_preview_drops_markdown_markup() -> None:
    view = ProgressView(translator("en"))
    text = "**East** leads, see [chart.png](sandbox:/mnt/data/chart.png)"
    view.apply(TextDelta(delta=text, text=text))
    rendered = view.render()
    assert "East leads" in rendered
    assert "**" not in rendered
    assert "sandbox:" not in rendered


def test_code_stays_out_when_the_chat_turned_it_off() -> None:
    view = ProgressView(translator("en"), show_code=False)
    view.apply(CodeStepStarted(step=1))
    view.apply(CodeDelta(step=1, delta="secret_sauce = 1", code="secret_sauce = 1"))
    text = view.render()
    assert "Writing code (step 1)" in text
    assert "secret_sauce" not in text
    assert "<pre>" not in text
