"""What an analysis looks like in the chat: the live progress message, long formatted answers,
charts and files, the code the model ran, failures in plain words, and Telegram's pace."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

from openpyxl import Workbook

from tests.bot.harness import ask, code_file, person_with_sales, png, roomy_world
from tests.fakes.responses_api import Scenario, sandbox_link
from tests.fakes.telegram_api import (
    NOT_MODIFIED,
    Chat,
    FloodLimits,
    StoredMessage,
    TelegramFake,
    utf16_len,
)

CODE = "import pandas as pd\ndf = pd.read_csv('/mnt/data/sales.csv')\nprint(df.revenue.sum())"


def after(tg: TelegramFake, chat: Chat, message: StoredMessage) -> list[StoredMessage]:
    return [m for m in tg.messages(chat) if m.message_id > message.message_id]


def not_modified_calls(tg: TelegramFake) -> list[Any]:
    return [c for c in tg.calls if c.error and NOT_MODIFIED in c.error]


# ---- the progress message -----------------------------------------------------------------


async def test_progress_is_one_message_edited_through_each_stage(tmp_path: Path) -> None:
    async with roomy_world(tmp_path, edit_interval_private=0) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        answer_text = "Revenue is **5260** in total. " * 6

        stages = [
            # (stall position, what the progress message shows while stalled)
            (6, "✍️ Writing code (step 1)…"),  # two of three code chunks sent
            (9, "⚙️ Running the code (step 1)…"),  # the interpreter started
            (15, "📝 Writing the answer…"),  # two answer chunks sent
        ]
        for position, shown in stages:
            gate = asyncio.Event()
            llm.enqueue(
                Scenario()
                .code(CODE, logs="5260\n")
                .text(answer_text, chunks=4)
                .stall(after=position, gate=gate)
            )
            progress = await ask(tg, chat, ann, f"Stage {position}?")
            await tg.wait_for(lambda progress=progress, shown=shown: shown in progress.content)
            [button] = progress.buttons
            assert button["text"] == "⏹ Cancel"
            if position == 6:
                assert "import pandas as pd" in progress.text
                assert any(e.get("language") == "python" for e in progress.entities)
            if position == 9:
                assert "print(df.revenue.sum())" in progress.text
            if position == 15:
                # in a private chat the answer so far is a draft; the progress keeps the steps
                assert "in total. Revenue is" not in progress.text
                assert "✅ Step 1 done" in progress.text
                await tg.wait_for(
                    lambda: "in total. Revenue is" in (getattr(tg.live_draft(chat), "text", ""))
                )
            gate.set()
            code = await code_file(tg, chat, progress)
            assert progress.text.startswith("✅ Done in ")
            assert progress.text.splitlines()[0].endswith(" s")
            assert not progress.buttons
            versions = progress.versions
            assert all(v.reply_markup for v in versions[:-1])  # Cancel until the very end
            assert versions[-1].reply_markup is None
            # one progress message per analysis: the rest is the answer and the code file
            later = after(tg, chat, progress)
            assert [m.text.split(" ")[0] for m in later if m.text] == ["Revenue"]
            assert later[-1] is code

        assert any(a.chat_id == chat.id and a.action == "typing" for a in tg.chat_actions)
        assert not_modified_calls(tg) == []
        assert tg.flood_violations == []


async def test_flood_control_while_streaming_is_waited_out_not_answered_with_sends(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        tg.flood = FloodLimits.strict()  # from now on one message per second, no bursts
        long_code = "\n".join(f"step_{i} = df.revenue * {i}" for i in range(40))
        text = "The answer, growing chunk by chunk. " * 30
        # The first edit meets flood control (the progress message used the chat's only token)
        # while the model pauses; the turn then ends during the announced wait.
        llm.enqueue(
            Scenario()
            .code(long_code, logs="ok\n", chunks=40)
            .text(text, chunks=60)
            .stall(after=8, seconds=0.5)
        )
        progress = await ask(tg, chat, ann, "Stream a lot")
        await code_file(tg, chat, progress)
        assert progress.text.startswith("✅ Done in ")
        answers = [m for m in after(tg, chat, progress) if m.text]
        assert [m.text for m in answers] == [text.strip()]

        assert tg.flood_refusals  # the limits did bite ...
        assert tg.flood_violations == []  # ... and every retry_after was respected
        sent = [c for c in tg.calls_of("sendMessage") if c.ok]
        assert len(sent) == 3  # the preview, the progress message, the answer: nothing extra
        assert not_modified_calls(tg) == []


# ---- answers ------------------------------------------------------------------------------


async def test_a_long_markdown_answer_is_split_into_formatted_messages(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        paragraphs = [
            f"## Part {i}\n\n**Region {i}** grew by `{i * 3}%` — «рост» 📈 in *quarter {i % 4}*.\n"
            + "- detail one of this part\n- detail two of this part\n\n"
            + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 2
            for i in range(60)
        ]
        markdown = "\n\n".join(paragraphs)
        assert len(markdown) > 10_000
        llm.enqueue(Scenario().code("print(1)", logs="1\n").text(markdown, chunks=20))
        progress = await ask(tg, chat, ann, "Tell me everything")
        await code_file(tg, chat, progress)

        parts = [m for m in after(tg, chat, progress) if m.text]
        assert len(parts) >= 3
        for part in parts:
            assert utf16_len(part.text) <= 4096
            kinds = {e["type"] for e in part.entities}
            assert {"bold", "code", "italic"} <= kinds
        whole = "\n".join(p.text for p in parts)
        for i in range(60):
            assert f"Region {i} grew by {i * 3}%" in whole
        assert "**" not in whole
        assert all(c.ok for c in tg.calls_of("sendMessage"))
        assert tg.entity_overflows == []


async def test_twelve_charts_come_as_two_captioned_albums(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        charts = {f"chart_{i:02d}.png": png(320 + i, 240, "teal") for i in range(12)}
        links = "\n".join(sandbox_link(name) for name in charts)
        llm.enqueue(Scenario().code("plot()", saves=charts).text(f"Twelve charts:\n{links}"))
        progress = await ask(tg, chat, ann, "Plot everything")
        await code_file(tg, chat, progress)

        assert tg.calls_of("sendPhoto") == []
        albums = [c for c in tg.calls_of("sendMediaGroup") if c.ok]
        assert [len(c.params["media"]) for c in albums] == [6, 6]
        photos = [p for p in tg.sent_photos if p.chat_id == chat.id]
        assert sorted(p.caption for p in photos) == sorted(charts)
        assert len({p.media_group_id for p in photos}) == 2
        assert None not in {p.media_group_id for p in photos}
        assert "🖼 Charts: 12" in progress.text


async def test_a_very_wide_chart_is_sent_as_a_document(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        saves = {"timeline.png": png(4000, 150), "bars.png": png(640, 480)}
        llm.enqueue(
            Scenario()
            .code("plot()", saves=saves)
            .text(f"See {sandbox_link('timeline.png')} and {sandbox_link('bars.png')}")
        )
        progress = await ask(tg, chat, ann, "Timeline please")
        await code_file(tg, chat, progress)
        assert [p.filename for p in tg.sent_photos] == ["bars.png"]
        wide = [d for d in tg.sent_documents if d.filename == "timeline.png"]
        assert len(wide) == 1
        assert wide[0].data == saves["timeline.png"]
        assert all(c.ok for c in tg.calls)


async def test_tables_come_as_documents_and_the_code_as_one_python_file(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        book = Workbook()
        book.active.append(["region", "revenue"])
        book.active.append(["East", 2500])
        buffer = io.BytesIO()
        book.save(buffer)
        tables = {"summary.csv": b"region,revenue\nEast,2500\n", "summary.xlsx": buffer.getvalue()}
        first = "import pandas as pd\ndf = pd.read_csv('/mnt/data/sales.csv')"
        second = "summary = df.groupby('region').revenue.sum()\nsummary.to_csv('summary.csv')"
        llm.enqueue(
            Scenario()
            .code(first, logs="")
            .code(second, logs="", saves=tables)
            .text(f"Tables: {sandbox_link('summary.csv')}, {sandbox_link('summary.xlsx')}")
        )
        progress = await ask(tg, chat, ann, "Summarise by region")
        code = await code_file(tg, chat, progress)

        documents = {d.filename: d for d in tg.sent_documents if d.chat_id == chat.id}
        assert documents["summary.csv"].data == tables["summary.csv"]
        assert documents["summary.xlsx"].data == tables["summary.xlsx"]
        assert [d.filename for d in tg.sent_documents].count("analysis_code.py") == 1
        source = documents["analysis_code.py"].data.decode("utf-8")
        assert first in source
        assert second in source
        assert source.index(first) < source.index(second)
        compile(source, "analysis_code.py", "exec")  # it is runnable Python
        assert "2 steps" in (code.caption or "")
        answer = next(m for m in after(tg, chat, progress) if m.text)
        assert "sandbox:" not in answer.text


async def test_an_answer_without_visible_text_still_says_something_and_sends_the_files(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        for index, text in enumerate(("\u200b", "<!-- the chart says it all -->")):
            saves = {f"chart_{index}.png": png(300 + index, 200)}
            llm.enqueue(Scenario().code("plot()", saves=saves).text(text, cite=list(saves)))
            progress = await ask(tg, chat, ann, f"Question {index}")
            await code_file(tg, chat, progress)
            said = [m.text for m in after(tg, chat, progress) if m.text]
            assert said == ["(The model returned no text; see the files below.)"]
            assert [p.filename for p in tg.sent_photos][-1] == f"chart_{index}.png"
        assert all(c.ok for c in tg.calls)


# ---- failures -----------------------------------------------------------------------------


async def test_failures_are_explained_in_plain_words_and_the_bot_keeps_working(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path, llm_max_retries=1, analysis_timeout_seconds=1) as world:
        tg, llm = world.tg, world.llm
        ivan, chat = await person_with_sales(tg, "Ivan", "ru")

        async def fails(scenario: Scenario, expected: str) -> StoredMessage:
            llm.enqueue(scenario)
            progress = await ask(tg, chat, ivan, "Вопрос")
            explained = await tg.wait_for_message(
                chat,
                predicate=lambda m: m.message_id > progress.message_id and expected in m.content,
                timeout=10,
            )
            assert progress.text.startswith("❌ Анализ не удался через ")
            assert not progress.buttons
            return explained

        # the service is down: every attempt (the first and the retry) answers 503
        requests = len(llm.response_requests())
        down = Scenario().code("print(1)").text("Снова работаю.").http_error(503, times=2)
        await fails(down, "Сервис анализа сейчас недоступен")
        assert len(llm.response_requests()) - requests == 2
        # the same scenario, now without errors, serves the next question
        progress = await ask(tg, chat, ivan, "Ещё раз")
        await tg.wait_for_message(chat, "Снова работаю.")
        await code_file(tg, chat, progress)

        await fails(Scenario().code("print(1)").stall(after=5), "Анализ шёл дольше")
        assert await llm.wait_for_disconnect()

        message = await fails(
            Scenario().code("print(1)").text("x").error_event(after=4), "Модель столкнулась"
        )
        assert "server_error" not in message.text  # no technical details for the user

        await fails(
            Scenario().text("A very long answer that gets cut").incomplete(), "Ответ оборвался"
        )

        llm.enqueue(Scenario().code("print(2)", logs="2\n").text("Всё в порядке."))
        progress = await ask(tg, chat, ivan, "Последний вопрос")
        await tg.wait_for_message(chat, "Всё в порядке.")
        await code_file(tg, chat, progress)
        assert not_modified_calls(tg) == []
        assert tg.flood_violations == []
