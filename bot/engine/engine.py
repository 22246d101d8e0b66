"""The analysis engine: runs one question over a chat's files, whatever backend runs the code.

Usage::

    engine = AnalysisEngine.from_settings(settings, remote_index=storage)
    async with engine.run(TurnRequest(question=..., files=..., analysis_id=...)) as run:
        async for event in run:      # Queued, UploadingFiles, TurnStarted, CodeStepStarted, ...
            ...                      # the last event is TurnFinished or TurnFailed
    # elsewhere, e.g. from a "Cancel" button:  run.cancel()
    ...
    await engine.aclose()

What the engine does for every turn, whatever the backend (`bot.engine.executor`):

1. waits for a slot (`TurnLimiter`, FIFO; emits `Queued(position)` whenever the position changes);
2. runs the backend's `run_turn` under the whole-turn timeout (counted from getting the slot, so
   queueing is not included) → `TurnFailed(TIMEOUT)` when it elapses;
3. `run.cancel()` → `TurnFailed(CANCELLED)`: the backend's task is cancelled at once (the HTTP
   stream is closed, the slot released). So is a run whose consumer leaves `async with` early or
   is itself cancelled while waiting for the next event;
4. exactly one terminal event (`TurnFinished` or `TurnFailed`) ends every run, and one log line
   records its outcome. An exception escaping the backend becomes `TurnFailed(UNAVAILABLE)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from types import TracebackType

from bot.config import Settings
from bot.engine.executor import Executor, Terminal, Turn
from bot.engine.followups import split_follow_ups, visible_while_streaming
from bot.engine.hosted import HostedInterpreter
from bot.engine.limiter import ConcurrencyLimiter, TurnLimiter
from bot.engine.types import (
    EngineEvent,
    FailureReason,
    Queued,
    RemoteFileIndex,
    TextDelta,
    TurnFailed,
    TurnFinished,
    TurnRequest,
)

logger = logging.getLogger(__name__)

# Queue positions up to this are reported at every move; further back in ~10 % steps.
EXACT_QUEUE_POSITIONS = 10

TurnBody = Callable[[Turn], Awaitable[Terminal]]


class TurnRun:
    """One turn in progress. Async-iterate it to receive `EngineEvent`s; the iteration ends after
    the single terminal event (`TurnFinished` or `TurnFailed`).

    The work (`body(turn)`) starts on the first iteration. `cancel()` may be called at any time
    from any task of the same event loop; it makes the run end with `TurnFailed(CANCELLED)`.
    A consumer cancelled while it waits for the next event cancels the run too, and so does
    leaving the run's `async with` block before the end. `on_end(run)` is called once when the
    run's work is over (the engine forgets the run then).
    """

    def __init__(
        self,
        request: TurnRequest,
        body: TurnBody,
        *,
        on_end: Callable[[TurnRun], None] | None = None,
    ) -> None:
        self.request = request
        self.analysis_id = request.analysis_id or uuid.uuid4().hex[:12]
        self.created_at = time.monotonic()
        self._turn = Turn(request, self.analysis_id, self._push)
        self._body = body
        self._on_end = on_end
        self._events: asyncio.Queue[EngineEvent] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._cancel_detail: str | None = None
        self._terminal: Terminal | None = None
        self._delivered_terminal = False
        self._shown_text = ""  # the answer as consumers have seen it (follow-ups hidden)

    @property
    def done(self) -> bool:
        """The terminal event has been produced (it may not have been consumed yet)."""
        return self._terminal is not None

    @property
    def outcome(self) -> Terminal | None:
        return self._terminal

    def cancel(self, detail: str = "cancelled by the user") -> None:
        """Stop the turn: leave the queue, abort the upload or close the HTTP stream."""
        if self._terminal is not None or self._cancel_detail is not None:
            return
        self._cancel_detail = detail
        if self._task is None:
            self._finish(self._turn.failed(FailureReason.CANCELLED, detail))
            self._ended()
        else:
            self._task.cancel()

    def __aiter__(self) -> TurnRun:
        return self

    async def __anext__(self) -> EngineEvent:
        if self._delivered_terminal:
            raise StopAsyncIteration
        self._start()
        try:
            event = await self._events.get()
        except asyncio.CancelledError:
            self.cancel("the consumer was cancelled")
            raise
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
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel the run unless it has ended, and wait until its work is over."""
        if self._terminal is None:
            self.cancel("abandoned by the caller")
        await self.wait()

    async def wait(self) -> None:
        """Wait until the run's background work is over (after `cancel()`, for instance)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._task)

    # ---- internals ------------------------------------------------------------------------

    def _start(self) -> None:
        if self._task is None and self._terminal is None:
            self._task = asyncio.get_running_loop().create_task(
                self._main(), name=f"turn-{self.analysis_id}"
            )
            self._task.add_done_callback(self._task_done)

    def _push(self, event: EngineEvent) -> None:
        if self._terminal is None:
            if isinstance(event, TextDelta):
                # The follow-up block at the end of the answer is never shown, not even
                # while it streams; a delta that changes nothing visible is dropped.
                shown, text = self._shown_text, visible_while_streaming(event.text)
                if text == shown:
                    return
                delta = text[len(shown) :] if text.startswith(shown) else text
                self._shown_text = text
                event = TextDelta(delta, text)
            self._events.put_nowait(event)

    def _finish(self, terminal: Terminal) -> None:
        if self._terminal is None:
            if isinstance(terminal, TurnFinished):
                text, follow_ups = split_follow_ups(terminal.result.text)
                result = dataclasses.replace(terminal.result, text=text, follow_ups=follow_ups)
                terminal = TurnFinished(result)
            self._terminal = terminal
            self._events.put_nowait(terminal)
            _log_outcome(self, terminal)

    def _ended(self) -> None:
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end(self)

    def _task_done(self, _: asyncio.Task[None]) -> None:
        # A task cancelled before its first step never ran `_main`: end the run here.
        self._finish(self._turn.failed(FailureReason.CANCELLED, self._cancel_detail or "cancelled"))
        self._ended()

    async def _main(self) -> None:
        try:
            terminal = await self._body(self._turn)
        except asyncio.CancelledError:
            detail = self._cancel_detail or "cancelled"
            self._finish(self._turn.failed(FailureReason.CANCELLED, detail))
            if self._cancel_detail is None:
                raise  # not our cancel(): let whoever cancelled the task see it
            return
        except Exception as error:
            logger.exception("turn %s: internal error", self.analysis_id)
            terminal = self._turn.failed(
                FailureReason.UNAVAILABLE, f"internal error: {type(error).__name__}: {error}"
            )
        self._finish(terminal)


class AnalysisEngine:
    """Runs analysis turns: the queue, the timeout, cancelling; the turn's body is `executor`'s.

    Args:
        executor: the code-execution backend (`HostedInterpreter`, ...); closed by `aclose()`.
        limiter: the concurrency limiter; by default an in-process `TurnLimiter(max_concurrent)`.
        turn_timeout: seconds a turn may run once it has a slot.
    """

    def __init__(
        self,
        executor: Executor,
        *,
        limiter: ConcurrencyLimiter | None = None,
        max_concurrent: int = 3,
        turn_timeout: float = 600,
    ) -> None:
        self.executor = executor
        self._limiter: ConcurrencyLimiter = limiter or TurnLimiter(max_concurrent)
        self._turn_timeout = turn_timeout
        self._runs: weakref.WeakSet[TurnRun] = weakref.WeakSet()  # unfinished runs
        self._closed = False

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        remote_index: RemoteFileIndex,
        executor: Executor | None = None,
        *,
        limiter: ConcurrencyLimiter | None = None,
    ) -> AnalysisEngine:
        """An engine configured from `settings`, running turns with `executor` (by default the
        backend CODE_EXECUTION chooses, owning its client: the provider's Code Interpreter for
        `cloud`, the local sandboxed kernels for `local`); `limiter` replaces the in-process
        `TurnLimiter(MAX_CONCURRENT_ANALYSES)` (e.g. a deployment-wide one). Call `start()`
        before the first run."""
        if executor is None:
            if settings.code_execution == "local":
                from bot.engine.local import LocalExecutor  # the sandbox's imports only when used

                executor = LocalExecutor.from_settings(settings)
            else:
                executor = HostedInterpreter.from_settings(settings, remote_index)
        return cls(
            executor,
            limiter=limiter,
            max_concurrent=settings.max_concurrent_analyses,
            turn_timeout=settings.analysis_timeout_seconds,
        )

    # ---- public API ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Let the backend check that it can work (the local sandbox's self-check); raises
        `ConfigError` with a one-line explanation when it cannot."""
        start = getattr(self.executor, "start", None)
        if start is not None:
            await start()

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
        run = TurnRun(request, self._execute, on_end=self._runs.discard)
        self._runs.add(run)
        return run

    async def delete_remote_file(self, file_id: str) -> None:
        """Delete a remote copy (when a file is removed or a chat reset); a 404 is ignored."""
        await self.executor.delete_remote_file(file_id)

    async def aclose(self) -> None:
        """Cancel every unfinished run, wait for them, and close the backend."""
        self._closed = True
        runs = list(self._runs)
        for run in runs:
            run.cancel("the bot is shutting down")
        for run in runs:
            await run.wait()
        await self.executor.aclose()

    # ---- the generic part of a turn -------------------------------------------------------------

    async def _execute(self, turn: Turn) -> Terminal:
        request = turn.request
        created = time.monotonic()
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
                    "turn %s chat=%s queued at %d", turn.analysis_id, request.chat_key, position
                )
            shown = position
            turn.emit(Queued(position))

        await self._limiter.acquire(on_position)
        turn.begin()
        logger.info(
            "turn %s chat=%s started files=%d followup=%s waited=%.2fs",
            turn.analysis_id,
            request.chat_key,
            len(request.files),
            bool(request.previous_response_id),
            turn.started - created,
        )
        try:
            try:
                async with asyncio.timeout(self._turn_timeout) as deadline:
                    return await self.executor.run_turn(turn)
            except TimeoutError:
                if not deadline.expired():
                    raise
                return turn.failed(
                    FailureReason.TIMEOUT, f"no result within {self._turn_timeout:g}s"
                )
        finally:
            self._limiter.release()


def _log_outcome(run: TurnRun, terminal: Terminal) -> None:
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
            "turn %s chat=%s failed reason=%s code_ran=%s chain_gone=%s after %.2fs "
            "tokens in=%d out=%d: %s",
            run.analysis_id,
            request.chat_key,
            terminal.reason.value,
            terminal.code_ran,
            terminal.chain_gone,
            time.monotonic() - run.created_at,
            terminal.usage.input_tokens,
            terminal.usage.output_tokens,
            terminal.detail,
        )
