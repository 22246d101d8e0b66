"""Cheap checks on raw bytes: what container a file is, and which text encoding it uses."""

from __future__ import annotations

import codecs
import mmap
import re
import zipfile
from enum import Enum
from pathlib import Path

from bot.tabular.model import TableError, TableErrorCode

#: How much of the file the cheap checks and the dialect sniffer look at.
HEAD_BYTES = 256 * 1024
_CHUNK = 1 << 20

_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")

XLSX_EXTENSIONS = frozenset({".xlsx", ".xlsm"})
#: Workbook extensions: a file with one of these is parsed in the worker process whatever its
#: size (a small workbook can unpack to gigabytes).
WORKBOOK_EXTENSIONS = frozenset({".xlsx", ".xlsm", ".xls", ".xlsb", ".ods", ".parquet"})
#: Extensions whose content we judge as a delimited table (".txt" is judged too, see api).
TABLE_EXTENSIONS = frozenset({".csv", ".tsv", ".tab", ".psv", ".dat", ""})
#: Formats refused by name: structured or binary data we do not read.
UNSUPPORTED_EXTENSIONS = frozenset(
    {
        ".xml", ".html", ".htm",
        ".feather", ".arrow", ".orc", ".avro", ".pkl", ".pickle", ".npy", ".npz",
        ".h5", ".hdf5", ".sav", ".dta", ".sas7bdat", ".rds", ".rdata", ".sqlite", ".db",
        ".numbers", ".doc", ".docx", ".ppt", ".pptx", ".odt", ".rtf",
    }
)  # fmt: skip

# (magic, offset, description); checked before anything is decoded.
_BINARY_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "PNG image"),
    (b"\xff\xd8\xff", 0, "JPEG image"),
    (b"GIF87a", 0, "GIF image"),
    (b"GIF89a", 0, "GIF image"),
    (b"WEBP", 8, "WebP image"),
    (b"%PDF-", 0, "PDF document"),
    (b"\x1f\x8b", 0, "gzip archive"),
    (b"1AY&SY", 4, "bzip2 archive"),
    (b"\xfd7zXZ\x00", 0, "xz archive"),
    (b"7z\xbc\xaf\x27\x1c", 0, "7-Zip archive"),
    (b"Rar!\x1a\x07", 0, "RAR archive"),
    (b"\x28\xb5\x2f\xfd", 0, "zstd archive"),
    (b"\x7fELF", 0, "executable"),
    (b"SQLite format 3\x00", 0, "SQLite database"),
    (b"ftyp", 4, "video"),
    (b"ID3", 0, "audio"),
    (b"OggS", 0, "audio"),
)

# Bytes that plain text may contain: printable ASCII, tab, LF, CR, FF, ESC, 0x1A, and every
# byte >= 0x80 (the encodings decide about those).
_TEXT_BYTES = bytes([9, 10, 12, 13, 26, 27, *range(32, 127), *range(128, 256)])
_MAX_CONTROL_SHARE = 0.01


class Container(Enum):
    TEXT = "text"
    XLSX = "xlsx"
    XLS = "xls"
    XLSB = "xlsb"
    ODS = "ods"
    PARQUET = "parquet"


#: Magic bytes of the containers parsed in the worker process.
PROCESS_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\xd0\xcf\x11\xe0", b"PAR1")


def classify(path: Path, head: bytes, extension: str) -> Container:
    """Decide from magic bytes whether `head` starts a workbook, text, or something we refuse."""
    if head.startswith(_ZIP):
        return _classify_zip(path, extension)
    if head.startswith(_OLE2):
        if _is_encrypted_ole2(path):
            raise TableError(TableErrorCode.ENCRYPTED, "password-protected Office document")
        if extension in {".doc", ".ppt", ".msg", ".pub", ".vsd"}:
            raise TableError(TableErrorCode.BINARY, f"legacy Office document ({extension})")
        return Container.XLS
    if head.startswith(b"PAR1"):
        return Container.PARQUET
    for magic, offset, what in _BINARY_MAGIC:
        if head.startswith(magic, offset):
            raise TableError(TableErrorCode.BINARY, what)
    if extension in XLSX_EXTENSIONS and _looks_binary(head):
        raise TableError(TableErrorCode.CORRUPT_XLSX, "not a ZIP container")
    return Container.TEXT


