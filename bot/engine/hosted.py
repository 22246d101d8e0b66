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
- the same expired container / unknown previous response reported inside the stream (an `error`
  event or `response.failed`) → the same one fresh chain; a turn that still fails after that
  says `TurnFailed.chain_gone` (the stored previous response id is dead);
- `error` / `response.failed` → MODEL_ERROR (RATE_LIMITED for `rate_limit_exceeded`),
  `response.incomplete` → INCOMPLETE;
- a stream that ends without a terminal event: the response is retrieved (bounded polling with
  backoff, `max_polls`) until it is terminal; only one that never gets there is INTERRUPTED;
- Yandex's copies of generated files are deleted however the turn ends (success, failure,
  cancel), after the download when there is one.

Provider quirks: OpenAI's Code Interpreter takes tables only as `.csv`/`.xlsx`, so `.tsv` & co.
are uploaded (and named in the prompt) as `.csv`, `.xlsm` as `.xlsx`; `include` is sent on
`responses.retrieve` as on create. Responses run in background mode (`background`, setting
LLM_BACKGROUND) where the provider takes it, because only a background response can be stopped
with `responses.cancel`: closing the stream of one does not stop it. So every attempt that ends
before its response did (cancel, timeout, a cut stream given up) cancels it remotely.

The queue, the whole-turn timeout and cancelling belong to `AnalysisEngine`; a cancel closes the
HTTP stream at once (the task running `run_turn` is cancelled); the cleanup above is bounded by
CLEANUP_SECONDS.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, Literal

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
from bot.engine.stream import TurnAccumulator
from bot.engine.types import (
    DataFile,
    FailureReason,
    RemoteFileIndex,
    TurnFinished,
    TurnResult,
    TurnStarted,
    UploadingFiles,
)

logger = logging.getLogger(__name__)

