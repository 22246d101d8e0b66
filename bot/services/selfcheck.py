"""The checks of `python -m bot check` that need no Telegram: storage, the LLM provider
(credentials and model), one real Code Interpreter turn on a three-row CSV through the engine's
public API, uploading and deleting a file, and the local sandbox. Each check gives a `CheckRow`
whose `fix` says what to change; no row ever holds a secret."""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bot.config import ConfigError, Settings
from bot.engine import (
    AnalysisEngine,
    ColumnInfo,
    DataFile,
    FailureReason,
    TurnFailed,
    TurnFinished,
    TurnRequest,
    TurnStarted,
)
from bot.engine.files import MemoryRemoteIndex
from bot.storage import open_store

CHECK_CSV = b"region,revenue\nEast,1200\nWest,950\nNorth,400\n"
CHECK_TOTAL = 2550
CHECK_QUESTION = (
    "Read check.csv. Print the total revenue, draw a bar chart of revenue by region and save it "
    "as chart.png. Answer in one short sentence with the total."
)
CHECK_TIMEOUT = 300.0  # seconds for the whole Code Interpreter turn


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "skipped"


@dataclass(frozen=True, slots=True)
class CheckRow:
    name: str
    status: Status
    detail: str
    fix: str = ""

    @classmethod
    def ok(cls, name: str, detail: str) -> CheckRow:
        return cls(name, Status.OK, detail)

    @classmethod
    def warn(cls, name: str, detail: str, fix: str) -> CheckRow:
        return cls(name, Status.WARN, detail, fix)

    @classmethod
    def fail(cls, name: str, detail: str, fix: str) -> CheckRow:
        return cls(name, Status.FAIL, detail, fix)

    @classmethod
    def skip(cls, name: str, detail: str) -> CheckRow:
        return cls(name, Status.SKIP, detail)


# ---- storage ------------------------------------------------------------------------------------


async def check_storage(settings: Settings) -> CheckRow:
    if settings.redis_url is not None:
        name, what = "Storage", "Redis (REDIS_URL)"
        fix = (
            "start Redis (docker compose --profile redis up -d) or correct REDIS_URL "
            "(redis://host:6379/0, with the password if it has one)"
        )
    else:
        name, what = "Storage", f"SQLite in DATA_DIR={settings.data_dir}"
        fix = "make DATA_DIR a writable folder (in Docker: the /data volume)"
    try:
        store = await asyncio.wait_for(open_store(settings), 15)
    except Exception as error:
        return CheckRow.fail(name, f"{what}: cannot open: {_brief(error, settings)}", fix)
    try:
        if not await asyncio.wait_for(store.ping(), 5):
            return CheckRow.fail(name, f"{what}: does not answer", fix)
    except Exception as error:
        return CheckRow.fail(name, f"{what}: {_brief(error, settings)}", fix)
    finally:
        await store.close()
    return CheckRow.ok(name, f"{what} answers")


# ---- the provider -------------------------------------------------------------------------------


def _provider_names(settings: Settings) -> tuple[str, str, str]:
    """(who, the key variable, the model variable)."""
    if settings.llm_provider == "yandex":
        return "Yandex AI Studio", "YANDEX_API_KEY", "YANDEX_CLOUD_MODEL / YANDEX_FOLDER_ID"
    return "OpenAI", "OPENAI_API_KEY", "OPENAI_MODEL"