def _classify_zip(path: Path, extension: str) -> Container:
    expect_xlsx = extension in XLSX_EXTENSIONS
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            mimetype = b""
            if "mimetype" in names:
                with archive.open("mimetype") as member:
                    mimetype = member.read(100)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        code = TableErrorCode.CORRUPT_XLSX if expect_xlsx else TableErrorCode.BINARY
        raise TableError(code, f"broken ZIP container: {exc}") from exc
    if "xl/workbook.xml" in names:
        return Container.XLSX
    if "xl/workbook.bin" in names:
        return Container.XLSB
    if b"opendocument.spreadsheet" in mimetype:
        return Container.ODS
    if expect_xlsx:
        raise TableError(TableErrorCode.CORRUPT_XLSX, "ZIP container without xl/workbook.xml")
    documents = {"word/document.xml", "ppt/presentation.xml"}
    if b"opendocument" in mimetype or names & documents:
        raise TableError(TableErrorCode.UNSUPPORTED, "office document that is not a workbook")
    raise TableError(TableErrorCode.BINARY, "ZIP archive")


def _is_encrypted_ole2(path: Path) -> bool:
    """Encrypted OOXML files are OLE2 containers holding an "EncryptedPackage" stream."""
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
        return view.find(_ENCRYPTED_PACKAGE) != -1


def _looks_binary(data: bytes) -> bool:
    if not data:
        return False
    if b"\x00" in data:
        return True
    controls = len(data.translate(None, _TEXT_BYTES))
    return controls > len(data) * _MAX_CONTROL_SHARE


# --------------------------------------------------------------------------- encodings

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SINGLE_BYTE_WINDOW = 64 * 1024
_WORD = re.compile(r"[^\W\d_]+")
_MIN_PLAUSIBLE = 0.5
_MAX_JUNK_SHARE = 0.1
_MIN_UTF8_CHARS = 16
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_JUNK = re.compile(r"[\x80-\x9f\u2190-\u25ff\ufffd]")


def detect_encoding(path: Path, head: bytes, size: int) -> str:
    """Choose the codec for a text file, validating the whole file where it matters.

    BOMs first (UTF-8, UTF-16, UTF-32); then UTF-16 without BOM by its NUL pattern; then
    strict UTF-8 over the whole file; otherwise the single-byte codec (cp1251, koi8-r,
    cp1252/latin-1) whose decoding of the non-ASCII parts reads most like words.
    Raises BINARY for NUL-laden or control-laden bytes and UNDECODABLE when nothing fits.
    A UTF-8 file with a few broken bytes after plenty of good text is still "utf-8"; the
    readers decode with errors="replace", so the damage shows as U+FFFD.
    """
    for bom, name in _BOMS:
        if head.startswith(bom):
            if name == "utf-8-sig":  # the BOM settles it; stray damage becomes U+FFFD
                if _looks_binary(head[len(bom) :]):
                    raise TableError(TableErrorCode.BINARY, "NUL or control bytes in the content")
                return name
            _validate(path, name)
            return name
    bomless = _bomless_utf16(head)
    if bomless:
        _validate(path, bomless)
        return bomless
    if _looks_binary(head):
        raise TableError(TableErrorCode.BINARY, "NUL or control bytes in the content")
    bad_offset = _first_invalid_utf8(path, size)
    if bad_offset is None or _mostly_utf8(head[:bad_offset]):
        return "utf-8"  # with stray bad bytes, read with errors="replace"
    sample = head
    if bad_offset > len(head) - 1024:
        with path.open("rb") as file:
            file.seek(max(0, bad_offset - 1024))
            sample = head + b"\n" + file.read(_SINGLE_BYTE_WINDOW)
    return _choose_single_byte(sample)


