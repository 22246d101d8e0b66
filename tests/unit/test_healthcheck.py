"""The Docker health check fails whenever the bot is not serving: no endpoint configured (an
empty HEALTH_PORT= in .env used to override the image's port and pass), nothing listening, or
a configuration the bot cannot start with. (That it passes while the bot serves is shown in
tests/bot/test_running.py.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VALID = {"TELEGRAM_BOT_TOKEN": "1:abc", "LLM_PROVIDER": "openai", "OPENAI_API_KEY": "sk-x"}


def check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    values = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)} | env
    return subprocess.run(
        [sys.executable, "-m", "bot.healthcheck"],
        cwd=tmp_path,
        env=values,
        capture_output=True,
        text=True,
        timeout=60,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_empty_health_port_is_unhealthy(tmp_path: Path) -> None:
    result = check(tmp_path, **VALID, HEALTH_PORT="")
    assert result.returncode == 1
    assert "HEALTH_PORT" in result.stderr


def test_nothing_listening_is_unhealthy(tmp_path: Path) -> None:
    result = check(tmp_path, **VALID, HEALTH_PORT=str(free_port()))
    assert result.returncode == 1
    assert "nothing answers" in result.stderr


def test_webhook_mode_asks_the_webhook_port(tmp_path: Path) -> None:
    port = free_port()
    result = check(
        tmp_path,
        **VALID,
        HEALTH_PORT="",
        WEBHOOK_URL="https://bot.example.org/hook",
        WEBHOOK_SECRET="s",
        WEBHOOK_PORT=str(port),
    )
    assert result.returncode == 1
    assert f"port {port}" in result.stderr


def test_a_configuration_the_bot_refuses_is_unhealthy(tmp_path: Path) -> None:
    result = check(tmp_path, HEALTH_PORT="8081")
    assert result.returncode == 1
    assert "TELEGRAM_BOT_TOKEN" in result.stderr
