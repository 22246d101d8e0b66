"""The analysis engine: runs one question over a chat's files as a Responses API turn.

Usage::

    engine = AnalysisEngine.from_settings(settings, remote_index=storage)
    run = engine.run(TurnRequest(question=..., files=..., previous_response_id=...))
    async for event in run:          # Queued, UploadingFiles, TurnStarted, CodeStepStarted, ...
        ...                          # the last event is TurnFinished or TurnFailed
    # elsewhere, e.g. from a "Cancel" button:  run.cancel()
    ...
    await engine.aclose()

What a turn does:

1. waits for a slot (`TurnLimiter`, FIFO; emits `Queued(position)` whenever the position changes);
2. makes sure every input file has a live remote copy (`UploadingFiles(n)` if it uploads any);
3. sends `responses.create(stream=True)` with the system prompt as `instructions` (every turn),
   the question as `input`, the code interpreter with all the chat's `file_ids`, and the previous
   turn's `previous_response_id`; on OpenAI also `include=["code_interpreter_call.outputs"]`;
4. translates the stream into engine events (`stream.TurnAccumulator`);
5. on `response.completed` downloads the cited files and inline images (`artifacts`), rewrites
   `sandbox:` links and emits `TurnFinished`. On Yandex, where generated files are copied into
   the Files API, those copies are deleted after the download.

Failure handling:

- the initial request is retried on 408/409/429/5xx and connection errors, with exponential
  backoff (`max_retries`, `retry_base_delay`); so is an attempt that failed transiently before
  any output event. Once any output event arrived the turn is never re-sent (code may have run);
- "Container is expired." or an unknown `previous_response_id` → one retry as a fresh chain
  (`TurnResult.context_reset`); a 400/404 naming one of our files → re-upload it, retry once;
- `error` / `response.failed` → MODEL_ERROR (RATE_LIMITED for `rate_limit_exceeded`),
  `response.incomplete` → INCOMPLETE, a stream that ends without a terminal event → INTERRUPTED
  (unless `responses.retrieve` shows the response did complete);
- the whole-turn timeout (counted from getting a slot, so queueing is not included) → TIMEOUT;
- `run.cancel()` → CANCELLED; the HTTP stream is closed at once.

Exactly one terminal event (`TurnFinished` or `TurnFailed`) ends every run. `TurnStarted` may be
repeated with a new response id when a failed attempt was re-sent transparently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import openai

from bot.config import ConfigError, Settings
from bot.engine.artifacts import Downloader, collect_artifacts
from bot.engine.client import build_client
from bot.engine.files import RemoteFiles, UploadError
from bot.engine.limiter import TurnLimiter
from bot.engine.links import rewrite_sandbox_links
from bot.engine.prompt import load_template, render_instructions
from bot.engine.retry import (
    RetryPolicy,
    describe,
    error_text,
    failure_reason,
    is_transient,
)
from bot.engine.stream import TurnAccumulator, field_of
from bot.engine.types import (
    EngineEvent,
    FailureReason,
    Queued,
    RemoteFileIndex,
    TurnFailed,
    TurnFinished,
    TurnRequest,
    TurnResult,
    TurnStarted,
    UploadingFiles,
    Usage,
)

logger = logging.getLogger(__name__)

PROVIDERS = ("yandex", "openai")
OPENAI_INCLUDE = ["code_interpreter_call.outputs"]
# Queue positions up to this are reported at every move; further back in ~10 % steps.
EXACT_QUEUE_POSITIONS = 10
_FILE_WORD = re.compile(r"\bfiles?\b|file_ids?", re.IGNORECASE)


class TurnRun:
    """One turn in progress. Async-iterate it to receive `EngineEvent`s; the iteration ends after
    the single terminal event (`TurnFinished` or `TurnFailed`).

    The work starts on the first iteration. `cancel()` may be called at any time from any task of
    the same event loop; it makes the run end with `TurnFailed(CANCELLED)`. Used as an async
    context manager, a run that is left before its end is cancelled.
    """

    def __init__(self, engine: AnalysisEngine, request: TurnRequest) -> None:
        self.request = request
        self.analysis_id = request.turn_id or uuid.uuid4().hex[:12]
        self.created_at = time.monotonic()
        self._engine = engine
        self._events: asyncio.Queue[EngineEvent] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._cancel_detail: str | None = None
        self._terminal: TurnFinished | TurnFailed | None = None
        self._delivered_terminal = False
        self._attempt: TurnAccumulator | None = None

    # ---- public -------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """The terminal event has been produced (it may not have been consumed yet)."""
        return self._terminal is not None

    @property
    def outcome(self) -> TurnFinished | TurnFailed | None:
        return self._terminal

    def cancel(self, detail: str = "cancelled by the user") -> None:
        """Stop the turn: leave the queue, abort the upload or close the HTTP stream."""
        if self._terminal is not None or self._cancel_detail is not None:
            return
        self._cancel_detail = detail
        if self._task is None:
            self._finish(TurnFailed(FailureReason.CANCELLED, detail))
        else:
            self._task.cancel()

    def __aiter__(self) -> TurnRun:
        return self

    async def __anext__(self) -> EngineEvent:
        if self._delivered_terminal:
            raise StopAsyncIteration
        self._start()
        event = await self._events.get()
        if isinstance(event, TurnFinished | TurnFailed):
            self._delivered_terminal = True
        return event

    async def __aenter__(self) -> TurnRun:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._terminal is None:
            self.cancel("abandoned by the caller")
        await self.wait()

    async def wait(self) -> None:
        """Wait until the run's background work is over (after `cancel()`, for instance)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._task)

    # ---- used by the engine -----------------------------------------------------------------

    def _start(self) -> None:
        if self._task is None and self._terminal is None:
            self._task = asyncio.get_running_loop().create_task(
                self._main(), name=f"turn-{self.analysis_id}"
            )
            self._engine._track(self)

    def _push(self, event: EngineEvent) -> None:
        if self._terminal is None:
            self._events.put_nowait(event)

    def _finish(self, terminal: TurnFinished | TurnFailed) -> None:
        if self._terminal is None:
            self._terminal = terminal
            self._events.put_nowait(terminal)
            self._engine._log_outcome(self, terminal)

    def _failure(self, reason: FailureReason, detail: str) -> TurnFailed:
        attempt = self._attempt
        return TurnFailed(
            reason,
            detail,
            code_ran=bool(attempt and attempt.code_ran),
            response_id=attempt.response_id if attempt else None,
            usage=attempt.usage if attempt else Usage(),
        )

    async def _main(self) -> None:
        try:
            terminal = await self._engine._execute(self)
        except asyncio.CancelledError:
            self._finish(self._failure(FailureReason.CANCELLED, self._cancel_detail or "cancelled"))
            if self._cancel_detail is None:
                raise  # not our cancel(): let whoever cancelled the task see it
            return
        except Exception as error:
            logger.exception("turn %s: internal error", self.analysis_id)
            terminal = self._failure(
                FailureReason.UNAVAILABLE, f"internal error: {type(error).__name__}: {error}"
            )
        self._finish(terminal)


