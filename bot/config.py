"""Configuration: one settings object read from the environment and `.env`.

Environment variables override `.env`. Variable names are part of the deployment contract
(see README "Settings"); do not rename them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IdSet = Annotated[frozenset[int], NoDecode]

# The languages the bot speaks (its texts, the model's answers); the first is the default.
Language = Literal["ru", "en"]
LANGUAGES: tuple[str, ...] = get_args(Language)
DEFAULT_LANGUAGE: str = LANGUAGES[0]

# Where an operator gets each required value; shown when it is missing.
WHERE_TO_GET = {
    "TELEGRAM_BOT_TOKEN": "create a bot with @BotFather in Telegram and copy its token",
    "YANDEX_API_KEY": (
        "create a service account with roles ai.assistants.editor and ai.languageModels.user "
        "in Yandex Cloud, then an API key with scope yc.ai.foundationModels.execute"
    ),
    "YANDEX_FOLDER_ID": "the id of your Yandex Cloud folder (console → folder → Overview)",
    "OPENAI_API_KEY": (
        "create a key at platform.openai.com → API keys (not needed for a keyless server at "
        "LLM_BASE_URL)"
    ),
    "WEBHOOK_SECRET": "any random string of 1-256 characters A-Z a-z 0-9 _ -",
}


def _blank_is_none(value: object) -> object:
    """An empty variable (`HEALTH_PORT=` in a .env) means "not set"."""
    return None if isinstance(value, str) and not value.strip() else value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


# Settings by concern. Each group is read from the same environment (the variable names are
# the contract, so no prefixes); `Settings` joins them. Code that needs one concern can say so
# in its signature (e.g. `create_bot(settings: TelegramSettings)`).


class TelegramSettings(BaseSettings):
    """The bot's identity, the Bot API server, and how it talks in chats."""

    telegram_bot_token: SecretStr
    telegram_api_base: str | None = None
    telegram_api_local: bool = False
    default_language: Language = DEFAULT_LANGUAGE
    edit_interval_private: float = Field(default=1.0, ge=0)
    edit_interval_group: float = Field(default=3.0, ge=0)
    telegram_messages_per_second: float = Field(default=25.0, ge=0)  # 0: no overall pacing
    # Telegram's per-chat limits as documented (the outbound scheduler keeps under them)
    telegram_private_per_second: float = Field(default=1.0, gt=0)
    telegram_private_burst: float = Field(default=3.0, ge=1)
    telegram_group_per_minute: float = Field(default=20.0, gt=0)
    telegram_group_burst: float = Field(default=3.0, ge=1)
    stream_drafts: bool = True  # stream the answer as a draft in private chats
    # Answers as native rich messages (tables, formulas, charts inside) when they need it;
    # the deployment default of the per-chat choice in /settings.
    rich_answers: Literal["off", "auto"] = "off"

    telegram_blank_is_none = field_validator("telegram_api_base", mode="before")(_blank_is_none)
    telegram_lowered = field_validator("default_language", "rich_answers", mode="before")(_lower)


class ProviderSettings(BaseSettings):
    """The model provider: which one, its credentials, model and endpoint."""

    llm_provider: Literal["yandex", "openai"] = "yandex"
    yandex_api_key: SecretStr | None = None
    yandex_folder_id: str | None = None
    yandex_cloud_model: str = "qwen3-235b-a22b-fp8/latest"
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-4.1"
    llm_base_url: str | None = None
    llm_max_retries: int = Field(default=3, ge=0, le=10)
    llm_background: Literal["auto", "on", "off"] = "auto"
    system_prompt_file: Path | None = None

    provider_blank_is_none = field_validator(
        "llm_base_url",
        "yandex_folder_id",
        "yandex_api_key",
        "openai_api_key",
        "system_prompt_file",
        mode="before",
    )(_blank_is_none)
    provider_lowered = field_validator("llm_provider", "llm_background", mode="before")(_lower)

    @property
    def llm_model(self) -> str:
        if self.llm_provider == "yandex":
            return f"gpt://{self.yandex_folder_id}/{self.yandex_cloud_model}"
        return self.openai_model

    @property
    def llm_api_key(self) -> str:
        key = self.yandex_api_key if self.llm_provider == "yandex" else self.openai_api_key
        if key is None:  # only a keyless server at LLM_BASE_URL (see Settings._required_values)
            return "no-key"
        return key.get_secret_value()

    @property
    def llm_api_base(self) -> str | None:
        if self.llm_base_url:
            return self.llm_base_url
        if self.llm_provider == "yandex":
            return "https://ai.api.cloud.yandex.net/v1"
        return None  # the SDK's default


class CodeExecutionSettings(BaseSettings):
    """Where the model's code runs: the provider's hosted Code Interpreter (cloud) or a sandboxed
    Python kernel per chat on this machine (local), driven by any OpenAI-compatible model through
    function calling over the Responses API or Chat Completions (LLM_API)."""

    code_execution: Literal["cloud", "local"] = "cloud"
    llm_api: Literal["responses", "chat"] = "responses"
    max_tool_steps: int = Field(default=12, ge=1, le=100)
    sandbox_memory_mb: int = Field(default=2048, ge=256)
    sandbox_step_seconds: float = Field(default=120.0, gt=0)
    sandbox_idle_minutes: float = Field(default=20.0, gt=0)
    sandbox_disk_mb: int = Field(default=1024, ge=16)
    sandbox_max_idle_kernels: int = Field(default=8, ge=1)
    sandbox_venv: Path = Path(".sandbox-venv")

    execution_lowered = field_validator("code_execution", "llm_api", mode="before")(_lower)


