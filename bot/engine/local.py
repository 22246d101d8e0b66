"""The local backend: any OpenAI-compatible model + a sandboxed Python kernel per chat.

Instead of the hosted `code_interpreter`, the model gets one function tool, `python(code)`. Each
call runs in the chat's kernel (`bot.sandbox`: bubblewrap, no network, rlimits, a step timeout)
and its output goes back to the model, until the model answers without calling the tool — at
most `max_steps` calls; past that the model is asked (with the tool switched off) to answer with
what it has. The chat's files never leave the machine: the model sees their descriptions and what
the code prints, nothing is uploaded.

Wire APIs (both streamed):

- `responses` (LLM_API=responses, default): Responses API function calling. Stateful with
  `previous_response_id` (the previous turn's answer, then each response that made calls) where
  the server keeps responses; when it refuses `previous_response_id` (Ollama, some vLLM builds)
  the backend goes stateless for the rest of the process (`store=false`, the whole transcript as
  `input` each time);
- `chat` (LLM_API=chat): Chat Completions with `tools`; always stateless.

Stateless chats keep the last questions and answers in memory (per chat, a few turns) so that a
follow-up still has its context; a request without `previous_response_id` (a new conversation)
starts afresh.

Events are the hosted backend's: `TurnStarted`, per call `CodeStepStarted`, `CodeDelta`s (the
`code` argument previewed while its JSON streams), `CodeDone`, `CodeRunning`, `CodeFinished(logs)`
and `ImageOutput`s, then `TextDelta`s and `FileCited` for each file the code wrote. Charts shown
with `plt.show()` and files created or changed under /mnt/data become the turn's artifacts (the
operator's MAX_ARTIFACTS / MAX_ARTIFACT_BYTES apply).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import openai

from bot.common import safe_filename
from bot.config import ConfigError, Settings
from bot.engine.artifacts import ArtifactCaps, guess_mime_type, keep_within_caps
from bot.engine.client import build_client
from bot.engine.executor import ProgressRecord, Terminal, Turn
from bot.engine.links import rewrite_sandbox_links
from bot.engine.prompt import load_template, render_instructions
from bot.engine.retry import RetryPolicy, describe, error_text, failure_reason, is_transient
from bot.engine.types import (
    Artifact,
    CodeDelta,
    CodeDone,
    CodeFinished,
    CodeRunning,
    CodeStep,
    CodeStepStarted,
    FailureReason,
    FileCited,
    ImageOutput,
    TextDelta,
    TurnFinished,
    TurnResult,
    TurnStarted,
    Usage,
)
from bot.sandbox import KernelPool, SandboxError, SandboxLimits, SandboxUnavailable, StepOutput
from bot.sandbox.files import read_file

logger = logging.getLogger(__name__)

WireApi = Literal["responses", "chat"]
TOOL_NAME = "python"
TOOL_DESCRIPTION = (
    "Run Python code in a stateful Jupyter kernel (pandas, numpy, matplotlib, scipy, seaborn, "
    "openpyxl; no internet). The chat's files are in /mnt/data (the working directory). "
    "Variables persist between calls. Returns what the code prints, the value of the last "
    "expression, errors, and the files it wrote; files saved under /mnt/data and figures shown "
    "are delivered to the user."
)
PARAMETERS = {
    "type": "object",
    "properties": {"code": {"type": "string", "description": "The Python code to run."}},
    "required": ["code"],
    "additionalProperties": False,
}
LAST_WORD = (
    "You have used all {steps} code runs allowed for this question. Do not call the tool again: "
    "answer now with what you have found, and say briefly what is left unchecked."
)
HISTORY_TURNS = 6  # questions and answers kept per chat when the server keeps no responses
HISTORY_CHATS = 1000  # chats whose history is kept (the least recently active are forgotten)
LOGS_IN_EVENT = 4000  # characters of a step's output shown in CodeFinished / CodeStep


def local_sandbox_note(fresh: bool) -> str:
    """The `$sandbox` part of the system prompt in local mode."""
    note = (
        "Your code runs with the `python` tool in a stateful Python kernel: variables, imports "
        "and files in /mnt/data persist between calls and across this conversation's questions "
        "while the kernel lives (it stops after some idle minutes). A step that runs too long is "
        "interrupted; keep each call short and focused."
    )
    if fresh:
        note += (
            " The kernel has just been started: no variables from earlier questions exist; the "
            "files listed above are attached again. Load the data before using it."
        )
    return note


def preview_code(arguments: str) -> str:
    """The `code` value of a partial JSON object such as `{"code": "import pa` (streamed
    arguments are not valid JSON until done)."""
    key = arguments.find('"code"')
    if key < 0:
        return ""
    colon = arguments.find(":", key + 6)
    quote = arguments.find('"', colon + 1) if colon >= 0 else -1
    if quote < 0:
        return ""
    out: list[str] = []
    i = quote + 1
    escapes = {
        "n": "\n",
        "t": "\t",
        "r": "\r",
        "b": "\b",
        "f": "\f",
        '"': '"',
        "\\": "\\",
        "/": "/",
    }
    while i < len(arguments):
        char = arguments[i]
        if char == '"':
            break
        if char == "\\":
            if i + 1 >= len(arguments):
                break
            nxt = arguments[i + 1]
            if nxt == "u":
                digits = arguments[i + 2 : i + 6]
                if len(digits) < 4:
                    break
                try:
                    out.append(chr(int(digits, 16)))
                except ValueError:
                    break
                i += 6
                continue
            out.append(escapes.get(nxt, nxt))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def parse_code(arguments: str) -> str | None:
    """The `code` argument of a finished call, or None when the arguments are not usable."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        # Some servers send the code itself instead of a JSON object.
        return arguments if arguments.strip() and not arguments.lstrip().startswith("{") else None
    if isinstance(parsed, dict) and isinstance(parsed.get("code"), str):
        return parsed["code"]
    return None


