"""Re-encoding text tables to UTF-8, so the model's `pd.read_csv(path)` reads them as is."""

from __future__ import annotations

import codecs
from pathlib import Path

CHUNK = 1024 * 1024
UTF8_ALREADY = frozenset({"utf-8", "ascii"})  # utf-8-sig too is rewritten: pandas keeps the BOM


def needs_utf8(encoding: str | None) -> bool:
    return encoding is not None and encoding.lower() not in UTF8_ALREADY


def transcode_to_utf8(source: Path, target: Path, encoding: str) -> None:
    """Stream `source` (in `encoding`) into `target` as UTF-8 without a BOM. Blocking: call it
    in a worker thread. Undecodable bytes become U+FFFD rather than failing the upload."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    with source.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(CHUNK):
            dst.write(decoder.decode(chunk).encode("utf-8"))
        dst.write(decoder.decode(b"", final=True).encode("utf-8"))
