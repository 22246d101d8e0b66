# Multi-stage build: dependencies are resolved with uv in a build stage; the runtime image
# holds the virtual environment, the bot's source and the bundled datasets, and runs as a
# non-root user.

FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install "uv>=0.9,<1"
WORKDIR /app
COPY pyproject.toml README.md ./
# Runtime dependencies only: no dev or dataset-build groups, and the project itself is
# run from source (python -m bot), not installed.
RUN uv sync --no-default-groups --no-install-project
# The sandbox interpreter for CODE_EXECUTION=local: a venv of the image's own Python with the
# analysis libraries, bytecode compiled and matplotlib's font cache warm (bot/sandbox/build.py
# uses the standard library only, so the bot's dependencies are not needed for it).
COPY bot/sandbox/build.py /tmp/build_sandbox.py
RUN python /tmp/build_sandbox.py /opt/sandbox --python "$(readlink -f "$(command -v python3)")"

FROM python:3.11-slim
# bubblewrap: the sandbox of CODE_EXECUTION=local (one per chat's kernel). Not pinned: Debian
# stable's package gets its security fixes under new version numbers.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/*
# /app/data points at /data, so DATA_DIR=./data (the source default, also in a copied
# .env.example) lands on the volume too when the image runs without compose.
RUN useradd --create-home --uid 10001 --user-group bot \
    && mkdir /data /app \
    && chown bot:bot /data \
    && ln -s /data /app/data
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY --from=build /opt/sandbox /opt/sandbox
COPY bot ./bot
COPY datasets/catalog.json datasets/*.csv ./datasets/
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    SANDBOX_VENV=/opt/sandbox \
    HEALTH_PORT=8081
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080 8081
# /healthz answers on WEBHOOK_PORT in webhook mode and on HEALTH_PORT in polling mode; the
# check fails when nothing answers there (including while the bot waits for Telegram or Redis).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "bot.healthcheck"]
# `docker run IMAGE` serves; `docker run IMAGE check` (or `docker compose run --rm bot check`)
# verifies the deployment. The bot installs its SIGTERM handler first thing; still, run it
# under an init (`init: true` in compose, `docker run --init`) so no signal is ever lost.
ENTRYPOINT ["python", "-m", "bot"]
CMD ["serve"]
