"""The bundled demo datasets: a read-only view of `datasets/catalog.json` (stdlib only).

`datasets/build.py` generates the CSVs and the numbers in the catalog; this module only reads them.
The datasets folder sits next to the `bot` package both in a source checkout and in the Docker
image; the `root` argument (the DATASETS_DIR setting, read by `bot.config`) points elsewhere.

`load_catalog()` reads one small JSON file and stats seven files: call it once at startup (or via
`asyncio.to_thread`), not per update.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bot.config import LANGUAGES

__all__ = [
    "CATALOG_FILE",
    "DATASETS_DIR_ENV",
    "DEFAULT_DATASETS_DIR",
    "LANGUAGES",
    "Catalog",
    "CatalogError",
    "Column",
    "Dataset",
    "Source",
    "load_catalog",
]

CATALOG_FILE = "catalog.json"
DATASETS_DIR_ENV = "DATASETS_DIR"
DEFAULT_DATASETS_DIR = Path(__file__).resolve().parent.parent / "datasets"
# Fallback order after the requested language: English first, then Russian.
_FALLBACK = ("en", "ru")
# Ids travel in Telegram callback data (64 bytes in total), so keep them short and plain.
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,19}$")
_REBUILD_HINT = "rebuild with `uv sync --group datasets && uv run python datasets/build.py`"


class CatalogError(RuntimeError):
    """The datasets catalog is missing, malformed, or points at files that are not there."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    dtype: str  # "int" | "float" | "text" | "date"


@dataclass(frozen=True, slots=True)
class Source:
    package: str  # e.g. "bokeh-sampledata==2026.1"
    object: str  # the object or file inside the package
    origin: str  # where the package got the data


def _normalize_language(lang: str | None) -> str:
    return re.split(r"[-_]", (lang or "").strip().lower(), maxsplit=1)[0]


def _pick(values: Mapping[str, Any], lang: str | None) -> Any:
    """The value for `lang` ("ru", "en-US", ...), else English, else Russian, else any."""
    for key in (_normalize_language(lang), *_FALLBACK):
        if values.get(key):
            return values[key]
    return next((v for v in values.values() if v), None)


@dataclass(frozen=True, slots=True)
class Dataset:
    id: str
    path: Path  # absolute path of the CSV
    titles: Mapping[str, str] = field(hash=False)
    descriptions: Mapping[str, str] = field(hash=False)
    source: Source
    license: str
    attribution: str
    rows: int
    cols: int
    size_bytes: int
    sha256: str
    columns: tuple[Column, ...]
    questions: Mapping[str, tuple[str, ...]] = field(hash=False)

    @property
    def filename(self) -> str:
        return self.path.name

    def title(self, lang: str | None = None) -> str:
        return _pick(self.titles, lang) or self.id

    def description(self, lang: str | None = None) -> str:
        return _pick(self.descriptions, lang) or ""

    def questions_for(self, lang: str | None = None) -> tuple[str, ...]:
        return _pick(self.questions, lang) or ()


@dataclass(frozen=True, slots=True)
class Catalog:
    root: Path
    datasets: tuple[Dataset, ...]
    _by_id: Mapping[str, Dataset] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", MappingProxyType({d.id: d for d in self.datasets}))

    def all(self) -> tuple[Dataset, ...]:
        """Every dataset in catalog order."""
        return self.datasets

    def get(self, dataset_id: str) -> Dataset | None:
        return self._by_id.get(dataset_id)

    def __len__(self) -> int:
        return len(self.datasets)

    def __iter__(self) -> Iterator[Dataset]:
        return iter(self.datasets)

    def __contains__(self, dataset_id: object) -> bool:
        return dataset_id in self._by_id


def load_catalog(root: Path | str | None = None) -> Catalog:
    """Read `<root>/catalog.json` and check that every listed CSV is present with its size.

    `root` defaults to `DEFAULT_DATASETS_DIR`. Raises `CatalogError` naming every problem.
    """
    root = Path(root if root is not None else DEFAULT_DATASETS_DIR).expanduser().resolve()
    catalog_path = root / CATALOG_FILE
    try:
        raw = json.loads(catalog_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(
            f"datasets catalog not found: {catalog_path} "
            f"(set {DATASETS_DIR_ENV} to the folder with catalog.json)"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CatalogError(f"cannot read datasets catalog {catalog_path}: {exc}") from None

    entries = raw.get("datasets") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise CatalogError(f"{catalog_path}: expected an object with a 'datasets' list")

    datasets: list[Dataset] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        label = entry.get("id", f"#{index}") if isinstance(entry, dict) else f"#{index}"
        try:
            dataset = _parse_entry(entry, root)
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"dataset {label!r}: malformed entry ({exc})")
            continue
        if dataset.id in seen:
            problems.append(f"dataset {dataset.id!r}: duplicate id")
            continue
        seen.add(dataset.id)
        try:
            actual = dataset.path.stat().st_size
        except FileNotFoundError:
            problems.append(f"dataset {dataset.id!r}: file {dataset.path} is missing")
            continue
        except OSError as exc:
            problems.append(f"dataset {dataset.id!r}: cannot read {dataset.path}: {exc}")
            continue
        if actual != dataset.size_bytes:
            problems.append(
                f"dataset {dataset.id!r}: {dataset.path.name} is {actual} bytes, "
                f"the catalog says {dataset.size_bytes}"
            )
            continue
        datasets.append(dataset)
    if problems:
        raise CatalogError(
            f"datasets catalog {catalog_path} is not usable: "
            + "; ".join(problems)
            + f" ({_REBUILD_HINT})"
        )
    return Catalog(root=root, datasets=tuple(datasets))


def _localized(value: Any, what: str) -> Mapping[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError(f"{what} must map language codes to strings")
    return MappingProxyType(dict(value))


def _parse_entry(entry: Any, root: Path) -> Dataset:
    if not isinstance(entry, dict):
        raise TypeError("an entry must be an object")
    dataset_id = entry["id"]
    if not isinstance(dataset_id, str) or not _ID_RE.match(dataset_id):
        raise ValueError(f"id must be 1-20 characters of a-z 0-9 _ -, got {dataset_id!r}")
    file = entry["file"]
    if not isinstance(file, str) or not file or Path(file).name != file or file.startswith("."):
        raise ValueError(f"file must be a plain file name inside the datasets folder: {file!r}")
    source = entry["source"]
    if not isinstance(source, dict):
        raise TypeError("source must be an object")
    questions = entry["questions"]
    if not isinstance(questions, dict) or not all(
        isinstance(qs, list) and all(isinstance(q, str) for q in qs) for qs in questions.values()
    ):
        raise TypeError("questions must map language codes to lists of strings")
    return Dataset(
        id=dataset_id,
        path=root / file,
        titles=_localized(entry["title"], "title"),
        descriptions=_localized(entry["description"], "description"),
        source=Source(
            package=str(source["package"]),
            object=str(source["object"]),
            origin=str(source["origin"]),
        ),
        license=str(entry["license"]),
        attribution=str(entry["attribution"]),
        rows=int(entry["rows"]),
        cols=int(entry["cols"]),
        size_bytes=int(entry["size_bytes"]),
        sha256=str(entry["sha256"]),
        columns=tuple(Column(name=str(c["name"]), dtype=str(c["dtype"])) for c in entry["columns"]),
        questions=MappingProxyType({lang: tuple(qs) for lang, qs in questions.items()}),
    )