async def check_provider(settings: Settings) -> list[CheckRow]:
    """Rows: provider (credentials and model), Code Interpreter turn, file upload, deletion."""
    who, key_name, model_name = _provider_names(settings)
    model = settings.yandex_cloud_model if settings.llm_provider == "yandex" else settings.llm_model
    quick = settings.model_copy(
        update={
            "llm_max_retries": min(settings.llm_max_retries, 1),
            "analysis_timeout_seconds": min(settings.analysis_timeout_seconds, CHECK_TIMEOUT),
        }
    )
    index = MemoryRemoteIndex()
    local = getattr(settings, "code_execution", "cloud") == "local"
    with tempfile.TemporaryDirectory(prefix="bot-check-") as folder:
        executor = None
        if local:  # its own sandbox folder: a running bot's kernels are not touched
            from bot.engine.local import LocalExecutor

            executor = LocalExecutor.from_settings(quick, root_dir=Path(folder) / "sandbox")
        engine = AnalysisEngine.from_settings(quick, index, executor)
        try:
            path = Path(folder) / "check.csv"
            await asyncio.to_thread(path.write_bytes, CHECK_CSV)
            data = DataFile(
                name="check.csv",
                path=path,
                sha256=hashlib.sha256(CHECK_CSV).hexdigest(),
                size=len(CHECK_CSV),
                rows=3,
                columns=(ColumnInfo("region", "text"), ColumnInfo("revenue", "int")),
                scope="check",
            )
            request = TurnRequest(
                question=CHECK_QUESTION, files=[data], language="en", chat_key="check"
            )
            started = False
            outcome: TurnFinished | TurnFailed | None = None
            never = "CODE_EXECUTION=local: files never leave the machine"
            if local:
                try:
                    await engine.start()
                except ConfigError:
                    why = "the sandbox cannot start: see the Local sandbox row"
                    return [
                        CheckRow.skip("LLM provider", why),
                        CheckRow.skip("Local code turn", why),
                        CheckRow.skip("File upload", never),
                    ]
            async with engine.run(request) as run:
                async for event in run:
                    if isinstance(event, TurnStarted):
                        started = True
                    elif isinstance(event, TurnFinished | TurnFailed):
                        outcome = event
            rows = [
                _provider_row(settings, who, key_name, model_name, model, started, outcome),
                _turn_row(outcome, started, local=local),
            ]
            if local:
                return [*rows, CheckRow.skip("File upload", never)]
            file_id = await index.get_remote_file(data.scope, data.sha256)
            rows.append(_upload_row(file_id, outcome, key_name))
            rows.append(await _deletion_row(engine, file_id, settings))
            return rows
        finally:
            await engine.aclose()


def _provider_row(
    settings: Settings,
    who: str,
    key_name: str,
    model_name: str,
    model: str,
    started: bool,
    outcome: TurnFinished | TurnFailed | None,
) -> CheckRow:
    name = "LLM provider"
    label = f"{who}, model {model}"
    if started or isinstance(outcome, TurnFinished):
        return CheckRow.ok(name, f"{label}: key and model accepted")
    assert isinstance(outcome, TurnFailed)
    reason = outcome.reason
    detail = f"{label}: {reason.value}: {_clip(outcome.detail, settings)}"
    if reason is FailureReason.AUTH:
        fix = f"the key is refused: check {key_name}"
        if settings.llm_provider == "yandex":
            fix += " (scope yc.ai.foundationModels.execute; roles ai.assistants.editor, "
            fix += "ai.languageModels.user) and YANDEX_FOLDER_ID"
        return CheckRow.fail(name, detail, fix)
    if reason is FailureReason.BAD_REQUEST:
        return CheckRow.fail(
            name,
            detail,
            f"the request is refused: check {model_name} (a model with Code "
            "Interpreter) and LLM_BASE_URL",
        )
    unreachable = reason is FailureReason.UPLOAD_FAILED and any(
        word in outcome.detail for word in ("APIConnectionError", "APITimeoutError")
    )
    if reason in (FailureReason.UNAVAILABLE, FailureReason.TIMEOUT) or unreachable:
        return CheckRow.fail(
            name, detail, "the provider does not answer: check the network and LLM_BASE_URL"
        )
    if reason is FailureReason.RATE_LIMITED:
        return CheckRow.fail(name, detail, "the quota is exhausted: wait or raise it")
    if reason is FailureReason.UPLOAD_FAILED:
        return CheckRow.fail(name, detail, f"the file API refuses uploads: check {key_name}")
    return CheckRow.fail(name, detail, "see the detail")


def _turn_row(
    outcome: TurnFinished | TurnFailed | None, started: bool, *, local: bool = False
) -> CheckRow:
    name = "Local code turn" if local else "Code Interpreter turn"
    if not started and not isinstance(outcome, TurnFinished):
        return CheckRow.skip(name, "no turn: see the provider row")
    if isinstance(outcome, TurnFailed):
        return CheckRow.fail(
            name,
            f"{outcome.reason.value}: {outcome.detail[:160]}",
            "the model must call the python tool: check the model and LLM_API"
            if local
            else "the model must have the code_interpreter tool: check the model setting",
        )
    assert isinstance(outcome, TurnFinished)
    result = outcome.result
    charts = [a for a in result.artifacts if a.is_image]
    logs = " ".join(step.logs for step in result.code_steps)
    said_total = _has_number(result.text, CHECK_TOTAL) or _has_number(logs, CHECK_TOTAL)
    summary = (
        f"{len(result.code_steps)} code step(s), {len(charts)} chart(s), "
        f"total {'found' if said_total else 'missing'}, {result.duration_s:.1f}s, "
        f"{result.usage.total_tokens} tokens"
    )
    if charts and said_total:
        return CheckRow.ok(name, summary)
    missing = " and ".join(
        what for what, ok in (("no chart", charts), (f"no {CHECK_TOTAL}", said_total)) if not ok
    )
    return CheckRow.fail(
        name,
        f"{summary}: {missing}",
        "the model answered without running code: use a model with Code Interpreter",
    )


