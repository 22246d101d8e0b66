"""Settings: the contract's variable names, clear errors for missing or malformed values,
and `python -m bot` exiting with the message (no traceback) when nothing is configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
SETTING_NAMES = {name.upper() for name in Settings.model_fields}
BASE = {"TELEGRAM_BOT_TOKEN": "123:abc", "YANDEX_API_KEY": "k-secret", "YANDEX_FOLDER_ID": "b1g"}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A clean environment in an empty directory (no .env around)."""
    for name in list(os.environ):
        if name.upper() in SETTING_NAMES:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)

    def set_env(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)

    return set_env


def test_defaults_follow_the_contract(env) -> None:
    env(**BASE)
    settings = load_settings()
    assert settings.llm_provider == "yandex"
    assert settings.llm_model == "gpt://b1g/qwen3-235b-a22b-fp8/latest"
    assert settings.llm_api_base == "https://ai.api.cloud.yandex.net/v1"
    assert settings.max_concurrent_analyses == 3
    assert settings.default_language == "ru"
    assert settings.data_dir == Path("./data")
    assert not settings.use_webhook


def test_id_lists_are_comma_separated(env) -> None:
    env(**BASE, ALLOWED_USER_IDS="1, 2,3", ADMIN_USER_IDS="", ALLOWED_CHAT_IDS="-100123")
    settings = load_settings()
    assert settings.allowed_user_ids == {1, 2, 3}
    assert settings.admin_user_ids == frozenset()
    assert settings.allowed_chat_ids == {-100123}


def test_missing_token_names_the_variable_and_where_to_get_it(env) -> None:
    env(YANDEX_API_KEY="k", YANDEX_FOLDER_ID="f")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "TELEGRAM_BOT_TOKEN is not set" in str(error.value)
    assert "@BotFather" in str(error.value)


def test_yandex_requires_key_and_folder(env) -> None:
    env(TELEGRAM_BOT_TOKEN="123:abc")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "YANDEX_API_KEY is not set" in str(error.value)
    assert "YANDEX_FOLDER_ID is not set" in str(error.value)


def test_openai_provider_needs_only_its_key(env) -> None:
    env(TELEGRAM_BOT_TOKEN="123:abc", LLM_PROVIDER="openai", OPENAI_API_KEY="sk-x")
    settings = load_settings()
    assert settings.llm_model == "gpt-4.1"
    assert settings.llm_api_base is None


def test_malformed_values_are_reported_without_echoing_secrets(env) -> None:
    env(**BASE, ALLOWED_USER_IDS="12,abc", LLM_PROVIDER="gigachat")
    with pytest.raises(ConfigError) as error:
        load_settings()
    text = str(error.value)
    assert "ALLOWED_USER_IDS is invalid" in text
    assert "'abc' is not a numeric Telegram id" in text
    assert "LLM_PROVIDER is invalid" in text
    assert "k-secret" not in text


def test_webhook_needs_a_secret(env) -> None:
    env(**BASE, WEBHOOK_URL="https://example.org/hook")
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET is not set"):
        load_settings()


def test_environment_overrides_dotenv(env, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "TELEGRAM_BOT_TOKEN=from-file\nYANDEX_API_KEY=k\nYANDEX_FOLDER_ID=file-folder\n"
    )
    env(YANDEX_FOLDER_ID="env-folder")
    settings = load_settings()
    assert settings.telegram_bot_token.get_secret_value() == "from-file"
    assert settings.yandex_folder_id == "env-folder"


def test_bot_command_without_configuration_exits_with_the_message(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if k.upper() not in SETTING_NAMES}
    clean["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "TELEGRAM_BOT_TOKEN is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_webhook_secret_must_follow_telegrams_rule(env) -> None:
    env(**BASE, WEBHOOK_URL="https://example.org/hook", WEBHOOK_SECRET="has space!")
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET is invalid"):
        load_settings()


def test_blank_variables_mean_not_set_and_names_are_case_insensitive(env) -> None:
    env(
        TELEGRAM_BOT_TOKEN="123:abc",
        LLM_PROVIDER=" OpenAI ",
        OPENAI_API_KEY="k",
        DEFAULT_LANGUAGE="EN",
        LOG_LEVEL="debug",
        HEALTH_PORT="",
        REDIS_URL=" ",
        LLM_BASE_URL="",
        TELEGRAM_API_BASE="",
        WEBHOOK_URL="",
        SYSTEM_PROMPT_FILE="",
    )
    settings = load_settings()
    assert (settings.llm_provider, settings.default_language, settings.log_level) == (
        "openai",
        "en",
        "DEBUG",
    )
    assert settings.health_port is None
    assert settings.redis_url is None
    assert settings.llm_api_base is None
    assert settings.telegram_api_base is None
    assert not settings.use_webhook
    assert settings.system_prompt_file is None


def test_local_execution_settings_and_their_defaults(env) -> None:
    env(**BASE)
    settings = load_settings()
    assert settings.code_execution == "cloud"
    assert settings.llm_api == "responses"
    assert settings.max_tool_steps == 12
    assert settings.sandbox_memory_mb == 2048
    assert settings.sandbox_step_seconds == 120
    assert settings.sandbox_idle_minutes == 20
    env(CODE_EXECUTION="Local", LLM_API="CHAT", MAX_TOOL_STEPS="5", SANDBOX_MEMORY_MB="1024")
    settings = load_settings()
    assert (settings.code_execution, settings.llm_api) == ("local", "chat")
    assert (settings.max_tool_steps, settings.sandbox_memory_mb) == (5, 1024)
    env(CODE_EXECUTION="docker")
    with pytest.raises(ConfigError, match="CODE_EXECUTION is invalid"):
        load_settings()


def test_a_self_hosted_server_needs_no_openai_key(env) -> None:
    env(TELEGRAM_BOT_TOKEN="123:abc", LLM_PROVIDER="openai")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        load_settings()
    env(LLM_BASE_URL="http://127.0.0.1:11434/v1", OPENAI_MODEL="qwen3:8b")
    settings = load_settings()
    assert settings.llm_api_base == "http://127.0.0.1:11434/v1"
    assert settings.llm_api_key  # the SDK wants some string; the server ignores it


def test_local_mode_on_a_host_that_cannot_sandbox_exits_with_one_line(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if k.upper() not in SETTING_NAMES}
    clean |= {
        "PYTHONPATH": str(ROOT),
        "TELEGRAM_BOT_TOKEN": "123:abc",
        "TELEGRAM_API_BASE": "http://127.0.0.1:9",
        "LLM_PROVIDER": "openai",
        "LLM_BASE_URL": "http://127.0.0.1:9/v1",
        "CODE_EXECUTION": "local",
        "SANDBOX_VENV": str(tmp_path / "no-sandbox-interpreter"),
        "DATA_DIR": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = [
        line for line in result.stderr.splitlines() if "CODE_EXECUTION=local cannot work" in line
    ]
    assert "python -m bot.sandbox.build" in line