PROVIDERS = ("yandex", "openai")
OPENAI_INCLUDE = ["code_interpreter_call.outputs"]
BackgroundMode = Literal["auto", "on", "off"]
# A stream that ended without a terminal event: how often the response is retrieved (with
# backoff, at most POLL_MAX_DELAY apart) before the turn is given up as interrupted.
MAX_POLLS = 10
POLL_MAX_DELAY = 10.0
# Cleanup after a turn (cancelling a background response, deleting generated copies) may take
# this long at most, so that a cancel or a timeout frees the slot promptly.
CLEANUP_SECONDS = 10.0
# OpenAI's Code Interpreter accepts these table formats only under another extension; the
# content is what the name says (a .tsv stays tab-separated: the prompt says to sniff it).
OPENAI_UPLOAD_EXTENSIONS = {
    ".tsv": ".csv",
    ".tab": ".csv",
    ".psv": ".csv",
    ".dat": ".csv",
    "": ".csv",
    ".xlsm": ".xlsx",
}
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
        background: run responses in background mode (streamed), so that a cancel can stop them
            with `responses.cancel` (LLM_BACKGROUND): "on", "off", or "auto" = on until the
            provider refuses the parameter once, then off for the life of the process.
        max_polls: retrievals of a response whose stream ended without a terminal event.
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
        background: BackgroundMode = "auto",
        max_polls: int = MAX_POLLS,
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
        self._background = background
        self._background_refused = False
        self._max_polls = max_polls
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
            background=settings.llm_background,
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
        files = self._files_as_uploaded(request.files)
        try:
            file_ids = await self._files.resolve(
                files, lambda count: turn.emit(UploadingFiles(count))
            )
        except UploadError as error:
            return turn.failed(_upload_failure_reason(error), str(error))
        instructions = render_instructions(
            self._template, files, request.language, fresh_sandbox=self.provider == "yandex"
        )
        attempts: list[TurnAccumulator] = []
        try:
            return await self._attempts(turn, files, file_ids, instructions, attempts)
        finally:
            if self.provider == "yandex":
                # Generated copies go on success (after the download), failure and cancel alike.
                await self._bounded(self._delete_generated(attempts, file_ids), "cleanup")

    async def _attempts(
        self,
        turn: Turn,
        files: Sequence[DataFile],
        file_ids: list[str],
        instructions: str,
        attempts: list[TurnAccumulator],
    ) -> Terminal:
        question = turn.request.question
        previous = turn.request.previous_response_id
        context_reset = False
        files_refreshed = False
        attempt = 0
        while True:
            acc = TurnAccumulator()
            attempts.append(acc)
            turn.progress = acc
            background = self._use_background()
            params = self._request_params(question, instructions, file_ids, previous, background)
            try:
                stream = await self._client.responses.create(**params)
            except openai.APIError as error:
                if background and self._background == "auto" and _refuses_background(error):
                    self._refuse_background(describe(error))
                    continue
                if previous and not context_reset and _chain_is_gone(error):
                    previous, context_reset = self._fresh_chain(turn, describe(error))
                    continue
                if not files_refreshed and _names_a_file(error, file_ids):
                    files_refreshed = True
                    try:
                        refreshed = await self._files.refresh(files, file_ids, error)
                    except UploadError as upload_error:
                        return turn.failed(_upload_failure_reason(upload_error), str(upload_error))
                    if refreshed is not None:
                        file_ids[:] = refreshed
                        continue
                if is_transient(error) and attempt < self._retry.max_retries:
                    await self._backoff(turn, attempt, error, describe(error))
                    attempt += 1
                    continue
                return turn.failed(failure_reason(error), describe(error))

            try:
                cut = await self._consume(turn, stream, acc)
                if acc.status == "running":
                    if background and acc.events_seen == 0 and self._background == "auto":
                        # A provider that takes the parameter but streams nothing with it.
                        self._refuse_background("a background stream carried no events")
                    await self._recover_silent_end(turn, acc, cut)
            finally:
                if background and acc.response_id and not acc.settled:
                    # Closing a background response's stream does not stop it: cancel it, so
                    # the provider's slot is freed (on cancel, timeout, or a cut stream).
                    await self._bounded(self._cancel_remote(turn, acc.response_id), "cancel")
            if acc.status == "completed":
                break
            if previous and not context_reset and _says_chain_is_gone(_detail(acc)):
                previous, context_reset = self._fresh_chain(turn, _detail(acc))
                continue
            retryable = acc.transient_failure or acc.failure_reason is FailureReason.INTERRUPTED
            if not acc.output_seen and retryable and attempt < self._retry.max_retries:
                await self._backoff(turn, attempt, None, acc.failure_message)
                attempt += 1
                continue
            return turn.failed(acc.failure_reason or FailureReason.MODEL_ERROR, _detail(acc))
        return TurnFinished(await self._result(turn, acc, context_reset))

    def _fresh_chain(self, turn: Turn, why: str) -> tuple[None, bool]:
        """The previous response cannot be continued: go on without it, and remember that its
        id is dead (a failure from now on says `chain_gone`)."""
        logger.warning(
            "turn %s: previous response unusable (%s); starting a fresh chain",
            turn.analysis_id,
            why,
        )
        turn.chain_gone = True
        return None, True

    def _refuse_background(self, why: str) -> None:
        self._background_refused = True
        logger.warning(
            "background mode does not work with this provider (%s); turns run without it from "
            "now on, and a cancel only closes the stream",
            why,
        )

    def _use_background(self) -> bool:
        if self._background == "auto":
            return not self._background_refused
        return self._background == "on"

    def _files_as_uploaded(self, files: Sequence[DataFile]) -> list[DataFile]:
        """The files under the names the provider accepts (the model sees these names too)."""
        if self.provider != "openai":
            return list(files)
        taken = {f.name for f in files}
        renamed = []
        for data_file in files:
            stem, dot, extension = data_file.name.rpartition(".")
            if not dot:
                stem, extension = data_file.name, ""
            else:
                extension = "." + extension.lower()
            target = OPENAI_UPLOAD_EXTENSIONS.get(extension)
            if target is None:
                renamed.append(data_file)
                continue
            stem = stem or "data"
            name = f"{stem}{target}"
            if name in taken:  # "sales.tsv" next to a "sales.csv"
                name = f"{stem}_{extension.lstrip('.') or 'data'}{target}"
            taken.add(name)
            renamed.append(dataclasses.replace(data_file, name=name))
        return renamed

    # ---- the turn, step by step ----------------------------------------------------------------

    def _request_params(
        self,
        question: str,
        instructions: str,
        file_ids: list[str],
        previous: str | None,
        background: bool,
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
        if background:
            params["background"] = True
        return params | self._include()

    def _include(self) -> dict[str, Any]:
        """`include`, sent alike on create and on retrieve."""
        return {"include": OPENAI_INCLUDE} if self.provider == "openai" else {}

    async def _retrieve(self, response_id: str) -> Any:
        return await self._client.responses.retrieve(response_id, **self._include())

    async def _cancel_remote(self, turn: Turn, response_id: str) -> None:
        try:
            await self._client.responses.cancel(response_id)
        except openai.APIError as error:
            logger.info("turn %s: cancelling %s failed: %s", turn.analysis_id, response_id, error)
        else:
            logger.info("turn %s: cancelled response %s", turn.analysis_id, response_id)

    async def _bounded(self, work: Awaitable[None], what: str) -> None:
        """Run cleanup `work` for at most CLEANUP_SECONDS (also while being cancelled)."""
        try:
            async with asyncio.timeout(CLEANUP_SECONDS):
                await work
        except TimeoutError:
            logger.warning("%s took over %gs; given up", what, CLEANUP_SECONDS)

    async def _consume(self, turn: Turn, stream: Any, acc: TurnAccumulator) -> str:
        """Feed the stream to `acc` and emit what it makes of it. Returns how the stream ended
        when it ended without a terminal event (the response may still finish server-side)."""
        try:
            async for event in stream:
                for out in acc.feed(event):
                    if isinstance(out, TurnStarted):
                        logger.info("turn %s response %s", turn.analysis_id, out.response_id)
                    turn.emit(out)
                if acc.terminal:
                    break
        except openai.APIConnectionError as error:  # includes a read timeout
            return f"the stream broke after {acc.events_seen} events: {describe(error)}"
        except openai.APIError as error:  # a data object with a top-level "error" key
            acc.mark_failed(getattr(error, "code", None), describe(error))
        except ValueError as error:  # malformed SSE data
            return f"malformed stream after {acc.events_seen} events: {error}"
        finally:
            try:
                await stream.close()
            except Exception as error:  # closing is best effort
                logger.debug("closing the stream failed: %s", error)
        return f"the stream ended after {acc.events_seen} events without completion"

    async def _recover_silent_end(self, turn: Turn, acc: TurnAccumulator, cut: str) -> None:
        """The stream ended without a terminal event: the response may have completed, or still
        be running server-side. Retrieve it (with backoff, at most `max_polls` times) until it
        reaches a terminal status; only then is the turn given up as interrupted."""
        if acc.response_id:
            for poll in range(self._max_polls):
                if poll:
                    await asyncio.sleep(min(self._retry.delay(poll - 1), POLL_MAX_DELAY))
                try:
                    response = await self._retrieve(acc.response_id)
                except openai.APIError as error:
                    logger.info(
                        "turn %s: retrieve after a cut stream failed: %s",
                        turn.analysis_id,
                        describe(error),
                    )
                    if is_transient(error):
                        continue
                    break
                settled = acc.settle_from(response)
                if settled is not None:
                    for out in settled:
                        turn.emit(out)
                    return
        acc.mark_interrupted(cut)

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

    async def _result(self, turn: Turn, acc: TurnAccumulator, context_reset: bool) -> TurnResult:
        text = acc.final_text()
        wants_files = acc.code_ran or "sandbox:" in text or "/mnt/data/" in text
        if not acc.citations and acc.response_id and wants_files:
            # The stream carried no citations (e.g. no annotation events): ask for the response.
            try:
                response = await self._retrieve(acc.response_id)
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

    async def _delete_generated(
        self, attempts: Sequence[TurnAccumulator], input_ids: list[str]
    ) -> None:
        """Yandex copies every generated file into the Files API (a folder holds at most
        10 000 files): once downloaded, or dropped, or when the turn failed or was cancelled,
        the copies cited so far are deleted. Input files never are."""
        cited = dict.fromkeys(i for acc in attempts for i in acc.citations)
        generated = [i for i in cited if i not in input_ids]
        if not generated:
            return
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
    if getattr(error, "param", None) == "previous_response_id":
        return True
    return _says_chain_is_gone(error_text(error))


def _says_chain_is_gone(message: str) -> bool:
    """The words of an expired container or an unknown previous response (in an HTTP error,
    an `error` event or a `response.failed`)."""
    said = message.lower()
    if "container" in said and "expired" in said:
        return True
    if "previous_response" in said and "not_found" in said:
        return True
    return "previous" in said and "response" in said and "not found" in said


def _refuses_background(error: openai.APIError) -> bool:
    """A 400 that names the `background` parameter: the provider does not take it."""
    if not isinstance(error, openai.APIStatusError) or error.status_code not in (400, 422):
        return False
    return getattr(error, "param", None) == "background" or "background" in error_text(error)


def _names_a_file(error: openai.APIError, file_ids: list[str]) -> bool:
    if not isinstance(error, openai.APIStatusError) or error.status_code not in (400, 404):
        return False
    said = error_text(error)
    return any(i in said for i in file_ids) or bool(_FILE_WORD.search(said))


def _detail(acc: TurnAccumulator) -> str:
    code = f"[{acc.failure_code}] " if acc.failure_code else ""
    return f"{code}{acc.failure_message}"[:500]