def _bomless_utf16(head: bytes) -> str | None:
    """UTF-16 text of mostly ASCII has NUL in every other byte and almost nowhere else."""
    data = head[: 64 * 1024]
    data = data[: len(data) - len(data) % 2]
    if len(data) < 8:
        return None
    even, odd = data[0::2], data[1::2]
    half = len(data) // 2
    even_nul, odd_nul = even.count(0), odd.count(0)
    if odd_nul > half * 0.3 and even_nul == 0:
        return "utf-16-le"
    if even_nul > half * 0.3 and odd_nul == 0:
        return "utf-16-be"
    return None


def _validate(path: Path, encoding: str) -> None:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with path.open("rb") as file:
            while chunk := file.read(_CHUNK):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise TableError(TableErrorCode.UNDECODABLE, f"invalid {encoding}: {exc.reason}") from exc


def _first_invalid_utf8(path: Path, size: int) -> int | None:
    """Offset of the first byte that breaks strict UTF-8 (approximate), or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    position = 0
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            try:
                decoder.decode(chunk, final=position + len(chunk) >= size)
            except UnicodeDecodeError as exc:
                return max(0, position + exc.start - 3)
            position += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return max(0, position - 3)
    return None


def _mostly_utf8(valid_prefix: bytes) -> bool:
    """Many multi-byte characters before the first bad byte: UTF-8 with some damage.

    Single-byte Cyrillic or Western text almost never forms valid multi-byte sequences.
    """
    text = valid_prefix.decode("utf-8", errors="ignore")
    return len(_NON_ASCII.findall(text)) >= _MIN_UTF8_CHARS


def _choose_single_byte(sample: bytes) -> str:
    western = _western(sample)
    scores: dict[str, float | None] = {}
    for codec in ("cp1251", "koi8-r", western):  # the order breaks ties
        try:
            text = sample.decode(codec)
        except UnicodeDecodeError:
            continue
        scores[codec] = _plausibility(text)
    known = {codec: score for codec, score in scores.items() if score is not None}
    if not known:  # no non-ASCII letters, only symbols: nothing to tell them apart
        return next(iter(scores))
    best = max(known, key=lambda codec: known[codec])
    if known[best] < _MIN_PLAUSIBLE:
        raise TableError(TableErrorCode.UNDECODABLE, "not UTF-8, and no single-byte codec fits")
    return best


def _western(sample: bytes) -> str:
    """cp1252 when its extra characters (€, „, “ …) are used and decode, else latin-1."""
    if re.search(rb"[\x80-\x9f]", sample):
        try:
            sample.decode("cp1252")
        except UnicodeDecodeError:
            return "latin-1"
        return "cp1252"
    return "latin-1"


def _plausibility(text: str) -> float | None:
    """How much the non-ASCII part of `text` reads like words: 0..1, None if it has no letters.

    The share of non-ASCII words that look real; 0 when over `_MAX_JUNK_SHARE` of the
    non-ASCII characters are what a wrong codec produces (C1 controls, box drawing, math).
    """
    high = len(_NON_ASCII.findall(text))
    if high and len(_JUNK.findall(text)) > high * _MAX_JUNK_SHARE:
        return 0.0
    total = good = 0
    for match in _WORD.finditer(text):
        word = match.group()
        if len(word) < 2 or word.isascii():
            continue  # single letters are too ambiguous to tell codecs apart
        total += 1
        good += _plausible_word(word)
        if total >= 2000:
            break
    return good / total if total else None


def _plausible_word(word: str) -> bool:
    if not (word.islower() or word.isupper() or word.istitle()):
        return False  # "пРИВЕТ" is KOI8-R read as cp1251
    cyrillic = sum(1 for ch in word if "\u0400" <= ch <= "\u04ff")
    if cyrillic:
        return cyrillic == len(word)  # "cafй" is Latin-1 read as cp1251
    if any(ord(ch) > 0x24F for ch in word):
        return False
    accented = sum(1 for ch in word if ord(ch) > 0x7F)
    return len(word) <= 2 or accented * 2 <= len(word)  # "Ðåãèîí" is cp1251 read as Latin-1