class StateSettings(BaseSettings):
    """Where state lives: files and SQLite under DATA_DIR, or Redis."""

    data_dir: Path = Path("./data")
    datasets_dir: Path | None = None  # the demo datasets (catalog.json); None: the bundled ones
    redis_url: SecretStr | None = None
    # With REDIS_URL: seconds after which a dead instance's analysis slots are given back
    shared_lease_seconds: float = Field(default=30.0, gt=0)

    state_blank_is_none = field_validator("redis_url", "datasets_dir", mode="before")(
        _blank_is_none
    )


class AnalysisSettings(BaseSettings):
    """How analyses run: concurrency, time, what they may return, how long context lasts."""

    max_concurrent_analyses: int = Field(default=3, ge=1)
    analysis_timeout_seconds: float = Field(default=600.0, gt=0)
    max_artifacts: int = Field(default=20, ge=0)
    max_artifact_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    conversation_ttl_hours: float = Field(default=24.0, gt=0)


class FileSettings(BaseSettings):
    """The caps on a chat's files and how long they are kept."""

    max_files_per_chat: int = Field(default=10, ge=1)
    max_chat_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    file_retention_days: float = Field(default=30.0, gt=0)


class AccessSettings(BaseSettings):
    """Who may use the bot, who administers it, and the daily quotas."""

    allowed_user_ids: IdSet = frozenset()
    allowed_chat_ids: IdSet = frozenset()
    admin_user_ids: IdSet = frozenset()
    daily_user_quota: int = Field(default=30, ge=0)
    daily_chat_quota: int = Field(default=200, ge=0)

    @field_validator("allowed_user_ids", "allowed_chat_ids", "admin_user_ids", mode="before")
    @classmethod
    def _parse_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",")]
            ids = []
            for part in parts:
                if not part:
                    continue
                try:
                    ids.append(int(part))
                except ValueError:
                    raise ValueError(f"{part!r} is not a numeric Telegram id") from None
            return frozenset(ids)
        return value


class RunSettings(BaseSettings):
    """How the process runs: polling or a webhook, health endpoint, stopping, logs."""

    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_host: str = "0.0.0.0"  # noqa: S104 - the webhook must listen on all interfaces in Docker
    webhook_port: int = Field(default=8080, ge=1, le=65535)
    health_port: int | None = Field(default=None, ge=1, le=65535)
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    run_blank_is_none = field_validator(
        "webhook_url", "health_port", "webhook_secret", mode="before"
    )(_blank_is_none)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("webhook_secret")
    @classmethod
    def _telegram_secret_format(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()
        ):
            raise ValueError("use 1-256 characters from A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url_is_https(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be a full URL, e.g. https://bot.example.org/telegram")
        return value

    @property
    def use_webhook(self) -> bool:
        return bool(self.webhook_url)


class Settings(
    TelegramSettings,
    ProviderSettings,
    CodeExecutionSettings,
    StateSettings,
    AnalysisSettings,
    FileSettings,
    AccessSettings,
    RunSettings,
):
    """Every setting, read once from the environment and `.env` (see `load_settings`)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    @model_validator(mode="after")
    def _required_values(self) -> Settings:
        missing = []
        if self.llm_provider == "yandex":
            if self.yandex_api_key is None:
                missing.append("YANDEX_API_KEY")
            if not self.yandex_folder_id:
                missing.append("YANDEX_FOLDER_ID")
        elif self.openai_api_key is None and not self.llm_base_url:
            # A self-hosted server (LLM_BASE_URL: Ollama, vLLM, llama.cpp) may need no key.
            missing.append("OPENAI_API_KEY")
        if self.webhook_url and self.webhook_secret is None:
            missing.append("WEBHOOK_SECRET")
        if missing:
            raise MissingSettingsError(missing)
        return self


class MissingSettingsError(ValueError):
    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__("missing: " + ", ".join(names))


class ConfigError(Exception):
    """A configuration problem explained in plain words (no traceback needed)."""


def _explain(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        ctx = item.get("ctx") or {}
        inner = ctx.get("error")
        if isinstance(inner, MissingSettingsError):
            for name in inner.names:
                lines.append(f"  {name} is not set: {WHERE_TO_GET.get(name, 'see .env.example')}")
            continue
        name = "_".join(str(p) for p in item["loc"]).upper() or "settings"
        if item["type"] == "missing":
            lines.append(f"  {name} is not set: {WHERE_TO_GET.get(name, 'see .env.example')}")
        else:
            # Never echo the offending value: it may be a secret.
            message = str(inner) if isinstance(inner, Exception) else item["msg"]
            lines.append(f"  {name} is invalid: {message}")
    return (
        "Configuration error:\n"
        + "\n".join(lines)
        + ("\nSet the variables in the environment or in a .env file (see .env.example).")
    )


def load_settings(**overrides: object) -> Settings:
    """Read settings; raise ConfigError with a readable explanation on any problem."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(_explain(error)) from None


def load_settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        print(error, file=sys.stderr)
        raise SystemExit(2) from None
