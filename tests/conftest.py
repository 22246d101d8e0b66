"""Shared test fixtures. Real services only: a real redis-server, real SQLite files,
loopback fakes of the Telegram Bot API and of the Responses API (tests/fakes)."""

pytest_plugins = ["tests.fixtures.redis_server", "tests.fixtures.sandbox"]
