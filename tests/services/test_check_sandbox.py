"""`python -m bot check`'s row for CODE_EXECUTION=local: a real sandbox, or a clear failure."""

from __future__ import annotations

from pathlib import Path

from bot.config import load_settings
from bot.services.selfcheck import Status, check_provider, check_sandbox
from tests.fakes.tool_model import Answer, Call, Conversation, running_tool_model


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


async def test_local_mode_checks_a_real_local_turn_and_uploads_nothing(
    tmp_path: Path, sandbox_venv: Path
) -> None:
    def script(chat: Conversation) -> list[Call | Answer]:
        if not chat.turn_outputs:
            return [
                Call(
                    "import pandas as pd, matplotlib.pyplot as plt\n"
                    "df = pd.read_csv('/mnt/data/check.csv')\n"
                    "df.plot.bar(x='region', y='revenue'); plt.show()\n"
                    "print(df.revenue.sum())"
                )
            ]
        return [Answer(f"The total revenue is {chat.turn_outputs[-1].split()[-1]}.")]

    async with running_tool_model(script) as model:
        rows = await check_provider(
            settings(tmp_path, sandbox_venv=sandbox_venv, llm_base_url=model.base_url)
        )
        paths = [path for path, _ in model.requests]

    statuses = {row.name: row.status for row in rows}
    assert statuses == {
        "LLM provider": Status.OK,
        "Local code turn": Status.OK,
        "File upload": Status.SKIP,
    }, rows
    assert not any("files" in path for path in paths)  # the file never left the machine
    assert not (tmp_path / "data" / "sandbox").exists()  # a running bot's folder is left alone