@dataclass
class _Call:
    call_id: str
    name: str
    arguments: str = ""
    item_id: str = ""
    step: int = 0


@dataclass
class _Reply:
    """What one model request produced."""

    response_id: str = ""
    text: str = ""
    calls: list[_Call] = field(default_factory=list)
    output_items: list[dict[str, Any]] = field(default_factory=list)  # for stateless transcripts
    usage: Usage = field(default_factory=Usage)


class _TurnState:
    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.progress = ProgressRecord()
        turn.progress = self.progress
        self.step = 0
        self.steps: list[CodeStep] = []
        self.images: list[Artifact] = []
        self.files: dict[str, Path] = {}  # name under /mnt/data → where the bot reads it
        self.work: Path | None = None  # the chat's work folder (/mnt/data on the host)
        self.started_emitted = False

    def add_usage(self, usage: Usage) -> None:
        old = self.progress.usage
        self.progress.usage = Usage(
            old.input_tokens + usage.input_tokens, old.output_tokens + usage.output_tokens
        )


class _RefusedChain(Exception):
    """The server does not keep responses (refused previous_response_id)."""


class _LostChain(Exception):
    """The previous response is unknown to the server (expired, or the server restarted)."""


class LocalExecutor:
    """Runs turns with a function-calling model and the chat's sandboxed kernel.

    Args:
        client: the SDK client (`build_client(settings)`, SDK retries off).
        model: the model name the server wants.
        pool: the kernels (`bot.sandbox.KernelPool`); `start()` runs its self-check.
        api: "responses" or "chat".
        caps: MAX_ARTIFACTS / MAX_ARTIFACT_BYTES.
        max_steps: tool calls per turn (MAX_TOOL_STEPS).
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        model: str,
        pool: KernelPool,
        api: WireApi = "responses",
        caps: ArtifactCaps | None = None,
        max_steps: int = 12,
        max_retries: int = 3,
        retry_base_delay: float = 0.5,
        system_prompt_template: str | None = None,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._model = model
        self.pool = pool
        self._api = api
        self._caps = caps or ArtifactCaps()
        self._max_steps = max_steps
        self._retry = RetryPolicy(max_retries, retry_base_delay)
        self._template = system_prompt_template or load_template()
        self._owns_client = owns_client
        self._stateless = api == "chat"
        # Stateless chats' recent turns, for the most recently active chats only.
        self._history: OrderedDict[str, deque[tuple[str, str]]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings, *, root_dir: Path | None = None) -> LocalExecutor:
        """A backend (owning its client) configured from `Settings`; the chats' folders go to
        `root_dir` (default: DATA_DIR/sandbox/<host name>)."""
        template = None
        if settings.system_prompt_file is not None:
            try:
                template = load_template(settings.system_prompt_file)
            except OSError as error:
                raise ConfigError(
                    f"SYSTEM_PROMPT_FILE {str(settings.system_prompt_file)!r} cannot be read: "
                    f"{error.strerror or error}"
                ) from None
        limits = SandboxLimits(
            memory_mb=settings.sandbox_memory_mb,
            step_seconds=settings.sandbox_step_seconds,
            idle_minutes=settings.sandbox_idle_minutes,
            disk_mb=settings.sandbox_disk_mb,
            max_idle_kernels=settings.sandbox_max_idle_kernels,
        )
        # Per host: instances sharing DATA_DIR (REDIS_URL) each clear their own folder at start.
        root = root_dir or settings.data_dir / "sandbox" / (socket.gethostname() or "local")
        pool = KernelPool(limits, root_dir=root, venv=settings.sandbox_venv)
        return cls(
            build_client(settings),
            model=settings.llm_model,
            pool=pool,
            api=settings.llm_api,
            caps=ArtifactCaps(settings.max_artifacts, settings.max_artifact_bytes),
            max_steps=settings.max_tool_steps,
            max_retries=settings.llm_max_retries,
            system_prompt_template=template,
            owns_client=True,
        )

    # ---- the Executor protocol ---------------------------------------------------------------

    async def start(self) -> None:
        """The sandbox self-check; raises ConfigError (one line: why, and what to change)."""
        try:
            await self.pool.start()
        except SandboxUnavailable as error:
            raise ConfigError(f"CODE_EXECUTION=local cannot work here: {error}") from None

    async def delete_remote_file(self, file_id: str) -> None:
        """Nothing is uploaded in local mode."""

    async def aclose(self) -> None:
        await self.pool.aclose()
        if self._owns_client:
            await self._client.close()

    async def run_turn(self, turn: Turn) -> Terminal:
        chat_key = turn.request.chat_key or turn.analysis_id
        # The chat's kernel and folder stay put for the whole turn, steps and thinking alike.
        async with self.pool.hold(chat_key):
            return await self._run_turn(turn, chat_key)

    async def _run_turn(self, turn: Turn, chat_key: str) -> Terminal:
        request = turn.request
        state = _TurnState(turn)
        if not request.previous_response_id:
            # A new conversation (the first question, /reset, or an expired one) gets a clean
            # kernel and folder, as a new cloud container would be.
            await self.pool.reset(chat_key)
            self._history.pop(chat_key, None)
        fresh = not self.pool.is_warm(chat_key)
        # The kernel starts while the model thinks about its first step.
        session_task = asyncio.ensure_future(
            self.pool.session(chat_key, [(f.name, f.path) for f in request.files])
        )
        try:
            instructions = render_instructions(
                self._template,
                request.files,
                request.language,
                sandbox_note=local_sandbox_note(fresh),
            )
            return await self._loop(turn, state, session_task, instructions, chat_key)
        finally:
            if not session_task.done():
                session_task.cancel()
            # A failed start was reported where it mattered (the step that needed it).
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await session_task

    # ---- the loop ------------------------------------------------------------------------------

    async def _loop(
        self,
        turn: Turn,
        state: _TurnState,
        session_task: asyncio.Future[Any],
        instructions: str,
        chat_key: str,
    ) -> Terminal:
        request = turn.request
        history = list(self._history.get(chat_key, ()))
        # The stateless transcript (Responses input items or Chat messages), built as we go.
        transcript: list[dict[str, Any]] = []
        for question, answer in history:
            transcript.append({"role": "user", "content": question})
            transcript.append({"role": "assistant", "content": answer})
        transcript.append({"role": "user", "content": request.question})
        previous = request.previous_response_id if not self._stateless else None
        pending: list[dict[str, Any]] = []  # stateful: the outputs to send next
        first = True
        tools_on = True
        calls_made = 0
        context_reset = False
        while True:
            try:
                reply = await self._request(
                    turn, state, instructions, transcript, previous, pending, first, tools_on
                )
            except _RefusedChain:
                continue  # now stateless: the same request again, with the whole transcript
            except _LostChain:
                logger.warning(
                    "turn %s: the previous response is gone; starting a fresh chain",
                    turn.analysis_id,
                )
                turn.chain_gone = True
                context_reset = True
                previous = None
                continue
            except openai.APIError as error:
                return turn.failed(failure_reason_of(error), describe(error))
            first = False
            if not reply.calls or not tools_on:
                # No call: the answer. (A call although told not to: stop with its text.)
                result = await self._finish(turn, state, reply, chat_key)
                return TurnFinished(dataclasses.replace(result, context_reset=context_reset))
            pending = []
            if self._api == "chat":
                transcript.append(_assistant_message(reply))
            else:
                transcript.extend(reply.output_items)
            for call in reply.calls:
                calls_made += 1
                output = await self._run_call(state, session_task, call)
                if self._api == "chat":
                    transcript.append(
                        {"role": "tool", "tool_call_id": call.call_id, "content": output}
                    )
                else:
                    item = {
                        "type": "function_call_output",
                        "call_id": call.call_id,
                        "output": output,
                    }
                    transcript.append(item)
                    pending.append(item)
            previous = reply.response_id if not self._stateless else None
            if calls_made >= self._max_steps:
                tools_on = False
                last_word = {"role": "user", "content": LAST_WORD.format(steps=self._max_steps)}
                transcript.append(last_word)
                pending.append(last_word)

    async def _run_call(
        self, state: _TurnState, session_task: asyncio.Future[Any], call: _Call
    ) -> str:
        step = call.step  # CodeStepStarted was emitted while the call streamed
        code = parse_code(call.arguments)
        if call.name != TOOL_NAME or code is None:
            state.steps.append(CodeStep(step, call.arguments))
            state.turn.emit(CodeDone(step, call.arguments))
            state.turn.emit(CodeFinished(step, ""))
            return (
                f"Error: unknown tool or arguments. Call `{TOOL_NAME}` with a JSON object "
                '{"code": "<python code>"}.'
            )
        state.turn.emit(CodeDone(step, code))
        state.turn.emit(CodeRunning(step))
        state.progress.code_ran = True
        try:
            session = await asyncio.shield(session_task)
            state.work = session.work_dir
            output = await session.execute(code)
        except (SandboxError, OSError) as error:
            logger.warning("turn %s: sandbox failed: %s", state.turn.analysis_id, error)
            output = StepOutput(notes=[f"The Python sandbox failed: {error}"], restarted=True)
        text = output.for_model()
        state.steps.append(CodeStep(step, code, text[:LOGS_IN_EVENT]))
        state.turn.emit(CodeFinished(step, text[:LOGS_IN_EVENT]))
        for number, png in enumerate(output.images, start=1):
            artifact = Artifact(f"chart_{step}_{number}.png", "image/png", png)
            state.images.append(artifact)
            state.turn.emit(ImageOutput(step, artifact))
        for produced in output.files:
            state.files[produced.name] = produced.path
        return text

    async def _finish(
        self, turn: Turn, state: _TurnState, reply: _Reply, chat_key: str
    ) -> TurnResult:
        files = await asyncio.to_thread(_read_files, state.files, state.work, self._caps.max_bytes)
        too_big = sum(1 for _, data in files if data is None)
        produced = [
            Artifact(safe_filename(name), guess_mime_type(name), data)
            for name, data in files
            if data is not None
        ]
        for artifact in produced:
            turn.emit(FileCited(artifact.name))
        # Saved files first (named by the model), then the charts it displayed.
        artifacts, dropped = keep_within_caps([*produced, *state.images], self._caps)
        if self._stateless:
            history = self._history.pop(chat_key, None) or deque(maxlen=HISTORY_TURNS)
            history.append((turn.request.question, reply.text))
            self._history[chat_key] = history  # the most recent last
            while len(self._history) > HISTORY_CHATS:
                self._history.popitem(last=False)
        return TurnResult(
            response_id=reply.response_id,
            text=rewrite_sandbox_links(reply.text),
            artifacts=tuple(artifacts),
            code_steps=tuple(state.steps),
            usage=state.progress.usage,
            duration_s=time.monotonic() - turn.started,
            dropped_artifacts=dropped + too_big,
        )

    # ---- one model request (with retries) --------------------------------------------------------

    async def _request(
        self,
        turn: Turn,
        state: _TurnState,
        instructions: str,
        transcript: list[dict[str, Any]],
        previous: str | None,
        pending: list[dict[str, Any]],
        first: bool,
        tools_on: bool,
    ) -> _Reply:
        attempt = 0
        while True:
            try:
                if self._api == "chat":
                    stream = await self._client.chat.completions.create(
                        **self._chat_params(instructions, transcript, tools_on)
                    )
                    return await self._consume_chat(state, stream)
                params = self._responses_params(
                    instructions, transcript, previous, pending, first, tools_on
                )
                try:
                    stream = await self._client.responses.create(**params)
                except openai.APIStatusError as error:
                    if "previous_response_id" in params and _refuses_chain(error):
                        if first and _chain_not_found(error):
                            raise _LostChain from None
                        self._go_stateless(describe(error))
                        if first and turn.request.previous_response_id:
                            turn.chain_gone = True
                        raise _RefusedChain from None
                    raise
                return await self._consume_responses(state, stream)
            except openai.APIError as error:
                if not is_transient(error) or attempt >= self._retry.max_retries:
                    raise
                delay = self._retry.delay(attempt, error)
                attempt += 1
                logger.warning(
                    "turn %s: model request failed (%s); retry %d/%d in %.2fs",
                    turn.analysis_id,
                    describe(error),
                    attempt,
                    self._retry.max_retries,
                    delay,
                )
                await asyncio.sleep(delay)

    def _go_stateless(self, why: str) -> None:
        if not self._stateless:
            logger.warning(
                "the server keeps no responses (%s): local turns send the whole transcript from "
                "now on",
                why,
            )
        self._stateless = True

    def _responses_params(
        self,
        instructions: str,
        transcript: list[dict[str, Any]],
        previous: str | None,
        pending: list[dict[str, Any]],
        first: bool,
        tools_on: bool,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self._model,
            "instructions": instructions,
            "tools": [
                {
                    "type": "function",
                    "name": TOOL_NAME,
                    "description": TOOL_DESCRIPTION,
                    "parameters": PARAMETERS,
                    "strict": True,
                }
            ],
            "tool_choice": "auto" if tools_on else "none",
            "stream": True,
        }
        if self._stateless:
            params["input"] = transcript
            params["store"] = False
        else:
            params["input"] = transcript[-1:] if first else pending
            if previous:
                params["previous_response_id"] = previous
        return params

    def _chat_params(
        self, instructions: str, transcript: list[dict[str, Any]], tools_on: bool
    ) -> dict[str, Any]:
        return {
            "model": self._model,
            "messages": [{"role": "system", "content": instructions}, *transcript],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": TOOL_NAME,
                        "description": TOOL_DESCRIPTION,
                        "parameters": PARAMETERS,
                    },
                }
            ],
            "tool_choice": "auto" if tools_on else "none",
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    # ---- streams -------------------------------------------------------------------------------

    def _started(self, state: _TurnState, response_id: str) -> None:
        state.progress.response_id = response_id or state.progress.response_id
        if not state.started_emitted:
            state.started_emitted = True
            state.turn.emit(TurnStarted(response_id))

    def _call_started(self, state: _TurnState) -> int:
        state.step += 1
        state.turn.emit(CodeStepStarted(state.step))
        return state.step

    async def _consume_responses(self, state: _TurnState, stream: Any) -> _Reply:
        reply = _Reply()
        calls: dict[str, _Call] = {}  # by item id
        try:
            async for event in _events(stream):
                kind = event.type
                if kind == "response.created":
                    reply.response_id = event.response.id
                    self._started(state, reply.response_id)
                elif kind == "response.output_item.added" and event.item.type == "function_call":
                    item = event.item
                    call = _Call(item.call_id, item.name, item.arguments or "", item.id or "")
                    call.step = self._call_started(state)
                    calls[item.id or item.call_id] = call
                elif kind == "response.function_call_arguments.delta":
                    call = calls.get(event.item_id)
                    if call is not None:
                        call.arguments += event.delta
                        code = preview_code(call.arguments)
                        state.turn.emit(CodeDelta(call.step, event.delta, code))
                elif kind == "response.output_text.delta":
                    reply.text += event.delta
                    state.turn.emit(TextDelta(event.delta, reply.text))
                elif kind == "response.completed":
                    response = event.response
                    reply.response_id = response.id
                    if response.usage is not None:
                        reply.usage = Usage(
                            response.usage.input_tokens, response.usage.output_tokens
                        )
                        state.add_usage(reply.usage)
                    reply.calls = []
                    for item in response.output:
                        dumped = item.model_dump(exclude_none=True)
                        if item.type == "function_call":
                            known = calls.get(item.id or item.call_id)
                            # A call the stream did not announce gets its step now.
                            step = known.step if known else self._call_started(state)
                            reply.calls.append(
                                _Call(item.call_id, item.name, item.arguments, item.id or "", step)
                            )
                            reply.output_items.append(
                                {
                                    "type": "function_call",
                                    "call_id": item.call_id,
                                    "name": item.name,
                                    "arguments": item.arguments,
                                }
                            )
                        elif item.type == "message":
                            text = "".join(
                                part.text for part in item.content if part.type == "output_text"
                            )
                            if text and not reply.text:
                                reply.text = text
                                state.turn.emit(TextDelta(text, text))
                            reply.output_items.append(
                                {"role": "assistant", "content": text or dumped.get("content")}
                            )
                    return reply
                elif kind in ("response.failed", "response.incomplete", "error"):
                    raise _stream_failure(event)
        finally:
            await _close(stream)
        raise openai.APIConnectionError(
            message="the stream ended without response.completed", request=_fake_request()
        )

    async def _consume_chat(self, state: _TurnState, stream: Any) -> _Reply:
        reply = _Reply()
        calls: dict[int, _Call] = {}
        try:
            async for chunk in _events(stream):
                if chunk.id and not reply.response_id:
                    reply.response_id = chunk.id
                    self._started(state, chunk.id)
                if chunk.usage is not None:
                    reply.usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.content:
                        reply.text += delta.content
                        state.turn.emit(TextDelta(delta.content, reply.text))
                    for part in delta.tool_calls or ():
                        call = calls.get(part.index)
                        if call is None:
                            name = part.function.name if part.function else ""
                            call = _Call(part.id or f"call_{part.index}", name or "")
                            call.step = self._call_started(state)
                            calls[part.index] = call
                        if part.function and part.function.name and not call.name:
                            call.name = part.function.name
                        if part.function and part.function.arguments:
                            call.arguments += part.function.arguments
                            state.turn.emit(
                                CodeDelta(
                                    call.step,
                                    part.function.arguments,
                                    preview_code(call.arguments),
                                )
                            )
        finally:
            await _close(stream)
        state.add_usage(reply.usage)
        reply.calls = [calls[i] for i in sorted(calls)]
        return reply


# ---- helpers ------------------------------------------------------------------------------------


def _assistant_message(reply: _Reply) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": reply.text or None,
        "tool_calls": [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in reply.calls
        ],
    }


def _read_files(
    files: dict[str, Path], work: Path | None, max_bytes: int
) -> list[tuple[str, bytes | None]]:
    """The latest version of each file the code wrote (None: over the size cap). A file that
    is gone, is not a regular file, or is reached through a link is skipped: the sandbox can
    plant links to host files (/proc/self/environ, another chat's folder) and must never get
    the bot to read them."""
    if work is None:
        return []
    out: list[tuple[str, bytes | None]] = []
    for name in files:
        try:
            out.append((name, read_file(work, name, max_bytes)))
        except OSError as error:
            logger.warning("a file the code wrote is not sent (%s): %s", name, error)
            continue
    return out


def _chain_not_found(error: openai.APIStatusError) -> bool:
    said = error_text(error).lower()
    return "not found" in said or "not_found" in said or error.status_code == 404


def _refuses_chain(error: openai.APIStatusError) -> bool:
    if error.status_code not in (400, 404, 422, 501):
        return False
    said = error_text(error).lower()
    return getattr(error, "param", None) == "previous_response_id" or "previous_response" in said


async def _events(stream: Any) -> AsyncIterator[Any]:
    async for event in stream:
        yield event


async def _close(stream: Any) -> None:
    try:
        await stream.close()
    except Exception as error:  # best effort
        logger.debug("closing the stream failed: %s", error)


def _fake_request() -> Any:
    import httpx

    return httpx.Request("POST", "http://localhost/responses")


class _StreamFailed(openai.APIError):
    pass


def _stream_failure(event: Any) -> openai.APIError:
    if event.type == "error":
        message, code = event.message, event.code
    else:
        response = event.response
        error = getattr(response, "error", None)
        details = getattr(response, "incomplete_details", None)
        message = getattr(error, "message", None) or getattr(details, "reason", None) or event.type
        code = getattr(error, "code", None)
    failure = _StreamFailed(str(message), _fake_request(), body={"code": code})
    failure.code = code
    return failure


def failure_reason_of(error: BaseException) -> FailureReason:
    if isinstance(error, _StreamFailed):
        if error.code == "rate_limit_exceeded":
            return FailureReason.RATE_LIMITED
        return FailureReason.MODEL_ERROR
    return failure_reason(error)
