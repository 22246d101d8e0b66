"""Draft text and ids: formatted like the final message, the tail of a long answer within
Telegram's 4096 characters, and a draft id that leads back to its analysis."""

from __future__ import annotations

from telegramify_markdown import utf16_len

from bot.telegram.drafts import DRAFT_LIMIT, analysis_id_of, draft_id_of, draft_text


def covered(text: str, offset: int, length: int) -> str:
    units = text.encode("utf-16-le")
    return units[2 * offset : 2 * (offset + length)].decode("utf-16-le")


def test_a_short_answer_is_formatted_as_the_final_message_would_be() -> None:
    text, entities = draft_text("East leads with **2500**, see [bars.png](sandbox:/mnt/data/b.png)")
    assert text == "East leads with 2500, see bars.png"
    assert [covered(text, e.offset, e.length) for e in entities if e.type == "bold"] == [
        "2500",
        "bars.png",
    ]


def test_a_long_answer_shows_its_tail_with_its_formatting() -> None:
    markdown = "**Start** " + "word " * 1200 + "😀 and **the end**"
    text, entities = draft_text(markdown)
    assert utf16_len(text) == DRAFT_LIMIT
    assert text.startswith("…")
    assert text.endswith("😀 and the end")
    assert [covered(text, e.offset, e.length) for e in entities] == ["the end"]


def test_draft_ids_lead_back_to_their_analysis() -> None:
    for analysis_id in ("0a1b2c3d4e5f", "ffffffffffff", "000000000001"):
        draft_id = draft_id_of(analysis_id)
        assert draft_id is not None
        assert 0 < draft_id < 2**52  # a Bot API integer
        assert analysis_id_of(draft_id) == analysis_id
    assert draft_id_of("000000000000") is None
    assert draft_id_of("maint-12ab34") is None
    assert analysis_id_of(0) is None
    assert analysis_id_of(-5) is None
