"""Service-level fixtures: the real services (`build_services`) on a real SQLite file or a
real Redis, with the Responses fake as the model. No Telegram."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import Services, build_services
from bot.config import Settings, load_settings
from tests.fakes.responses_api import ResponsesFake, running_responses_fake


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings overrides selecting the state backend (each test runs on both)."""
    if request.param == "redis":
        return {"redis_url": request.getfixturevalue("redis_url")}
    return {}


@pytest.fixture
async def llm() -> AsyncIterator[ResponsesFake]:
    async with running_responses_fake() as fake:
        yield fake


def service_settings(llm: ResponsesFake, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "_env_file": None,
        "telegram_bot_token": "123456789:AAUnusedHereBecauseNoTelegram_000",
        "llm_provider": "openai",
        "openai_api_key": "test-key",
        "openai_model": "gpt-test",
        "llm_base_url": llm.base_url,
        "llm_max_retries": 0,
    }
    return load_settings(**(values | overrides))


ServicesFactory = Callable[..., Awaitable[Services]]


@pytest.fixture
async def make_services(
    llm: ResponsesFake, backend: dict[str, Any], tmp_path: Path
) -> AsyncIterator[ServicesFactory]:
    """`await make_services(**settings)`: one bot instance's services (closed at the end).
    Instances made in one test share the backend (and DATA_DIR unless given)."""
    made: list[Services] = []

    async def make(**overrides: Any) -> Services:
        overrides = {"data_dir": tmp_path / "data"} | backend | overrides
        services = await build_services(service_settings(llm, **overrides))
        made.append(services)
        return services

    yield make
    for services in made:
        await services.aclose()
