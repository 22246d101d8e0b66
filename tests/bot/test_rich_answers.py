"""Rich answers (RICH_ANSWERS=auto): an answer with tables, headings, formulas or several charts
goes out as one rich message holding its real tables, its charts where it names them and each
step's code, collapsed; Telegram refusing it, or RICH_ANSWERS=off, gives today's answer."""

from __future__ import annotations

from pathlib import Path

from tests.bot.harness import ask, code_file, person_with_sales, png, roomy_world
from tests.fakes.responses_api import Scenario, sandbox_link
from tests.fakes.telegram_api import StoredMessage, TelegramFake

CHARTS = {"bars.png": png(640, 480, "teal"), "trend.png": png(500, 300, "orange")}
CODE = "import matplotlib\nplot(df)"
TEXT = (
    "## Revenue by region\n\n"
    "| Region | Revenue | Units |\n|:--|--:|--:|\n| East | 2500 | 21 |\n| West | 1940 | 17 |\n\n"
    f"The bars in {sandbox_link('bars.png')} show East ahead.\n\n"
    f"Over time ({sandbox_link('trend.png')}) every region grew.\n\n"
    "Growth overall: $g = 5260 / 4900 - 1$."
)


def rich_turn() -> Scenario:
    return Scenario().code(CODE, saves=CHARTS).text(TEXT)


def rich_messages(tg: TelegramFake, chat) -> list[StoredMessage]:  # type: ignore[no-untyped-def]
    return [m for m in tg.messages(chat) if m.rich is not None]


async def test_an_answer_with_a_table_and_charts_is_one_rich_message(tmp_path: Path) -> None:
    async with roomy_world(tmp_path, rich_answers="auto") as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        llm.enqueue(rich_turn())
        progress = await ask(tg, chat, ann, "Revenue by region, with charts")
        [answer] = await tg.wait_for(lambda: rich_messages(tg, chat), timeout=15)
        await tg.wait_for(lambda: progress.text.startswith("✅ Done"))

        blocks = answer.rich["blocks"]
        kinds = [b["type"] for b in blocks]
        assert kinds[:2] == ["heading", "table"]
        [table] = [b for b in blocks if b["type"] == "table"]
        assert [[c["text"] for c in row] for row in table["cells"]] == [
            ["Region", "Revenue", "Units"],
            ["East", "2500", "21"],
            ["West", "1940", "17"],
        ]
        # each chart right after the paragraph that names it
        bars = kinds.index("photo")
        assert "bars.png" in blocks[bars - 1]["text"]
        assert "trend.png" in blocks[bars + 1]["text"]
        assert kinds[bars + 2] == "photo"
        assert tg.rich_photos(answer) == [CHARTS["bars.png"], CHARTS["trend.png"]]
        # the code, collapsed, instead of the .py file
        [details] = [b for b in blocks if b["type"] == "details"]
        assert details["summary"] == "Step 1"
        assert details["blocks"][0]["type"] == "pre"
        assert details["blocks"][0]["text"] == CODE
        assert answer.reply_to is not None
        assert answer.reply_to.text.startswith("Revenue by")
        # nothing else: no album, no separate answer text, no code file
        assert tg.calls_of("sendMediaGroup") == []
        assert tg.calls_of("sendPhoto") == []
        assert tg.calls_of("sendDocument") == []
        assert not [m for m in tg.messages(chat) if "East ahead" in (m.text or "")]
        assert tg.drafts
        assert tg.live_draft(chat) is None


async def test_a_refused_rich_message_falls_back_to_the_usual_answer(tmp_path: Path) -> None:
    async with roomy_world(tmp_path, rich_answers="auto") as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        tg.refuse_next("sendRichMessage", "RICH_MESSAGE_RICH_TEXT_INVALID")
        llm.enqueue(rich_turn())
        progress = await ask(tg, chat, ann, "Revenue by region, with charts")
        await code_file(tg, chat, progress)

        assert [c.ok for c in tg.calls_of("sendRichMessage")] == [False]
        assert rich_messages(tg, chat) == []
        assert [m for m in tg.messages(chat) if "East ahead" in (m.text or "")]
        assert sorted(p.filename for p in tg.sent_photos) == ["bars.png", "trend.png"]


async def test_with_rich_answers_off_nothing_changes(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:  # the default: off
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        llm.enqueue(rich_turn())
        progress = await ask(tg, chat, ann, "Revenue by region, with charts")
        await code_file(tg, chat, progress)

        assert tg.calls_of("sendRichMessage") == []
        assert [m for m in tg.messages(chat) if "East ahead" in (m.text or "")]
        assert sorted(p.filename for p in tg.sent_photos) == ["bars.png", "trend.png"]


async def test_a_plain_answer_stays_plain_in_auto(tmp_path: Path) -> None:
    async with roomy_world(tmp_path, rich_answers="auto") as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        llm.enqueue(Scenario().code("print(1)", logs="1\n").text("East leads with **2500**."))
        progress = await ask(tg, chat, ann, "Who leads?")
        await code_file(tg, chat, progress)
        assert tg.calls_of("sendRichMessage") == []
        assert [m for m in tg.messages(chat) if (m.text or "") == "East leads with 2500."]
