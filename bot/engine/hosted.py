"""The hosted backend: the provider's Code Interpreter through the Responses API.

What a turn does:

1. makes sure every input file has a live remote copy (`UploadingFiles(n)` if it uploads any);
2. sends `responses.create(stream=True)` with the system prompt as `instructions` (every turn),
   the question as `input`, the code interpreter with all the chat's `file_ids`, and the previous
   turn's `previous_response_id`; on OpenAI also `include=["code_interpreter_call.outputs"]`;
3. translates the stream into engine events (`stream.TurnAccumulator`);
4. on `response.completed` downloads the cited files and inline images (`artifacts`), rewrites
   `sandbox:` links and returns `TurnFinished`. On Yandex, where generated files are copied into
   the Files API, those copies are deleted after the download.

Failure handling:

- the initial request is retried on 408/409/429/5xx and connection errors, with exponential
  backoff (`max_retries`, `retry_base_delay`); so is an attempt that failed transiently before
  any output event. Once any output event arrived the turn is never re-sent (code may have run);
- "Container is expired." or an unknown `previous_response_id` → one retry as a fresh chain
  (`TurnResult.context_reset`); a 400/404 naming one of our files → re-upload it, retry once;
- `error` / `response.failed` → MODEL_ERROR (RATE_LIMITED for `rate_limit_exceeded`),
  `response.incomplete` → INCOMPLETE, a stream that ends without a terminal event → INTERRUPTED
  (unless `responses.retrieve` shows the response did complete).

The queue, the whole-turn timeout and cancelling belong to `AnalysisEngine`; a cancel closes the
HTTP stream at once (the task running `run_turn` is cancelled).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path
from typing import Any

import openai

from bot.config import ConfigError, Settings
from bot.engine.artifacts import ArtifactCaps, Downloader, collect_artifacts
from bot.engine.client import build_client
from bot.engine.executor import Terminal, Turn
from bot.engine.files import RemoteFiles, UploadError
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
    FailureReason,
    RemoteFileIndex,
    TurnFailed,
    TurnFinished,
    TurnResult,
    TurnStarted,
    UploadingFiles,
)

logger = logging.getLogger(__name__)

PROVIDERS = ("yandex", "openai")
OPENAI_INCLUDE = ["code_interpreter_call.outputs"]
_FILE_WORD = re.compile(r"\bfiles?\b|file_ids?", re.IGNORECASE)


class HostedInterpreter:
    """Runs turns against an OpenAI-compatible Responses API with Code Interpreter.

    Args:
        client: the SDK client; build it with `build_client(settings)` (SDK retries off).
        provider: "yandex" or "openai"; decides how generated files are downloaded and whether
            `include=["code_interpreter_call.outputs"]` is sent.
        model: the model name as the provider wants it (Yandex: `gpt://<folder>/<model>`).
        remote_index: where (scope, sha256) → remote file id is remembered.
        caps: the count/size caps on the files returned per turn.
        max_retries / retry_base_delay / max_retry_delay: backoff for transient failures.
        system_prompt_template: template text (see `bot.engine.prompt`); default: the bundled one.
        remote_check_interval: how long a remote file is trusted after it was last seen alive.
        owns_client: close `client` in `aclose()`.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        provider: str,
        model: str,
        remote_index: RemoteFileIndex,
        caps: ArtifactCaps | None = None,
        max_retries: int = 3,
        retry_base_delay: float = 0.5,
        max_retry_delay: float = 30.0,
        system_prompt_template: str | None = None,
        remote_check_interval: float = 60.0,
        owns_client: bool = False,
    ) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; expected one of {PROVIDERS}")
        self.provider = provider
        self._client = client
        self._model = model
        self._caps = caps or ArtifactCaps()
        self._retry = RetryPolicy(max_retries, retry_base_delay, max_retry_delay)
        self._template = system_prompt_template or load_template()
        self._files = RemoteFiles(
            client, remote_index, retry=self._retry, check_interval=remote_check_interval
        )
        self._downloader = Downloader(client, provider, self._caps.max_bytes, self._retry)
        self._owns_client = owns_client

    @classmethod
    def from_settings(cls, settings: Settings, remote_index: RemoteFileIndex) -> HostedInterpreter:
        """A backend (owning its client) configured from `Settings`."""
        template = None
        if settings.system_prompt_file is not None:
            template = _read_prompt_file(settings.system_prompt_file)
        return cls(
            build_client(settings),
            provider=settings.llm_provider,
            model=settings.llm_model,
            remote_index=remote_index,
            caps=ArtifactCaps(settings.max_artifacts, settings.max_artifact_bytes),
            max_retries=settings.llm_max_retries,
            system_prompt_template=template,
            owns_client=True,
        )

    # ---- the Executor protocol ---------------------------------------------------------------

    async def delete_remote_file(self, file_id: str) -> None:
        """Delete a remote copy (when a file is removed or a chat reset); a 404 is ignored."""
        await self._files.delete(file_id)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.close()

    async def run_turn(self, turn: Turn) -> Terminal:
        request = turn.request
        try:
            file_ids = await self._files.resolve(
                request.files, lambda count: turn.emit(UploadingFiles(count))
            )
        except UploadError as error:
            return TurnFailed(_upload_failure_reason(error), str(error))
        instructions = render_instructions(self._template, request.files, request.language)
        previous = request.previous_response_id
        context_reset = False
        files_refreshed = False
        attempt = 0
        while True:
            acc = TurnAccumulator()
            turn.progress = acc
            params = self._request_params(request.question, instructions, file_ids, previous)
            try:
                stream = await self._client.responses.create(**params)
            except openai.APIError as error:
                if previous and not context_reset and _chain_is_gone(error):
                    logger.warning(
                        "turn %s: previous response unusable (%s); starting a fresh chain",
                        turn.analysis_id,
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
                    await self._backoff(turn, attempt, error, describe(error))
                    attempt += 1
                    continue
                return TurnFailed(failure_reason(error), describe(error))

            await self._consume(turn, stream, acc)
            if acc.status == "running":
                await self._recover_silent_end(turn, acc)
            if acc.status == "completed":
                break
            retryable = acc.transient_failure or acc.failure_reason is FailureReason.INTERRUPTED
            if not acc.output_seen and retryable and attempt < self._retry.max_retries:
                await self._backoff(turn, attempt, None, acc.failure_message)
                attempt += 1
                continue
            return turn.failed(acc.failure_reason or FailureReason.MODEL_ERROR, _detail(acc))
        return TurnFinished(await self._result(turn, acc, context_reset, file_ids))

    # ---- the turn, step by step ----------------------------------------------------------------

    def _request_params(
        self, question: str, instructions: str, file_ids: list[str], previous: str | None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self._model,
            "input": question,
            "instructions": instructions,
            "tools": [
                {"type": "code_interpreter", "container": {"type": "auto", "file_ids": file_ids}}
            ],
            "stream": True,
        }
        if previous:
            params["previous_response_id"] = previous
        if self.provider == "openai":
            params["include"] = OPENAI_INCLUDE
        return params

    async def _consume(self, turn: Turn, stream: Any, acc: TurnAccumulator) -> None:
        try:
            async for event in stream:
                for out in acc.feed(event):
                    if isinstance(out, TurnStarted):
                        logger.info("turn %s response %s", turn.analysis_id, out.response_id)
                    turn.emit(out)
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

    async def _recover_silent_end(self, turn: Turn, acc: TurnAccumulator) -> None:
        """The stream ended without a terminal event: maybe the response completed anyway."""
        if acc.response_id:
            try:
                response = await self._client.responses.retrieve(acc.response_id)
            except openai.APIError as error:
                logger.info(
                    "turn %s: retrieve after a cut stream failed: %s", turn.analysis_id, error
                )
            else:
                if field_of(response, "status") == "completed":
                    for out in acc.complete_from(response):
                        turn.emit(out)
                    return
        acc.mark_interrupted(f"stream ended after {acc.events_seen} events without completion")

    async def _backoff(
        self, turn: Turn, attempt: int, error: BaseException | None, why: str
    ) -> None:
        delay = self._retry.delay(attempt, error)
        logger.warning(
            "turn %s: %s; retry %d/%d in %.2fs",
            turn.analysis_id,
            why,
            attempt + 1,
            self._retry.max_retries,
            delay,
        )
        await asyncio.sleep(delay)

    async def _result(
        self, turn: Turn, acc: TurnAccumulator, context_reset: bool, input_ids: list[str]
    ) -> TurnResult:
        text = acc.final_text()
        wants_files = acc.code_ran or "sandbox:" in text or "/mnt/data/" in text
        if not acc.citations and acc.response_id and wants_files:
            # The stream carried no citations (e.g. no annotation events): ask for the response.
            try:
                response = await self._client.responses.retrieve(acc.response_id)
            except openai.APIError as error:
                logger.warning(
                    "turn %s: retrieve for citations failed: %s", turn.analysis_id, error
                )
            else:
                for out in acc.absorb_response(response, code=False):
                    turn.emit(out)
        artifacts, dropped = await collect_artifacts(
            self._downloader,
            list(acc.citations.values()),
            [image for _, image in acc.images],
            max_count=self._caps.max_count,
        )
        if self.provider == "yandex":
            await self._delete_generated(acc, input_ids)
        return TurnResult(
            response_id=acc.response_id or "",
            text=rewrite_sandbox_links(text),
            artifacts=tuple(artifacts),
            code_steps=acc.code_steps(),
            usage=acc.usage,
            duration_s=time.monotonic() - turn.started,
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
