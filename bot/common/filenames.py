"""File names that are safe to create on disk or to send, readable for people.

A name that came from outside (a user's upload, a file the model generated) never becomes a
path unchanged: it goes through `safe_filename` first.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_CHARS = 100
MAX_NAME_BYTES = 200  # UTF-8; file systems allow 255, leave room for "_<n>" suffixes
MAX_EXT_CHARS = 16
FALLBACK_NAME = "file"
# Characters kept besides unicode letters, digits and combining marks.
_KEEP_PUNCT = set("-_.,()[]+=@#&!~'")
_WINDOWS_RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(1, 10)),
    *(f"lpt{i}" for i in range(1, 10)),
}


def _split_ext(name: str) -> tuple[str, str]:
    """("report", ".csv"); an extension is a short alphanumeric tail after the last dot."""
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    ext = name[dot:]
    if len(ext) > MAX_EXT_CHARS or len(ext) < 2 or not ext[1:].replace("_", "").isalnum():
        return name, ""
    return name[:dot], ext


def _fit(stem: str, ext: str) -> str:
    """Truncate the stem so stem+ext fits both the character and the byte budget (returns
    the stem only)."""
    stem = stem[: max(1, MAX_NAME_CHARS - len(ext))]
    while stem and len((stem + ext).encode("utf-8")) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return stem.rstrip(". ") or FALLBACK_NAME


def safe_filename(original: str) -> str:
    """A file name safe to create in a chat directory, readable for the user.

    Drops any directory part (both / and \\ separators), control and format characters,
    characters reserved on common file systems, leading dots (no hidden or temp names)
    and `..`; collapses whitespace to "_"; keeps unicode letters (Cyrillic stays
    readable) and the extension; caps the length; falls back to "file". Idempotent.
    """
    name = unicodedata.normalize("NFC", original or "")
    name = name.replace("\\", "/").split("/")[-1]
    chars = []
    for ch in name:
        category = unicodedata.category(ch)
        if ch.isspace() or category.startswith("Z"):
            chars.append(" ")
        elif category[0] in "LNM" or ch in _KEEP_PUNCT:
            chars.append(ch)
        elif category[0] == "C":
            continue  # control, format (e.g. right-to-left override), unassigned
        else:
            chars.append("_")
    stem, ext = _split_ext("".join(chars).strip())
    stem = re.sub(r"\s+", "_", stem.strip())
    stem = re.sub(r"\.{2,}", ".", stem)  # no ".." anywhere
    stem = re.sub(r"_{2,}", "_", stem)
    stem = stem.lstrip(".-_").rstrip(". ")
    if not stem.strip("_-.,"):
        stem = FALLBACK_NAME
    head, dot, rest = stem.partition(".")
    if head.lower() in _WINDOWS_RESERVED:  # CON, NUL.txt, com1.tar.gz ...
        stem = f"{head}_{dot}{rest}"
    return _fit(stem, ext) + ext


def numbered_name(name: str, n: int) -> str:
    """report.csv, 2 -> report_2.csv (fits the length caps)."""
    stem, ext = _split_ext(name)
    suffix = f"_{n}"
    return _fit(stem, suffix + ext) + suffix + ext
