"""Build the `AsyncOpenAI` client for the configured provider."""

from __future__ import annotations

import openai

from bot.config import Settings

CONNECT_TIMEOUT = 10.0


def build_client(settings: Settings) -> openai.AsyncOpenAI:
    """An `AsyncOpenAI` client for `settings.llm_provider`.

    - `yandex`: `api_key=YANDEX_API_KEY`, `project=YANDEX_FOLDER_ID` (sent as `OpenAI-Project`),
      `base_url` = `LLM_BASE_URL` or Yandex Cloud AI Studio's OpenAI-compatible endpoint;
    - `openai`: `api_key=OPENAI_API_KEY`, `base_url` = `LLM_BASE_URL` or the SDK's default.

    The SDK's own retries are off (`max_retries=0`): the engine retries by its own rules. The read
    timeout is the whole-turn timeout, since a code step may keep the stream silent for minutes.
    """
    project = settings.yandex_folder_id if settings.llm_provider == "yandex" else None
    return openai.AsyncOpenAI(
        api_key=settings.llm_api_key,
        base_url=settings.llm_api_base,
        project=project,
        max_retries=0,
        timeout=openai.Timeout(settings.analysis_timeout_seconds, connect=CONNECT_TIMEOUT),
    )
