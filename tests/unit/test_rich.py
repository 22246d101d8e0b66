"""Choosing and composing rich answers: which answers need one, where the charts go, and the
limits that send an answer (or its code) the usual way."""

from __future__ import annotations

import io

from PIL import Image

from bot.engine.types import Artifact, CodeStep, TurnResult
from bot.telegram.i18n import translator
from bot.telegram.rich import RICH_MAX_CHARS, compose, needs_rich, plan, shape_of

t = translator("en")


def chart(name: str) -> Artifact:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(buffer, "PNG")
    return Artifact(name, "image/png", buffer.getvalue())


def test_tables_headings_formulas_or_several_charts_need_a_rich_message() -> None:
    assert not needs_rich(shape_of("East leads with **2500**, up $5 from $10."), 1)
    assert needs_rich(shape_of("| a | b |\n|---|---|\n| 1 | 2 |"), 0)
    assert needs_rich(shape_of("# Summary\n\ntext"), 0)
    assert needs_rich(shape_of("Growth is $g = a / b$."), 0)
    assert needs_rich(shape_of("plain"), 2)
    assert not needs_rich(shape_of("```\n# not a heading\n| not | a table |\n```"), 0)


def test_each_chart_follows_the_block_that_names_it_and_the_rest_end_the_answer() -> None:
    markdown = "# Report\n\nFirst **bars.png** shows it.\n\nThen more text.\n\nThe end."
    answer = compose(markdown, [chart("pie.png"), chart("bars.png")], [], t)
    assert answer is not None
    assert answer.markdown == (
        "# Report\n\nFirst **bars.png** shows it.\n\n"
        '![](tg://photo?id=chart2 "bars.png")\n\n'
        "Then more text.\n\nThe end.\n\n"
        '![](tg://photo?id=chart1 "pie.png")'
    )
    assert [m.id for m in answer.media] == ["chart1", "chart2"]
    assert not answer.has_code


def test_code_goes_collapsed_with_a_fence_longer_than_its_backticks() -> None:
    steps = [CodeStep(1, "print('```')"), CodeStep(2, "  ")]
    answer = compose("# Hi", [], steps, t)
    assert answer is not None
    assert answer.markdown == (
        "# Hi\n\n<details><summary>Step 1</summary>\n\n````python\nprint('```')\n````\n\n</details>"
    )


def test_limits_send_the_code_as_a_file_or_the_answer_the_usual_way() -> None:
    wide = "|" + "c|" * 21 + "\n|" + "-|" * 21 + "\n"
    assert compose(wide, [], [], t) is None
    assert compose("# Long\n\n" + "x" * RICH_MAX_CHARS, [], [], t) is None
    assert compose("# Many", [chart(f"{i}.png") for i in range(51)], [], t) is None
    assert compose("$$" + "x+" * 2100 + "x$$", [], [], t) is None  # crashes Telegram Desktop
    assert compose("$$" + "x+" * 100 + "x$$", [], [], t) is not None

    big_code = [CodeStep(1, "x = 1\n" * 6000)]
    result = TurnResult("resp", "# Fits\n\nshort", code_steps=tuple(big_code))
    answer = plan(result, t)
    assert answer is not None
    assert not answer.has_code
    assert "<details>" not in answer.markdown
    assert plan(TurnResult("resp", "just text"), t) is None
