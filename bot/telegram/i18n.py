"""Russian and English texts, with Fluent (https://projectfluent.org).

Every user-facing text lives in `locales/<lang>.ftl`; code refers to message ids only.
"""

from __future__ import annotations

import html
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from fluent.runtime import FluentBundle, FluentResource

from bot.config import LANGUAGES

log = logging.getLogger(__name__)

LOCALES_DIR = Path(__file__).with_name("locales")


class Translator:
    """Formats messages of one language, falling back to English, then to the id."""

    def __init__(self, language: str, bundles: dict[str, FluentBundle]) -> None:
        self.language = language
        self._chain = [bundles[language]] + [b for lang, b in bundles.items() if lang != language]

    def __call__(self, key: str, **args: Any) -> str:
        """The message as Telegram HTML: string arguments are escaped."""
        escaped = {
            k: html.escape(v, quote=False) if isinstance(v, str) else v for k, v in args.items()
        }
        return self.plain(key, **escaped)

    def plain(self, key: str, **args: Any) -> str:
        """The message as plain text (button labels, command descriptions)."""
        for bundle in self._chain:
            if bundle.has_message(key):
                message = bundle.get_message(key)
                if message.value is None:
                    continue
                text, errors = bundle.format_pattern(message.value, args)
                if errors:
                    log.warning("i18n %s/%s: %s", self.language, key, errors)
                return text
        log.error("i18n: no message %r", key)
        return key


@lru_cache(maxsize=1)
def _bundles() -> dict[str, FluentBundle]:
    bundles = {}
    for lang in LANGUAGES:
        bundle = FluentBundle([lang], use_isolating=False)
        source = (LOCALES_DIR / f"{lang}.ftl").read_text(encoding="utf-8")
        bundle.add_resource(FluentResource(source))
        bundles[lang] = bundle
    return bundles


@lru_cache(maxsize=len(LANGUAGES))
def translator(language: str) -> Translator:
    language = language if language in LANGUAGES else "en"
    return Translator(language, _bundles())


def pick_language(telegram_code: str | None, default: str) -> str:
    """The user's language from Telegram's language_code (e.g. "ru", "en-US", "uk")."""
    if telegram_code:
        base = telegram_code.split("-")[0].lower()
        if base in LANGUAGES:
            return base
    return default
