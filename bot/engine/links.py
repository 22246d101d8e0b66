"""Rewrite links into the model's sandbox, which are dead for the user.

The model writes `[chart.png](sandbox:/mnt/data/chart.png)` (or `![...](...)`) for files it saved;
the files themselves are delivered separately, so the link becomes just the name in bold, and bare
`sandbox:/mnt/data/...` paths become the file name.
"""

from __future__ import annotations

import re

_TARGET = r"<?\s*(?:sandbox:)?/mnt/data/(?P<path>[^)\s>]*)\s*>?(?:\s+\"[^\"]*\")?\s*"
_LINK = re.compile(r"!?\[(?P<label>[^\]\n]*)\]\(" + _TARGET + r"\)")
_BARE = re.compile(r"sandbox:(?P<path>/?[^\s)\]>\"'`*]*)")
_PLAIN = re.compile(r"(?<![\w/])/mnt/data/(?P<path>[^\s)\]>\"'`*,;]+)")


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _bare(match: re.Match[str]) -> str:
    """A bare path → its file name, keeping sentence punctuation that followed it."""
    path = match.group("path")
    core = path.rstrip(".,;:!?")
    return _basename(core) + path[len(core) :]


def _link(match: re.Match[str]) -> str:
    label = match.group("label").strip()
    name = _basename(match.group("path"))
    text = label or name
    if not text:
        return ""
    if text.startswith(("*", "`", "_")):
        return text
    return f"**{text}**"


def rewrite_sandbox_links(text: str) -> str:
    """Replace sandbox links by the file's name so the user never sees a dead link."""
    if "/mnt/data" not in text and "sandbox:" not in text:
        return text
    text = _LINK.sub(_link, text)
    text = _BARE.sub(_bare, text)
    return _PLAIN.sub(_bare, text)