class AnalysisEngine:
    """Runs analysis turns against an OpenAI-compatible Responses API with Code Interpreter.

    Args:
        client: the SDK client; build it with `build_client(settings)` (SDK retries off).
        provider: "yandex" or "openai"; decides how generated files are downloaded and whether
            `include=["code_interpreter_call.outputs"]` is sent.
        model: the model name as the provider wants it (Yandex: `gpt://<folder>/<model>`).
        remote_index: where (scope, sha256) → remote file id is remembered.
        limiter: the concurrency limiter; by default an in-process `TurnLimiter(max_concurrent)`.
        turn_timeout: seconds a turn may run once it has a slot.
        max_artifacts / max_artifact_bytes: caps on the files returned per turn.
        max_retries / retry_base_delay / max_retry_delay: backoff for transient failures.
        system_prompt_template: template text (see `bot.engine.prompt`); default: the bundled one.
        remote_check_interval: how long a remote file is trusted after it was last seen alive.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        provider: str,
        model: str,
        remote_index: RemoteFileIndex,
        limiter: TurnLimiter | None = None,
        max_concurrent: int = 3,
        turn_timeout: float = 600,
        max_artifacts: int = 20,
        max_artifact_bytes: int = 50 * 2**20,
        max_retries: int = 3,
        retry_base_delay: float = 0.5,
        max_retry_delay: float = 30.0,
        system_prompt_template: str | None = None,
        remote_check_interval: float = 60.0,
    ) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; expected one of {PROVIDERS}")
        self._client = client
        self._provider = provider
        self._model = model
        self._limiter = limiter or TurnLimiter(max_concurrent)
        self._turn_timeout = turn_timeout
        self._max_artifacts = max_artifacts
        self._retry = RetryPolicy(max_retries, retry_base_delay, max_retry_delay)
        self._template = system_prompt_template or load_template()
        self._files = RemoteFiles(
            client, remote_index, retry=self._retry, check_interval=remote_check_interval
        )
        self._downloader = Downloader(client, provider, max_artifact_bytes, self._retry)
        self._runs: set[TurnRun] = set()
        self._owns_client = False
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings, remote_index: RemoteFileIndex) -> AnalysisEngine:
        """An engine (owning its client) configured from `Settings`."""
        template = None
        if settings.system_prompt_file is not None:
            template = _read_prompt_file(settings.system_prompt_file)
        engine = cls(
            build_client(settings),
            provider=settings.llm_provider,
            model=settings.llm_model,
            remote_index=remote_index,
            max_concurrent=settings.max_concurrent_analyses,
            turn_timeout=settings.analysis_timeout_seconds,
            max_artifacts=settings.max_artifacts,
            max_artifact_bytes=settings.max_artifact_bytes,
            max_retries=settings.llm_max_retries,
            system_prompt_template=template,
        )
        engine._owns_client = True
        return engine

    # ---- public API ---------------------------------------------------------------------------

    @property
    def provider(self) -> str:
        return self._provider

    @property
    def busy(self) -> int:
        """Turns running now (holding a slot)."""
        return self._limiter.running

    @property
    def queued(self) -> int:
        """Turns waiting for a slot."""
        return self._limiter.queued

    def run(self, request: TurnRequest) -> TurnRun:
        """Start a turn (lazily: the work begins when the run is first iterated)."""
        if self._closed:
            raise RuntimeError("the engine is closed")
        return TurnRun(self, request)

    async def delete_remote_file(self, file_id: str) -> None:
        """Delete a remote copy (when a file is removed or a chat reset); a 404 is ignored."""
        await self._files.delete(file_id)

    async def aclose(self) -> None:
        """Cancel every unfinished run, wait for them, and close the client if we built it."""
        self._closed = True
        runs = list(self._runs)
        for run in runs:
            run.cancel("the bot is shutting down")
        for run in runs:
            await run.wait()
        if self._owns_client:
            await self._client.close()

    # ---- the turn -----------------------------------------------------------------------------

    def _track(self, run: TurnRun) -> None:
        self._runs.add(run)
        assert run._task is not None
        run._task.add_done_callback(lambda _: self._runs.discard(run))

    async def _execute(self, run: TurnRun) -> TurnFinished | TurnFailed:
        request = run.request

        shown = 0  # the position last reported; 0: none yet

        def on_position(position: int) -> None:
            nonlocal shown
            # Every turn that starts moves each waiting turn up one place, so reporting every
            # move costs a queue of N about N²/2 events. Far back, report ~10 % steps only;
            # the last ten places exactly.
            if shown and position > EXACT_QUEUE_POSITIONS and position > shown * 0.9:
                return
            if not shown:  # log the arrival only
                logger.info(
                    "turn %s chat=%s queued at %d", run.analysis_id, request.chat_key, position
                )
            shown = position
            run._push(Queued(position))

        await self._limiter.acquire(on_position)
        started = time.monotonic()
        logger.info(
            "turn %s chat=%s started files=%d followup=%s waited=%.2fs",
            run.analysis_id,
            request.chat_key,
            len(request.files),
            bool(request.previous_response_id),
            started - run.created_at,
        )
        try:
            try:
                async with asyncio.timeout(self._turn_timeout) as deadline:
                    return await self._run_turn(run, started)
            except TimeoutError:
                if not deadline.expired():
                    raise
                return run._failure(
                    FailureReason.TIMEOUT, f"no result within {self._turn_timeout:g}s"
                )
        finally:
            self._limiter.release()

    async def _run_turn(self, run: TurnRun, started: float) -> TurnFinished | TurnFailed:
        request = run.request
        try:
            file_ids = await self._files.resolve(
                request.files, lambda count: run._push(UploadingFiles(count))
            )
        except UploadError as error:
            return TurnFailed(_upload_failure_reason(error), str(error))
        instructions = render_instructions(self._template, request.files, request.language)
        previous = request.previous_response_id
        context_reset = False
        files_refreshed = False
        attempt = 0
        while True:
            acc = run._attempt = TurnAccumulator()
            params = self._request_params(request, instructions, file_ids, previous)
            try:
                stream = await self._client.responses.create(**params)
            except openai.APIError as error:
                if previous and not context_reset and _chain_is_gone(error):
                    logger.warning(
                        "turn %s: previous response unusable (%s); starting a fresh chain",
                        run.analysis_id,
                        describe(error),
                    )
                    previous, context_reset = None, True
                    continue
                if not files_refreshed and _names_a_file(error, file_ids):
                    files_refreshed = True
                    try:
                        refreshed = await self._files.refresh(request.files, file_ids, error)
                    except UploadError as upload_error:
                        return TurnFailed(_upload_failure_reason(upload_error), str(upload_error))
                    if refreshed is not None:
                        file_ids = refreshed
                        continue
                if is_transient(error) and attempt < self._retry.max_retries:
                    await self._backoff(run, attempt, error, describe(error))
                    attempt += 1
                    continue
                return TurnFailed(failure_reason(error), describe(error))

            await self._consume(run, stream, acc)
            if acc.status == "running":
                await self._recover_silent_end(run, acc)
            if acc.status == "completed":
                break
            retryable = acc.transient_failure or acc.failure_reason is FailureReason.INTERRUPTED
            if not acc.output_seen and retryable and attempt < self._retry.max_retries:
                await self._backoff(run, attempt, None, acc.failure_message)
                attempt += 1
                continue
            return run._failure(acc.failure_reason or FailureReason.MODEL_ERROR, _detail(acc))
        return TurnFinished(await self._result(run, acc, started, context_reset, file_ids))

    def _request_params(
        self,
        request: TurnRequest,
        instructions: str,
        file_ids: list[str],
        previous: str | None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self._model,
            "input": request.question,
            "instructions": instructions,
            "tools": [
                {"type": "code_interpreter", "container": {"type": "auto", "file_ids": file_ids}}
            ],
            "stream": True,
        }
        if previous:
            params["previous_response_id"] = previous
        if self._provider == "openai":
            params["include"] = OPENAI_INCLUDE
        return params

    async def _consume(self, run: TurnRun, stream: Any, acc: TurnAccumulator) -> None:
        try:
            async for event in stream:
                for out in acc.feed(event):
                    if isinstance(out, TurnStarted):
                        logger.info("turn %s response %s", run.analysis_id, out.response_id)
                    run._push(out)
                if acc.terminal:
                    break
        except openai.APIConnectionError as error:  # includes a read timeout
            acc.mark_interrupted(describe(error))
        except openai.APIError as error:  # a data object with a top-level "error" key
            acc.mark_failed(getattr(error, "code", None), describe(error))
        except ValueError as error:  # malformed SSE data
            acc.mark_interrupted(f"malformed stream: {error}")
        finally:
            try:
                await stream.close()
            except Exception as error:  # closing is best effort
                logger.debug("closing the stream failed: %s", error)

    async def _recover_silent_end(self, run: TurnRun, acc: TurnAccumulator) -> None:
        """The stream ended without a terminal event: maybe the response completed anyway."""
        if acc.response_id:
            try:
                response = await self._client.responses.retrieve(acc.response_id)
            except openai.APIError as error:
                logger.info(
                    "turn %s: retrieve after a cut stream failed: %s", run.analysis_id, error
                )
            else:
                if field_of(response, "status") == "completed":
                    for out in acc.complete_from(response):
                        run._push(out)
                    return
        acc.mark_interrupted(f"stream ended after {acc.events_seen} events without completion")

    async def _backoff(
        self, run: TurnRun, attempt: int, error: BaseException | None, why: str
    ) -> None:
        delay = self._retry.delay(attempt, error)
        logger.warning(
            "turn %s: %s; retry %d/%d in %.2fs",
            run.analysis_id,
            why,
            attempt + 1,
            self._retry.max_retries,
            delay,
        )
        await asyncio.sleep(delay)

    async def _result(
        self,
        run: TurnRun,
        acc: TurnAccumulator,
        started: float,
        context_reset: bool,
        input_ids: list[str],
    ) -> TurnResult:
        text = acc.final_text()
        wants_files = acc.code_ran or "sandbox:" in text or "/mnt/data/" in text
        if not acc.citations and acc.response_id and wants_files:
            # The stream carried no citations (e.g. no annotation events): ask for the response.
            try:
                response = await self._client.responses.retrieve(acc.response_id)
            except openai.APIError as error:
                logger.warning("turn %s: retrieve for citations failed: %s", run.analysis_id, error)
            else:
                for out in acc.absorb_response(response, code=False):
                    run._push(out)
        artifacts, dropped = await collect_artifacts(
            self._downloader,
            list(acc.citations.values()),
            [image for _, image in acc.images],
            max_count=self._max_artifacts,
        )
        if self._provider == "yandex":
            await self._delete_generated(acc, input_ids)
        return TurnResult(
            response_id=acc.response_id or "",
            text=rewrite_sandbox_links(text),
            artifacts=tuple(artifacts),
            code_steps=acc.code_steps(),
            usage=acc.usage,
            duration_s=time.monotonic() - started,
            dropped_artifacts=dropped,
            context_reset=context_reset,
        )

    async def _delete_generated(self, acc: TurnAccumulator, input_ids: list[str]) -> None:
        """Yandex copies every generated file into the Files API (a folder holds at most
        10 000 files): once downloaded, or dropped, they are deleted. Input files never are."""
        generated = [i for i in acc.citations if i not in input_ids]
        results = await asyncio.gather(
            *(self._files.delete(file_id) for file_id in generated), return_exceptions=True
        )
        for file_id, outcome in zip(generated, results, strict=True):
            if isinstance(outcome, Exception):
                logger.info("could not delete generated file %s: %s", file_id, outcome)

    def _log_outcome(self, run: TurnRun, terminal: TurnFinished | TurnFailed) -> None:
        request = run.request
        if isinstance(terminal, TurnFinished):
            result = terminal.result
            logger.info(
                "turn %s chat=%s finished response=%s in %.2fs (total %.2fs) steps=%d "
                "artifacts=%d dropped=%d tokens in=%d out=%d",
                run.analysis_id,
                request.chat_key,
                result.response_id,
                result.duration_s,
                time.monotonic() - run.created_at,
                len(result.code_steps),
                len(result.artifacts),
                result.dropped_artifacts,
                result.usage.input_tokens,
                result.usage.output_tokens,
            )
        else:
            logger.warning(
                "turn %s chat=%s failed reason=%s code_ran=%s after %.2fs tokens in=%d out=%d: %s",
                run.analysis_id,
                request.chat_key,
                terminal.reason.value,
                terminal.code_ran,
                time.monotonic() - run.created_at,
                terminal.usage.input_tokens,
                terminal.usage.output_tokens,
                terminal.detail,
            )


def _read_prompt_file(path: Path) -> str:
    try:
        return load_template(path)
    except OSError as error:
        raise ConfigError(
            f"SYSTEM_PROMPT_FILE {str(path)!r} cannot be read: {error.strerror or error}"
        ) from None


def _upload_failure_reason(error: UploadError) -> FailureReason:
    cause = error.cause
    if isinstance(cause, openai.APIStatusError) and cause.status_code in (401, 403):
        return FailureReason.AUTH
    return FailureReason.UPLOAD_FAILED


def _chain_is_gone(error: openai.APIError) -> bool:
    """400 "Container is expired." or an unknown previous_response_id."""
    if not isinstance(error, openai.APIStatusError) or error.status_code not in (400, 404):
        return False
    said = error_text(error).lower()
    if "container" in said and "expired" in said:
        return True
    if getattr(error, "param", None) == "previous_response_id":
        return True
    return "previous" in said and "response" in said and "not found" in said


def _names_a_file(error: openai.APIError, file_ids: list[str]) -> bool:
    if not isinstance(error, openai.APIStatusError) or error.status_code not in (400, 404):
        return False
    said = error_text(error)
    return any(i in said for i in file_ids) or bool(_FILE_WORD.search(said))


def _detail(acc: TurnAccumulator) -> str:
    code = f"[{acc.failure_code}] " if acc.failure_code else ""
    return f"{code}{acc.failure_message}"[:500]
