"""`python -m bot check`'s row for CODE_EXECUTION=local: a real sandbox, or a clear failure."""

from __future__ import annotations

from pathlib import Path

from bot.config import load_settings
from bot.services.selfcheck import Status, check_sandbox


def settings(tmp_path: Path, **overrides: object):
    values: dict[str, object] = {
        "_env_file": None,
        "telegram_bot_token": "1:x",
        "llm_provider": "openai",
        "llm_base_url": "http://127.0.0.1:9/v1",
        "data_dir": tmp_path / "data",
        "code_execution": "local",
    }
    return load_settings(**(values | overrides))


async def test_a_working_sandbox_passes(tmp_path: Path, sandbox_venv: Path) -> None:
    row = await check_sandbox(settings(tmp_path, sandbox_venv=sandbox_venv))
    assert row.status is Status.OK, row
    assert "no network" in row.detail
    assert "pandas" in row.detail
    assert not (tmp_path / "data" / "sandbox").exists()  # a running bot's folder is left alone


async def test_a_missing_interpreter_fails_with_the_fix(tmp_path: Path) -> None:
    row = await check_sandbox(settings(tmp_path, sandbox_venv=tmp_path / "none"))
    assert row.status is Status.FAIL
    assert "python -m bot.sandbox.build" in row.detail
    assert row.fix


async def test_cloud_mode_skips_it(tmp_path: Path) -> None:
    row = await check_sandbox(settings(tmp_path, code_execution="cloud"))
    assert row.status is Status.SKIP