def _upload_row(
    file_id: str | None, outcome: TurnFinished | TurnFailed | None, key_name: str
) -> CheckRow:
    name = "File upload"
    if file_id:
        return CheckRow.ok(name, "check.csv uploaded")
    if isinstance(outcome, TurnFailed) and outcome.reason is FailureReason.AUTH:
        return CheckRow.fail(name, "refused: auth", f"check {key_name} and its rights on files")
    return CheckRow.fail(name, "no file was uploaded", "see the provider row")


async def _deletion_row(
    engine: AnalysisEngine, file_id: str | None, settings: Settings
) -> CheckRow:
    name = "File deletion"
    if not file_id:
        return CheckRow.skip(name, "nothing was uploaded")
    try:
        await engine.delete_remote_file(file_id)
    except Exception as error:
        return CheckRow.fail(
            name,
            _brief(error, settings),
            "the key may upload but not delete files: give it the rights to delete "
            "(otherwise removed files keep their remote copies)",
        )
    return CheckRow.ok(name, "check.csv deleted")


# ---- the sandbox --------------------------------------------------------------------------------


async def check_sandbox(settings: Settings) -> CheckRow:
    """CODE_EXECUTION=local: create a sandbox (in a scratch folder, so a running bot's kernels are
    not touched), run `1 + 1` and one pandas step in it, with the configured limits."""
    name = "Local sandbox"
    mode = getattr(settings, "code_execution", "cloud")
    if mode != "local":
        return CheckRow.skip(name, f"CODE_EXECUTION={mode}")
    from bot.engine.local import LocalExecutor

    with tempfile.TemporaryDirectory(prefix="check-sandbox-") as scratch:
        executor = LocalExecutor.from_settings(settings, root_dir=Path(scratch))
        try:
            await executor.start()
            session = await executor.pool.session("check", [])
            # The bot's host listens on its loopback; a sandbox without network cannot reach
            # it (its own loopback is another one). Nothing is sent beyond this machine.
            with socket.create_server(("127.0.0.1", 0)) as listener:
                port = listener.getsockname()[1]
                output = await session.execute(
                    "import pandas, socket\n"
                    "try:\n"
                    f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                    "    print('network: OPEN')\n"
                    "except OSError:\n"
                    "    print('network: none')\n"
                    "print('pandas', pandas.__version__)"
                )
        except ConfigError as error:
            return CheckRow.fail(
                name,
                str(error).removeprefix("CODE_EXECUTION=local cannot work here: "),
                "see README → Run it on your own machine (local code execution)",
            )
        finally:
            await executor.aclose()
    text = output.text.strip()
    if "network: none" not in text or "pandas" not in text:
        return CheckRow.fail(
            name,
            _clip(f"the sandbox step gave: {text or output.for_model()}", settings),
            "the sandbox must have no network and the interpreter pandas: rebuild it with "
            f"python -m bot.sandbox.build {settings.sandbox_venv}",
        )
    pandas_line = text.splitlines()[-1]
    return CheckRow.ok(
        name,
        f"bubblewrap kernel ready, no network, {pandas_line}; "
        f"{settings.sandbox_memory_mb} MB, {settings.sandbox_step_seconds:g} s per step",
    )


# ---- helpers ------------------------------------------------------------------------------------


def _has_number(text: str, number: int) -> bool:
    compact = re.sub(r"(?<=\d)[\s,\u00a0\u202f'](?=\d{3}\b)", "", text)
    return re.search(rf"(?<![\d.]){number}(?:\.0+)?(?!\d)", compact) is not None


def _clip(text: str, _settings: Settings, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


def _brief(error: BaseException, settings: Settings) -> str:
    return _clip(f"{type(error).__name__}: {error}", settings)
