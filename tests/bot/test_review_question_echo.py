"""A suggested question is echoed into the chat as HTML: its text must be escaped, or a
question with `<` or `&` in an operator's catalog (DATASETS_DIR) is refused by Telegram and
pressing the button does nothing at all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bot.catalog import CATALOG_FILE, DATASETS_DIR_ENV, load_catalog
from tests.bot.harness import last_id, next_message, person, roomy_world, text_answer

QUESTION = "Which countries have life expectancy < 50 & GDP > 1000?"


def own_catalog(root: Path) -> str:
    """A copy of the bundled catalog with only gapminder, whose first English question has
    HTML-special characters. Returns the dataset id."""
    bundled = load_catalog()
    raw = json.loads((bundled.root / CATALOG_FILE).read_text(encoding="utf-8"))
    [entry] = [d for d in raw["datasets"] if d["id"] == "gapminder"]
    entry["questions"]["en"][0] = QUESTION
    raw["datasets"] = [entry]
    root.mkdir()
    (root / CATALOG_FILE).write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    shutil.copy(bundled.root / entry["file"], root / entry["file"])
    return entry["id"]


async def test_a_suggested_question_with_html_characters_is_echoed_and_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset_id = own_catalog(tmp_path / "datasets")
    monkeypatch.setenv(DATASETS_DIR_ENV, str(tmp_path / "datasets"))
    async with roomy_world(tmp_path / "data") as world:
        tg, llm = world.tg, world.llm
        ann, chat = person(tg)
        before = last_id(tg, chat)
        tg.send_text(chat, ann, "/dataset")
        menu = await next_message(tg, chat, before, lambda m: bool(m.buttons))
        before = last_id(tg, chat)
        tg.press(menu, f"ds:{dataset_id}")
        added = await next_message(tg, chat, before, lambda m: "gapminder.csv" in m.content)

        llm.enqueue(text_answer("Several do."))
        before = last_id(tg, chat)
        tg.press(added, f"dq:{dataset_id}:0")
        echo = await next_message(tg, chat, before, lambda m: m.content.startswith("❓"))
        assert echo.content == f"❓ {QUESTION}"
        await next_message(tg, chat, echo.message_id, lambda m: m.content == "Several do.")
        assert QUESTION in json.dumps(llm.response_requests()[-1].json["input"])
