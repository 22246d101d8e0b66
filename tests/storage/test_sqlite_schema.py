"""SQLite schema creation and migration at open()."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.storage import sqlite as sqlite_module
from bot.storage.sqlite import MIGRATIONS, SchemaTooNewError, SqliteStore

TABLES = {
    "files",
    "remote_files",
    "conversations",
    "user_languages",
    "active_analyses",
    "daily_counters",
}


def read_db(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


async def test_empty_database_is_migrated_to_latest(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "state.sqlite3"
    # a v0 database: the file exists but has no schema
    path.parent.mkdir()
    sqlite3.connect(path).close()
    assert read_db(path, "PRAGMA user_version") == [(0,)]

    store = SqliteStore(path)
    await store.open()
    assert await store.schema_version() == len(MIGRATIONS)
    await store.set_language(1, "en")
    await store.close()

    tables = {r[0] for r in read_db(path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables >= TABLES
    assert read_db(path, "PRAGMA journal_mode") == [("wal",)]


async def test_missing_file_and_directory_are_created(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "a" / "b" / "state.sqlite3")
    await store.open()
    assert await store.ping()
    await store.close()
    assert (tmp_path / "a" / "b" / "state.sqlite3").is_file()


async def test_reopening_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    for round_ in range(3):
        store = SqliteStore(path)
        await store.open()
        assert await store.schema_version() == len(MIGRATIONS)
        if round_ == 0:
            await store.set_language(1, "en")
        assert await store.get_language(1) == "en"
        await store.close()


async def test_two_processes_opening_a_new_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    stores = [SqliteStore(path) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert [await s.schema_version() for s in stores] == [len(MIGRATIONS)] * 4
    finally:
        for s in stores:
            await s.close()


async def test_a_later_step_is_applied_to_existing_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.sqlite3"
    store = SqliteStore(path)
    await store.open()
    await store.set_language(1, "en")
    await store.close()

    # A future release appends a step; data written by the old version must survive.
    extra = ("ALTER TABLE user_languages ADD COLUMN chosen_at REAL",)
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", [*MIGRATIONS, extra])
    store = SqliteStore(path)
    await store.open()
    assert await store.schema_version() == len(MIGRATIONS) + 1
    assert await store.get_language(1) == "en"
    await store.close()
    columns = {r[1] for r in read_db(path, "PRAGMA table_info(user_languages)")}
    assert "chosen_at" in columns


async def test_a_failing_step_leaves_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.sqlite3"
    broken = ("CREATE TABLE half_done (x INTEGER)", "THIS IS NOT SQL")
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", [*MIGRATIONS, broken])
    with pytest.raises(sqlite3.OperationalError):
        await SqliteStore(path).open()
    assert read_db(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    tables = {r[0] for r in read_db(path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert "half_done" not in tables


async def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    with pytest.raises(SchemaTooNewError, match="newer than this version"):
        await SqliteStore(path).open()
