"""Local file copies: safe names, atomic writes, unique names, removal."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.common.filenames import MAX_NAME_BYTES, MAX_NAME_CHARS, safe_filename
from bot.storage.files import TEMP_PREFIX, LocalFileStore


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("report.csv", "report.csv"),
        ("../../etc/passwd", "passwd"),
        ("C:\\x\\y.csv", "y.csv"),
        ("..", "file"),
        ("", "file"),
        ("   ", "file"),
        ("...", "file"),
        ("Продажи 2024.csv", "Продажи_2024.csv"),
        ("  отчёт   за\tмай .xlsx", "отчёт_за_май.xlsx"),
        (".bashrc", "bashrc"),
        (".part-1234", "part-1234"),
        ("a..b.csv", "a.b.csv"),
        ("evil\u202egpj.csv", "evilgpj.csv"),  # right-to-left override dropped
        ("line\nbreak\x00.csv", "line_break.csv"),
        ('re<p>o:r|t?"*.csv', "re_p_o_r_t_.csv"),
        ("CON.csv", "CON_.csv"),
        ("nul", "nul_"),
        ("data.tar.gz", "data.tar.gz"),
        ("..\\..\\Windows\\system32\\..", "file"),
    ],
)
def test_safe_filename(original: str, expected: str) -> None:
    assert safe_filename(original) == expected


@pytest.mark.parametrize(
    "original",
    ["a" * 500 + ".csv", "Я" * 300 + ".xlsx", "中" * 300 + ".csv", "x" * 500],
)
def test_safe_filename_caps_long_names_and_keeps_the_extension(original: str) -> None:
    name = safe_filename(original)
    assert len(name) <= MAX_NAME_CHARS
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert name.endswith(Path(original).suffix)
    assert name[0] == original[0]


@pytest.mark.parametrize(
    "original",
    ["../../etc/passwd", "CON.csv", "Продажи 2024.csv", "a" * 500 + ".csv", " .x. ", "_-_.csv"],
)
def test_safe_filename_is_stable(original: str) -> None:
    once = safe_filename(original)
    assert safe_filename(once) == once
    assert "/" not in once
    assert "\\" not in once
    assert not once.startswith(".")


@pytest.fixture
def files(tmp_path: Path) -> LocalFileStore:
    return LocalFileStore(tmp_path / "files")


def temp_files(root: Path) -> list[Path]:
    return list(root.rglob(f"{TEMP_PREFIX}*"))


async def chunks(*parts: bytes, fail_after: int | None = None) -> AsyncIterator[bytes]:
    for n, part in enumerate(parts):
        if fail_after is not None and n == fail_after:
            raise ConnectionError("download interrupted")
        await asyncio.sleep(0)
        yield part


async def test_write_atomic_bytes_and_stream(files: LocalFileStore) -> None:
    path = await files.write_atomic(-100123, "Продажи 2024.csv", b"a,b\n1,2\n")
    assert path == files.root / "-100123" / "Продажи_2024.csv"
    assert path.read_bytes() == b"a,b\n1,2\n"

    big = [bytes([i]) * 700_000 for i in range(5)]  # crosses the write buffer
    streamed = await files.write_atomic(5, "big.bin", chunks(*big))
    assert streamed.read_bytes() == b"".join(big)
    assert temp_files(files.root) == []


async def test_user_names_never_escape_the_chat_directory(files: LocalFileStore) -> None:
    path = await files.write_atomic(5, "../../escape.csv", b"x")
    assert path.parent == files.chat_dir(5)
    assert path.name == "escape.csv"
    assert not (files.root.parent / "escape.csv").exists()


async def test_interrupted_write_leaves_nothing(files: LocalFileStore) -> None:
    with pytest.raises(ConnectionError):
        await files.write_atomic(5, "report.csv", chunks(b"a" * 10, b"b" * 10, fail_after=1))
    assert not (files.chat_dir(5) / "report.csv").exists()
    assert temp_files(files.root) == []


async def test_interrupted_write_keeps_the_previous_version(files: LocalFileStore) -> None:
    await files.write_atomic(5, "report.csv", b"old")
    with pytest.raises(ConnectionError):
        await files.write_atomic(
            5, "report.csv", chunks(b"new", b"more", fail_after=1), replace=True
        )
    assert (files.chat_dir(5) / "report.csv").read_bytes() == b"old"
    assert temp_files(files.root) == []


async def test_cancelled_write_leaves_nothing(files: LocalFileStore) -> None:
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            started.set()
            yield b"x" * 1000
            await asyncio.sleep(0.01)

    task = asyncio.create_task(files.write_atomic(5, "report.csv", endless()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(files.chat_dir(5).iterdir()) == []


async def test_existing_files_are_not_overwritten(files: LocalFileStore) -> None:
    first = await files.write_atomic(5, "report.csv", b"1")
    second = await files.write_atomic(5, "report.csv", b"2")
    assert (first.name, second.name) == ("report.csv", "report_2.csv")
    assert first.read_bytes() == b"1"
    replaced = await files.write_atomic(5, "report.csv", b"3", replace=True)
    assert replaced == first
    assert first.read_bytes() == b"3"


async def test_concurrent_writes_of_one_name_get_distinct_files(files: LocalFileStore) -> None:
    paths = await asyncio.gather(
        *(files.write_atomic(5, "report.csv", f"content {i}".encode()) for i in range(20))
    )
    names = {p.name for p in paths}
    assert len(names) == 20
    assert "report.csv" in names
    assert "report_20.csv" in names
    for i, path in enumerate(paths):
        assert path.read_bytes() == f"content {i}".encode()
    assert temp_files(files.root) == []


def test_unique_name(files: LocalFileStore) -> None:
    assert files.unique_name(5, "report.csv", set()) == "report.csv"
    assert files.unique_name(5, "report.csv", {"report.csv"}) == "report_2.csv"
    assert files.unique_name(5, "report.csv", {"report.csv", "report_2.csv"}) == "report_3.csv"
    assert files.unique_name(5, "../Отчёт.csv", {"Отчёт.csv"}) == "Отчёт_2.csv"
    long = files.unique_name(5, "a" * 300 + ".csv", {safe_filename("a" * 300 + ".csv")})
    assert long.endswith("_2.csv")
    assert len(long) <= MAX_NAME_CHARS


async def test_download_into_temp_then_commit(files: LocalFileStore) -> None:
    temp = files.new_temp_path(5)
    assert temp.parent == files.chat_dir(5)
    assert temp.name.startswith(TEMP_PREFIX)
    assert not temp.exists()
    temp.write_bytes(b"downloaded")
    final = await files.commit(temp, 5, "Данные.xlsx")
    assert final == files.chat_dir(5) / "Данные.xlsx"
    assert final.read_bytes() == b"downloaded"
    assert not temp.exists()

    other = files.new_temp_path(5)
    other.write_bytes(b"again")
    assert (await files.commit(other, 5, "Данные.xlsx")).name == "Данные_2.xlsx"


async def test_commit_refuses_foreign_paths(files: LocalFileStore, tmp_path: Path) -> None:
    outside = tmp_path / "not-a-temp.csv"
    outside.write_bytes(b"x")
    with pytest.raises(ValueError, match="temp path"):
        await files.commit(outside, 5, "x.csv")
    assert outside.exists()
    wrong_chat = files.new_temp_path(6)
    wrong_chat.write_bytes(b"x")
    with pytest.raises(ValueError, match="same chat"):
        await files.commit(wrong_chat, 5, "x.csv")
    assert not (files.chat_dir(5) / "x.csv").exists()


async def test_delete_and_delete_chat(files: LocalFileStore, tmp_path: Path) -> None:
    a = await files.write_atomic(5, "a.csv", b"a")
    b = await files.write_atomic(5, "b.csv", b"b")
    other = await files.write_atomic(6, "c.csv", b"c")
    assert await files.delete(a)
    assert not a.exists()
    assert not await files.delete(a)
    outside = tmp_path / "keep.txt"
    outside.write_text("keep")
    with pytest.raises(ValueError, match="outside"):
        await files.delete(outside)
    with pytest.raises(ValueError, match="outside"):
        await files.delete(files.chat_dir(5) / ".." / ".." / "keep.txt")
    assert outside.exists()

    await files.delete_chat(5)
    assert not b.exists()
    assert not files.chat_dir(5).exists()
    assert other.exists()
    await files.delete_chat(5)  # already gone: fine


async def test_cleanup_temp_files(files: LocalFileStore) -> None:
    kept = await files.write_atomic(5, "kept.csv", b"x")
    leftovers = [files.new_temp_path(5), files.new_temp_path(6)]
    for temp in leftovers:
        temp.write_bytes(b"half")
    assert await files.cleanup_temp_files() == 2
    assert temp_files(files.root) == []
    assert kept.exists()
    assert await LocalFileStore(files.root / "missing").cleanup_temp_files() == 0


async def test_sha256_of(files: LocalFileStore) -> None:
    data = b"x" * 3_000_000
    path = await files.write_atomic(5, "x.bin", data)
    assert await files.sha256_of(path) == hashlib.sha256(data).hexdigest()
