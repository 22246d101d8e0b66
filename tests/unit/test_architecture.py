"""The layers depend one way: telegram → services → engine/storage/tabular → config, common.
The engine never imports aiogram or storage; storage knows neither the engine nor aiogram.
The sandbox (local code execution) is below the engine and imports nothing of ours but config
and common."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "bot"

FORBIDDEN = {
    "engine": ("aiogram", "bot.telegram", "bot.storage", "bot.services", "bot.tabular"),
    "storage": ("aiogram", "bot.telegram", "bot.engine", "bot.services", "openai", "bot.sandbox"),
    "tabular": (
        "aiogram",
        "bot.telegram",
        "bot.engine",
        "bot.storage",
        "bot.services",
        "openai",
        "bot.sandbox",
    ),
    "services": ("aiogram", "bot.telegram"),
    "sandbox": (
        "aiogram",
        "openai",
        "bot.telegram",
        "bot.services",
        "bot.engine",
        "bot.storage",
        "bot.tabular",
        "bot.catalog",
    ),
    "common": (
        "aiogram",
        "openai",
        "bot.config",
        "bot.telegram",
        "bot.services",
        "bot.engine",
        "bot.storage",
        "bot.tabular",
        "bot.catalog",
        "bot.sandbox",
    ),
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_does_not_import_upwards(layer: str) -> None:
    offenders = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[layer]):
                offenders.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_only_the_telegram_layer_imports_aiogram() -> None:
    offenders = [
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if "telegram" not in path.relative_to(PACKAGE).parts
        and any(n == "aiogram" or n.startswith("aiogram.") for n in imports_of(path))
    ]
    assert not offenders


def test_only_the_settings_read_the_environment() -> None:
    """Settings read the environment in one place (bot/config.py), so every variable is
    validated, documented and overridable the same way."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not offenders, "\n".join(offenders)
