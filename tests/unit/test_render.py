"""Answer formatting and media rules (the Telegram fake checks the same rules end to end)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.engine.types import Artifact
from bot.telegram.render import _batches, markdown_chunks, photo_ok


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, "PNG")
    return buffer.getvalue()


def test_long_markdown_splits_into_valid_messages() -> None:
    paragraph = "**Выручка** по региону _Восток_ выросла на 12% 📈, см. `sales.csv`.\n\n"
    answer = "# Итоги\n\n" + paragraph * 160 + "| a | b |\n|---|---|\n| 1 | 2 |\n"
    assert len(answer) > 10_000
    chunks = markdown_chunks(answer)
    assert len(chunks) >= 3
    for text, entities in chunks:
        assert 0 < utf16(text) <= 4096
        for entity in entities:
            assert entity.offset >= 0
            assert entity.offset + entity.length <= utf16(text)
    joined = "".join(text for text, _ in chunks)
    assert joined.count("Выручка") == 160
    assert "**" not in joined


@pytest.mark.parametrize(
    ("size", "ok"),
    [((800, 600), True), ((10001, 10), False), ((2100, 100), False), ((5000, 4000), True)],
)
def test_photo_limits(size: tuple[int, int], ok: bool) -> None:
    assert photo_ok(Artifact("chart.png", "image/png", png(*size))) is ok


def test_non_images_and_svg_go_as_documents() -> None:
    assert not photo_ok(Artifact("chart.svg", "image/svg+xml", b"<svg/>"))
    assert not photo_ok(Artifact("broken.png", "image/png", b"not a png"))


def test_albums_avoid_a_lonely_last_photo() -> None:
    items = [Artifact(f"{i}.png", "image/png", b"") for i in range(12)]
    assert [len(g) for g in _batches(items, 10)] == [6, 6]
    assert [len(g) for g in _batches(items[:10], 10)] == [10]
    assert _batches([], 10) == []
