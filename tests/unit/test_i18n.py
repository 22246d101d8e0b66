"""Both languages say everything; every message the code asks for exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.telegram.i18n import LOCALES_DIR, pick_language, translator

SOURCE = Path(__file__).resolve().parents[2] / "bot"


def message_ids(lang: str) -> set[str]:
    text = (LOCALES_DIR / f"{lang}.ftl").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z0-9_-]*) =", text, flags=re.MULTILINE))


def test_russian_and_english_have_the_same_messages() -> None:
    assert message_ids("ru") == message_ids("en")


def test_every_literal_message_id_in_the_code_exists() -> None:
    ids = message_ids("en")
    used: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        used.update(
            re.findall(r"""\bt(?:\.plain)?\(\s*["']([a-z][a-z0-9-]+)["']""", path.read_text())
        )
    missing = sorted(used - ids)
    assert not missing, missing


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_messages_format_without_errors(lang: str) -> None:
    t = translator(lang)
    text = t("progress-queued", position=2)
    assert "2" in text
    assert (
        t("file-added", name="<b>x</b>", rows=1, cols=2, size="1 KB", preview="a & b").count(
            "&lt;b&gt;"
        )
        == 1
    )


def test_plural_forms_in_russian() -> None:
    t = translator("ru")
    assert "2 шага" in t("code-file-caption", steps=2)
    assert "5 шагов" in t("code-file-caption", steps=5)
    assert "1 шаг" in t("code-file-caption", steps=1)


@pytest.mark.parametrize(
    ("code", "default", "expected"),
    [("ru", "en", "ru"), ("en-US", "ru", "en"), ("de", "ru", "ru"), (None, "en", "en")],
)
def test_language_from_telegram(code: str | None, default: str, expected: str) -> None:
    assert pick_language(code, default) == expected


def test_every_failure_and_file_error_has_a_message() -> None:
    from bot.engine.types import FailureReason
    from bot.tabular import TableErrorCode
    from bot.telegram.keyboards import ASK_LABELS

    ids = message_ids("en")
    wanted = {f"fail-{r.value}" for r in FailureReason}
    wanted |= {f"file-error-{c.value.lower()}" for c in TableErrorCode}
    wanted |= {f"{key}-q" for key in ASK_LABELS.values()} | set(ASK_LABELS.values())
    assert not sorted(wanted - ids)


def test_no_message_is_left_unused() -> None:
    source = "".join(path.read_text(encoding="utf-8") for path in SOURCE.rglob("*.py"))
    dynamic = ("fail-", "file-error-", "cmd-", "ask-")  # built from enums and command names
    unused = [
        key
        for key in sorted(message_ids("en"))
        if f'"{key}"' not in source and f"'{key}'" not in source and not key.startswith(dynamic)
    ]
    assert not unused
