"""The main flow a person meets: upload, preview, question, live progress, answer, charts."""

from __future__ import annotations

from pathlib import Path

from tests.bot.harness import SALES_CSV, bot_world, png
from tests.fakes.responses_api import Scenario, sandbox_link


async def test_upload_then_question_gets_progress_answer_chart_and_file(tmp_path: Path) -> None:
    async with bot_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann = tg.user("Ann", language_code="en")
        chat = tg.private_chat(ann)

        tg.send_document(chat, ann, "sales.csv", SALES_CSV, mime_type="text/csv")
        preview = await tg.wait_for_message(chat, contains="sales.csv")
        assert "6 × 4" in preview.text
        assert "region" in preview.text
        assert any("Overview" in b["text"] for b in preview.buttons)

        llm.enqueue(
            Scenario()
            .code(
                "df = pd.read_csv('/mnt/data/sales.csv')\nprint(df.revenue.sum())",
                logs="East 2500\n",
                saves={"revenue.png": png(), "revenue.csv": b"region,revenue\nEast,2500\n"},
            )
            .text(
                "**East** leads with 2500.\n\nChart: "
                + sandbox_link("revenue.png")
                + "\nTable: "
                + sandbox_link("revenue.csv")
            )
            .usage(100, 20)
        )
        tg.send_text(chat, ann, "Which region sells most?")
        answer = await tg.wait_for_message(
            chat, predicate=lambda m: (m.text or "").startswith("East leads with 2500")
        )
        assert "sandbox:" not in answer.text
        await tg.wait_for(lambda: any(d.filename == "analysis_code.py" for d in tg.sent_documents))
        assert [p.filename for p in tg.sent_photos] == ["revenue.png"]
        assert "revenue.csv" in [d.filename for d in tg.sent_documents]

        progress = next(m for m in tg.messages(chat) if "Done in" in (m.text or ""))
        assert not progress.buttons  # the Cancel button is gone at the end
        request = llm.response_requests()[-1].json
        tool = request["tools"][0]
        assert tool["type"] == "code_interpreter"
        assert len(tool["container"]["file_ids"]) == 1
        assert "sales.csv" in request["instructions"]
        assert tg.flood_violations == []
