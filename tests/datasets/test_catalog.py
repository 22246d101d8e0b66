"""The committed datasets agree with datasets/catalog.json, and the bot's loader reads them.

Runs in the plain dev venv: stdlib csv/hashlib only, no pandas.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from bot.catalog import (
    DATASETS_DIR_ENV,
    DEFAULT_DATASETS_DIR,
    Catalog,
    CatalogError,
    load_catalog,
)
from bot.config import load_settings

DATASETS_DIR = Path(__file__).resolve().parents[2] / "datasets"
MAX_CSV_BYTES = 15_000_000
EXPECTED_ROWS = {
    "movies": 17_472,
    "stocks": 12_154,
    "sp500": 16_607,
    "superstore": 9_994,
    "gapminder": 12_200,
    "flights": 100_000,
    "weather": 26_115,
}


def raw_entries() -> list[dict]:
    return json.loads((DATASETS_DIR / "catalog.json").read_text(encoding="utf-8"))["datasets"]


ENTRIES = raw_entries()


def entry_id(entry: dict) -> str:
    return entry["id"]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(DATASETS_DIR)


def test_the_bot_looks_for_datasets_next_to_its_package() -> None:
    assert DEFAULT_DATASETS_DIR == DATASETS_DIR


def test_catalog_lists_the_seven_bundled_datasets(catalog: Catalog) -> None:
    assert {d.id: d.rows for d in catalog.all()} == EXPECTED_ROWS
    assert [d.id for d in catalog] == [e["id"] for e in ENTRIES]


@pytest.mark.parametrize("entry", ENTRIES, ids=entry_id)
def test_file_matches_its_size_hash_and_shape(entry: dict) -> None:
    path = DATASETS_DIR / entry["file"]
    data = path.read_bytes()
    assert len(data) == entry["size_bytes"]
    assert len(data) <= MAX_CSV_BYTES
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert b"\r" not in data
    assert data.endswith(b"\n")
    data.decode("utf-8")  # raises if the file is not UTF-8

    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = 0
        for row in reader:
            rows += 1
            assert len(row) == len(header), f"row {rows} has {len(row)} fields"
    assert rows == entry["rows"]
    assert len(header) == entry["cols"]
    assert header == [c["name"] for c in entry["columns"]]
    assert {c["dtype"] for c in entry["columns"]} <= {"int", "float", "text", "date"}


@pytest.mark.parametrize("entry", ENTRIES, ids=entry_id)
def test_entry_credits_its_source_and_speaks_both_languages(entry: dict) -> None:
    assert entry["license"].strip()
    assert entry["attribution"].strip()
    assert all(entry["source"][k].strip() for k in ("package", "object", "origin"))
    assert re.fullmatch(r"[a-z0-9_.-]+==[0-9][0-9a-z.]*", entry["source"]["package"])
    for lang in ("ru", "en"):
        assert entry["title"][lang].strip()
        assert entry["description"][lang].strip()
        questions = entry["questions"][lang]
        assert len(questions) == 3
        assert len(set(questions)) == 3
        for question in questions:
            assert question.strip()
            assert len(question) <= 100, question
    # the Russian texts are actually in Russian
    assert re.search("[а-яё]", entry["description"]["ru"], re.IGNORECASE)
    assert all(re.search("[а-яё]", q, re.IGNORECASE) for q in entry["questions"]["ru"])


def test_ids_are_unique_and_fit_in_callback_data() -> None:
    ids = [e["id"] for e in ENTRIES]
    assert len(ids) == len(set(ids))
    files = [e["file"] for e in ENTRIES]
    assert len(files) == len(set(files))
    for dataset_id in ids:
        assert len(dataset_id.encode("utf-8")) <= 20
        assert re.fullmatch(r"[a-z0-9_-]+", dataset_id)


def test_loaded_dataset_carries_the_catalog_fields(catalog: Catalog) -> None:
    entry = next(e for e in ENTRIES if e["id"] == "gapminder")
    dataset = catalog.get("gapminder")
    assert dataset is not None
    assert dataset.path == DATASETS_DIR / "gapminder.csv"
    assert dataset.path.is_file()
    assert dataset.filename == "gapminder.csv"
    assert dataset.license == entry["license"] == "CC-BY-2.0"
    assert dataset.attribution == "Gapminder.org, CC BY 2.0"
    assert dataset.source.package == "bokeh-sampledata==2026.1"
    assert (dataset.rows, dataset.cols, dataset.size_bytes, dataset.sha256) == (
        entry["rows"],
        entry["cols"],
        entry["size_bytes"],
        entry["sha256"],
    )
    assert [(c.name, c.dtype) for c in dataset.columns] == [
        (c["name"], c["dtype"]) for c in entry["columns"]
    ]
    assert catalog.get("no-such-dataset") is None
    assert "gapminder" in catalog
    assert "no-such-dataset" not in catalog


def test_texts_follow_the_language_with_sensible_fallbacks(catalog: Catalog) -> None:
    entry = next(e for e in ENTRIES if e["id"] == "movies")
    movies = catalog.get("movies")
    assert movies is not None
    assert movies.title("ru") == entry["title"]["ru"]
    assert movies.title("en") == entry["title"]["en"]
    assert movies.description("ru") == entry["description"]["ru"]
    assert movies.questions_for("en") == tuple(entry["questions"]["en"])
    # Telegram language codes carry regions; unknown languages get English
    assert movies.title("ru-RU") == entry["title"]["ru"]
    assert movies.title("en-GB") == entry["title"]["en"]
    assert movies.questions_for("de") == tuple(entry["questions"]["en"])
    assert movies.description(None) == entry["description"]["en"]


def copy_datasets(tmp_path: Path, *, skip: str | None = None) -> Path:
    root = tmp_path / "datasets"
    root.mkdir()
    shutil.copyfile(DATASETS_DIR / "catalog.json", root / "catalog.json")
    for entry in ENTRIES:
        if entry["file"] != skip:
            (root / entry["file"]).symlink_to(DATASETS_DIR / entry["file"])
    return root


def test_missing_csv_is_named_in_the_error(tmp_path: Path) -> None:
    root = copy_datasets(tmp_path, skip="nyc_weather_2013.csv")
    with pytest.raises(CatalogError) as caught:
        load_catalog(root)
    message = str(caught.value)
    assert "'weather'" in message
    assert str(root / "nyc_weather_2013.csv") in message
    assert "missing" in message
    assert "movies" not in message  # only the broken dataset is reported


def test_csv_of_the_wrong_size_is_reported(tmp_path: Path) -> None:
    root = copy_datasets(tmp_path, skip="gapminder.csv")
    data = (DATASETS_DIR / "gapminder.csv").read_bytes()
    (root / "gapminder.csv").write_bytes(data[: len(data) // 2])
    with pytest.raises(CatalogError, match=r"'gapminder'.*the catalog says"):
        load_catalog(root)


def test_missing_catalog_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"catalog not found: .*catalog\.json.*DATASETS_DIR"):
        load_catalog(tmp_path)


def test_malformed_catalog_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "catalog.json").write_text('{"datasets": [', encoding="utf-8")
    with pytest.raises(CatalogError, match="cannot read datasets catalog"):
        load_catalog(tmp_path)
    entry = dict(ENTRIES[0], id="Bad Id With Spaces And Far Too Long")
    (tmp_path / "catalog.json").write_text(json.dumps({"datasets": [entry]}), encoding="utf-8")
    with pytest.raises(CatalogError, match="id must be"):
        load_catalog(tmp_path)


def test_file_outside_the_datasets_folder_is_rejected(tmp_path: Path) -> None:
    entry = dict(ENTRIES[0], file="../movies.csv")
    (tmp_path / "catalog.json").write_text(json.dumps({"datasets": [entry]}), encoding="utf-8")
    with pytest.raises(CatalogError, match="plain file name"):
        load_catalog(tmp_path)


def test_datasets_dir_setting_overrides_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_datasets(tmp_path)
    monkeypatch.setenv(DATASETS_DIR_ENV, str(root))
    settings = load_settings(
        _env_file=None, telegram_bot_token="1:a", openai_api_key="k", llm_provider="openai"
    )
    catalog = load_catalog(settings.datasets_dir)
    assert catalog.root == root.resolve()
    dataset = catalog.get("stocks")
    assert dataset is not None
    assert dataset.path == root.resolve() / "stocks_daily.csv"
    # the catalog module itself reads no environment: without the setting, the bundled folder
    assert load_catalog().root == DATASETS_DIR
