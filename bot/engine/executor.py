"""The seam between the engine and a code-execution backend.

`AnalysisEngine` does what every turn needs, whatever runs the code: the FIFO limit on
simultaneous turns (with `Queued` positions), the whole-turn timeout, `cancel()`, exactly one
terminal event per run, and the outcome log line. The turn's body — talking to a model, running
code, collecting what it produced — is an `Executor`. The first one is `HostedInterpreter`
(`bot.engine.hosted`: the provider's Code Interpreter through the Responses API).

Adding a backend
----------------

Write a class with the three methods of `Executor` and pass an instance to
`AnalysisEngine(executor, ...)` (or choose it in `AnalysisEngine.from_settings`). In `run_turn`:

- read the question, files, language and `previous_response_id` from `turn.request`;
- report progress with `turn.emit(event)`, using the typed events of `bot.engine.types`, in the
  order a hosted turn produces them: `UploadingFiles` (optional), `TurnStarted(response_id)`, then
  per code step `CodeStepStarted(n)`, `CodeDelta`s, `CodeDone`, `CodeRunning`, `CodeFinished(logs)`
  and `ImageOutput`s, and for the answer `TextDelta`s and `FileCited`. Steps are numbered from 1.
  `bot.engine.stream.TurnAccumulator` shows the exact rules;
- set `turn.chain_gone = True` when `request.previous_response_id` proved unusable (the services
  then drop it), and report `TurnResult.context_reset=True` if the turn went on without it;
- keep `turn.progress` current (`code_ran`, `response_id`, `usage`; `TurnProgress` below, e.g.
  a `TurnAccumulator` or a `ProgressRecord`): when the engine has to end the turn itself (timeout,
  cancel, an unexpected exception) the `TurnFailed` it emits is built from it by `turn.failed()`;
- return `TurnFinished(TurnResult(...))` or `turn.failed(reason, detail)`; never emit a terminal
  event yourself. Cap the files you return with `bot.engine.artifacts.ArtifactCaps` (the
  operator's MAX_ARTIFACTS / MAX_ARTIFACT_BYTES) via `keep_within_caps`;
- be cancellable at any `await`: the engine cancels the task on `cancel()` and on the timeout.
  Release what you hold in `finally` blocks (bounded in time: the limiter slot is released only
  after `run_turn` returns), and do not swallow `asyncio.CancelledError`.

`delete_remote_file` is called when a user removes a file (a backend without remote copies does
nothing) and `aclose` once at shutdown, after every run has ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bot.engine.types import (
    EngineEvent,
    FailureReason,
    TurnFailed,
    TurnFinished,
    TurnRequest,
    Usage,
)

Terminal = TurnFinished | TurnFailed


class TurnProgress(Protocol):
    """What a failure reports about the turn so far."""

    @property
    def code_ran(self) -> bool: ...  # some code was (or may have been) executed

    @property
    def response_id(self) -> str | None: ...

    @property
    def usage(self) -> Usage: ...


@dataclass(slots=True)
class ProgressRecord:
    """A plain `TurnProgress` for backends that do not keep one of their own."""

    code_ran: bool = False
    response_id: str | None = None
    usage: Usage = field(default_factory=Usage)


class Turn:
    """One turn as a backend sees it: the request, an outlet for events, the progress so far."""

    def __init__(
        self, request: TurnRequest, analysis_id: str, emit: Callable[[EngineEvent], None]
    ) -> None:
        self.request = request
        self.analysis_id = analysis_id
        self.progress: TurnProgress = ProgressRecord()
        # Set by the backend when `request.previous_response_id` turned out to be dead (expired
        # container, unknown response): every failure then says `chain_gone`.
        self.chain_gone = False
        self.started = time.monotonic()  # reset when the turn gets its slot
        self._emit = emit

    def emit(self, event: EngineEvent) -> None:
        """Send a progress event to the consumer (ignored once the run has ended)."""
        if isinstance(event, TurnFinished | TurnFailed):
            raise TypeError("return the terminal event from run_turn instead of emitting it")
        self._emit(event)

    def begin(self) -> None:
        """The turn got its slot (called by the engine): durations count from here."""
        self.started = time.monotonic()

    def failed(self, reason: FailureReason, detail: str) -> TurnFailed:
        """A `TurnFailed` carrying what `progress` knows (code ran, response id, usage) and
        whether the previous response id is dead (`chain_gone`)."""
        progress = self.progress
        return TurnFailed(
            reason,
            detail,
            code_ran=progress.code_ran,
            response_id=progress.response_id,
            usage=progress.usage,
            chain_gone=self.chain_gone,
        )


class Executor(Protocol):
    """A code-execution backend: runs the body of a turn (see the module docstring)."""

    async def run_turn(self, turn: Turn) -> Terminal: ...

    async def delete_remote_file(self, file_id: str) -> None: ...

    async def aclose(self) -> None: ...
