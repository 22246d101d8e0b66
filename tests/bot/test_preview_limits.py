"""The preview stays within Telegram's limits whatever the file: long column names, long title
lines and many sheets (the Telegram fake refuses a message over 4096 characters)."""

from __future__ import annotations

from pathlib import Path

from tests.bot.harness import person, roomy_world, upload
from tests.tabular import builders

MAX_TEXT = 4096


async def test_long_names_titles_and_sheets_still_fit(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg = world.tg
        ann, chat = person(tg)
        names = [f"{'very long measurement name ' * 3}{i}" for i in range(60)]
        title = ["Quarterly report — " + "regional breakdown " * 10]
        sheets = {
            f"Sheet number {n} with a long name": [
                title,
                [],
                names,
                *[[f"{'x' * 200}{r}", *list(range(59))] for r in range(6)],
                ["Total " + "of everything " * 12],
            ]
            for n in range(10)
        }
        preview = await upload(tg, chat, ann, "wide.xlsx", builders.xlsx(sheets))

        assert len(preview.text) <= MAX_TEXT
        assert "Columns (60):" in preview.text
        assert "1. very long measurement name" in preview.text
        assert "… and" in preview.text  # the rest of the columns are counted
        assert "Other sheets (9):" in preview.text
