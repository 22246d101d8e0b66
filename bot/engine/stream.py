"""Translate Responses API stream events into the engine's typed events.

`TurnAccumulator.feed(event)` takes one SDK stream event and returns the engine events it causes,
while accumulating what the turn produced (code steps, logs, inline images, answer text, file
citations, usage) and whether it reached a terminal state.

Robustness rules (see the shared notes on the Responses API):
- dispatch on the `type` string, ignore unknown types;
- read every field defensively: the SDK builds stream models without validation, so any field
  may be missing or None, and annotations may be dicts or models;
- key code steps by `item_id`, falling back to `output_index`; several code steps per turn;
- a turn is complete only on `response.completed`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import mimetypes
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.engine.types import (
    Artifact,
    CodeDelta,
    CodeDone,
    CodeFinished,
    CodeRunning,
    CodeStep,
    CodeStepStarted,
    EngineEvent,
    FailureReason,
    FileCited,
    ImageOutput,
    TextDelta,
    TurnStarted,
    Usage,
)

logger = logging.getLogger(__name__)

Status = Literal["running", "completed", "failed", "incomplete"]

# Events that say nothing about the model's output: seeing only these, a turn may be re-sent.
_LIFECYCLE_TYPES = frozenset({"response.created", "response.in_progress", "response.queued"})
_TRANSIENT_ERROR_CODES = frozenset({"server_error", "rate_limit_exceeded", "server_is_overloaded"})
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[^,]*)?;base64,", re.IGNORECASE)


def field_of(obj: Any, name: str, default: Any = None) -> Any:
    """`obj.name` or `obj[name]`, or `default` when missing/None."""
    if obj is None:
        return default
    value = obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)
    return default if value is None else value


def _str(obj: Any, name: str) -> str:
    value = field_of(obj, name, "")
    return value if isinstance(value, str) else str(value)


def _int(obj: Any, name: str) -> int | None:
    value = field_of(obj, name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class Citation:
    """A file the model generated and cited (`container_file_citation`)."""

    file_id: str
    filename: str
    container_id: str | None


@dataclass(slots=True)
class _Step:
    number: int
    code: str = ""
    final_code: str | None = None
    logs: str = ""
    code_done: bool = False
    running: bool = False
    finished: bool = False
    images: int = 0

    @property
    def best_code(self) -> str:
        return self.final_code or self.code


def decode_data_url(url: str) -> tuple[str, bytes] | None:
    """`data:image/png;base64,...` → (mime type, bytes); None for anything else."""
    match = _DATA_URL.match(url)
    if match is None:
        return None
    try:
        data = base64.b64decode(url[match.end() :], validate=False)
    except (binascii.Error, ValueError):
        return None
    if not data:
        return None
    return (match.group("mime") or "application/octet-stream").lower(), data


def citations_in(annotations: Any) -> list[Citation]:
    found = []
    for annotation in annotations or ():
        if _str(annotation, "type") != "container_file_citation":
            continue
        file_id = _str(annotation, "file_id")
        if not file_id:
            continue
        filename = _str(annotation, "filename").replace("\\", "/").rsplit("/", 1)[-1]
        found.append(Citation(file_id, filename or file_id, field_of(annotation, "container_id")))
    return found


@dataclass(slots=True)
class TurnAccumulator:
    """State of one attempt at a turn (one `responses.create` stream)."""

    response_id: str | None = None
    status: Status = "running"
    failure_reason: FailureReason | None = None
    failure_code: str | None = None
    failure_message: str = ""
    output_seen: bool = False  # any event beyond the response lifecycle arrived
    code_ran: bool = False  # some code was (or may have been) executed
    # The server said the response is over (a terminal event, an `error`, or a retrieved
    # terminal status); False after a cut stream, when it may still be running server-side.
    settled: bool = False
    final_response: Any = None
    usage: Usage = field(default_factory=Usage)
    citations: dict[str, Citation] = field(default_factory=dict)
    images: list[tuple[int, Artifact]] = field(default_factory=list)
    events_seen: int = 0
    _steps: list[_Step] = field(default_factory=list)
    _step_by_item: dict[str, _Step] = field(default_factory=dict)
    _step_by_index: dict[int, _Step] = field(default_factory=dict)
    _text: str = ""
    _text_item: str | None = None

    # ---- results -----------------------------------------------------------------------

    @property
    def terminal(self) -> bool:
        return self.status != "running"

    @property
    def text(self) -> str:
        """The answer as streamed so far (raw Markdown)."""
        return self._text

    @property
    def transient_failure(self) -> bool:
        """The failure may go away on a new request (only meaningful if nothing was output)."""
        return self.status == "failed" and (self.failure_code or "") in _TRANSIENT_ERROR_CODES

    def final_text(self) -> str:
        """The answer: from the final response's message items, else the streamed text."""
        messages = []
        for item in field_of(self.final_response, "output", ()) or ():
            if _str(item, "type") != "message":
                continue
            parts = []
            for part in field_of(item, "content", ()) or ():
                kind = _str(part, "type")
                if kind == "output_text":
                    parts.append(_str(part, "text"))
                elif kind == "refusal":
                    parts.append(_str(part, "refusal"))
            text = "".join(parts).strip()
            if text:
                messages.append(text)
        return "\n\n".join(messages) if messages else self._text.strip()

    def code_steps(self) -> tuple[CodeStep, ...]:
        return tuple(CodeStep(s.number, s.best_code, s.logs) for s in self._steps)

    def mark_interrupted(self, message: str) -> None:
        if not self.terminal:
            self.status = "failed"
            self.failure_reason = FailureReason.INTERRUPTED
            self.failure_code = "connection_error"
            self.failure_message = message

    # ---- event translation --------------------------------------------------------------

    def feed(self, event: Any) -> list[EngineEvent]:
        """Translate one SDK stream event; returns the engine events to emit, in order."""
        kind = _str(event, "type")
        self.events_seen += 1
        if self.terminal:
            return []
        if kind in _LIFECYCLE_TYPES:
            return self._lifecycle(field_of(event, "response"))
        if kind == "error":
            self._fail(
                FailureReason.MODEL_ERROR, field_of(event, "code"), _str(event, "message") or kind
            )
            return []
        if kind == "response.failed":
            response = field_of(event, "response")
            self._take_usage(response)
            error = field_of(response, "error")
            self._fail(
                FailureReason.MODEL_ERROR,
                field_of(error, "code"),
                _str(error, "message") or "response.failed",
            )
            return []
        self.output_seen = True
        handler = _HANDLERS.get(kind)
        if handler is None:
            return []  # unknown or uninteresting (reasoning, refusal.done, ...)
        return handler(self, event)

    def absorb_response(self, response: Any, *, code: bool = True) -> list[EngineEvent]:
        """Take what a full `Response` (final or retrieved) says: code steps, logs and inline
        images (unless `code=False`) and file citations."""
        out: list[EngineEvent] = []
        for index, item in enumerate(field_of(response, "output", ()) or ()):
            kind = _str(item, "type")
            if kind == "code_interpreter_call" and code:
                out += self._code_item_done(item, index)
            elif kind == "message":
                out += self._message_done(item)
        return out

    def complete_from(self, response: Any) -> list[EngineEvent]:
        """Finish the turn with a completed `Response` (from the stream or from a retrieve)."""
        out = self._lifecycle(response) if self.response_id is None else []
        self.final_response = response
        self._take_usage(response)
        out += self.absorb_response(response)
        self.settled = True
        # Steps whose output_item.done never came: close them so the UI does not hang.
        for step in self._steps:
            if not step.finished:
                step.finished = True
                out.append(CodeFinished(step.number, step.logs))
        self.status = "completed"
        return out

    def settle_from(self, response: Any) -> list[EngineEvent] | None:
        """Take a retrieved `Response` after a cut stream: the events its terminal status causes,
        or None while it is still queued or running."""
        status = _str(response, "status")
        if status == "completed":
            return self.complete_from(response)
        if status in ("failed", "incomplete"):
            return self.feed({"type": f"response.{status}", "response": response})
        if status == "cancelled":
            self._take_usage(response)
            self._fail(FailureReason.MODEL_ERROR, "cancelled", "the response was cancelled")
            return []
        return None

    def mark_failed(self, code: Any, message: str) -> None:
        if not self.terminal:
            self._fail(FailureReason.MODEL_ERROR, code, message)

    # ---- handlers -------------------------------------------------------------------------

    def _lifecycle(self, response: Any) -> list[EngineEvent]:
        response_id = _str(response, "id")
        if response_id and response_id != self.response_id:
            self.response_id = response_id
            return [TurnStarted(response_id)]
        return []

    def _fail(self, reason: FailureReason, code: Any, message: str) -> None:
        self.settled = True
        self.status = "failed"
        self.failure_code = str(code) if code else None
        self.failure_message = message
        if self.failure_code == "rate_limit_exceeded":
            reason = FailureReason.RATE_LIMITED
        self.failure_reason = reason

    def _take_usage(self, response: Any) -> None:
        usage = field_of(response, "usage")
        if usage is not None:
            self.usage = Usage(
                input_tokens=_int(usage, "input_tokens") or 0,
                output_tokens=_int(usage, "output_tokens") or 0,
            )

    def _step(self, item_id: Any, output_index: Any) -> tuple[_Step, list[EngineEvent]]:
        """The step for an item, creating it (and a CodeStepStarted event) on first sight."""
        step = None
        if isinstance(item_id, str) and item_id:
            step = self._step_by_item.get(item_id)
        if step is None and isinstance(output_index, int):
            step = self._step_by_index.get(output_index)
        started: list[EngineEvent] = []
        if step is None:
            step = _Step(number=len(self._steps) + 1)
            self._steps.append(step)
            started.append(CodeStepStarted(step.number))
        if isinstance(item_id, str) and item_id:
            self._step_by_item.setdefault(item_id, step)
        if isinstance(output_index, int):
            self._step_by_index.setdefault(output_index, step)
        return step, started

    def _event_step(self, event: Any) -> tuple[_Step, list[EngineEvent]]:
        return self._step(field_of(event, "item_id"), field_of(event, "output_index"))

    def _on_item_added(self, event: Any) -> list[EngineEvent]:
        item = field_of(event, "item")
        if _str(item, "type") == "code_interpreter_call":
            _, out = self._step(field_of(item, "id"), field_of(event, "output_index"))
            return out
        return []

    def _on_code_started(self, event: Any) -> list[EngineEvent]:
        _, out = self._event_step(event)
        return out

    def _on_code_delta(self, event: Any) -> list[EngineEvent]:
        step, out = self._event_step(event)
        delta = _str(event, "delta")
        if delta:
            step.code += delta
            out.append(CodeDelta(step.number, delta, step.code))
        return out

    def _on_code_done(self, event: Any) -> list[EngineEvent]:
        step, out = self._event_step(event)
        code = _str(event, "code")
        if code:
            step.final_code = code
        self.code_ran = True
        if not step.code_done:
            step.code_done = True
            out.append(CodeDone(step.number, step.best_code))
        return out

    def _on_interpreting(self, event: Any) -> list[EngineEvent]:
        step, out = self._event_step(event)
        self.code_ran = True
        if not step.running:
            step.running = True
            out.append(CodeRunning(step.number))
        return out

    def _on_code_completed(self, event: Any) -> list[EngineEvent]:
        _, out = self._event_step(event)
        self.code_ran = True
        return out

    def _on_item_done(self, event: Any) -> list[EngineEvent]:
        item = field_of(event, "item")
        kind = _str(item, "type")
        if kind == "code_interpreter_call":
            return self._code_item_done(item, field_of(event, "output_index"))
        if kind == "message":
            return self._message_done(item)
        return []

    def _code_item_done(self, item: Any, output_index: Any) -> list[EngineEvent]:
        step, out = self._step(field_of(item, "id"), output_index)
        code = _str(item, "code")
        if code:
            step.final_code = code
        if not step.code_done:
            step.code_done = True
            out.append(CodeDone(step.number, step.best_code))
        if step.finished:
            return out
        step.finished = True
        status = _str(item, "status")
        if status != "in_progress":
            self.code_ran = True
        logs = []
        for output in field_of(item, "outputs", ()) or ():
            kind = _str(output, "type")
            if kind == "image":
                out += self._inline_image(step, _str(output, "url"))
            else:  # "logs", and whatever unknown type the SDK falls back to OutputLogs for
                text = _str(output, "logs")
                if text:
                    logs.append(text)
        step.logs = "".join(logs)
        out.append(CodeFinished(step.number, step.logs))
        return out

    def _inline_image(self, step: _Step, url: str) -> list[EngineEvent]:
        decoded = decode_data_url(url) if url else None
        if decoded is None:
            if url:
                logger.debug("ignoring a non-data image output of step %d", step.number)
            return []
        mime, data = decoded
        step.images += 1
        extension = mimetypes.guess_extension(mime) or ".bin"
        if extension == ".jpe":
            extension = ".jpg"
        artifact = Artifact(f"step{step.number}_image{step.images}{extension}", mime, data)
        self.images.append((step.number, artifact))
        return [ImageOutput(step.number, artifact)]

    def _message_done(self, item: Any) -> list[EngineEvent]:
        out: list[EngineEvent] = []
        for part in field_of(item, "content", ()) or ():
            out += self._cite(citations_in(field_of(part, "annotations")))
        return out

    def _cite(self, citations: Iterable[Citation]) -> list[EngineEvent]:
        out: list[EngineEvent] = []
        for citation in citations:
            if citation.file_id not in self.citations:
                self.citations[citation.file_id] = citation
                out.append(FileCited(citation.filename))
        return out

    def _on_annotation(self, event: Any) -> list[EngineEvent]:
        return self._cite(citations_in([field_of(event, "annotation")]))

    def _on_part_done(self, event: Any) -> list[EngineEvent]:
        return self._cite(citations_in(field_of(field_of(event, "part"), "annotations")))

    def _on_text_delta(self, event: Any) -> list[EngineEvent]:
        delta = _str(event, "delta")
        if not delta:
            return []
        item_id = field_of(event, "item_id")
        if item_id != self._text_item:
            if self._text and not self._text.endswith("\n\n"):
                self._text += "\n\n"
            self._text_item = item_id
        self._text += delta
        return [TextDelta(delta, self._text)]

    def _on_completed(self, event: Any) -> list[EngineEvent]:
        return self.complete_from(field_of(event, "response"))

    def _on_incomplete(self, event: Any) -> list[EngineEvent]:
        response = field_of(event, "response")
        self._take_usage(response)
        reason = _str(field_of(response, "incomplete_details"), "reason") or "unknown"
        self.status = "incomplete"
        self.settled = True
        self.failure_reason = FailureReason.INCOMPLETE
        self.failure_code = reason
        self.failure_message = f"response.incomplete: {reason}"
        return []


_HANDLERS = {
    "response.output_item.added": TurnAccumulator._on_item_added,
    "response.code_interpreter_call.in_progress": TurnAccumulator._on_code_started,
    "response.code_interpreter_call_code.delta": TurnAccumulator._on_code_delta,
    "response.code_interpreter_call_code.done": TurnAccumulator._on_code_done,
    "response.code_interpreter_call.interpreting": TurnAccumulator._on_interpreting,
    "response.code_interpreter_call.completed": TurnAccumulator._on_code_completed,
    "response.output_item.done": TurnAccumulator._on_item_done,
    "response.output_text.delta": TurnAccumulator._on_text_delta,
    "response.refusal.delta": TurnAccumulator._on_text_delta,
    "response.output_text.annotation.added": TurnAccumulator._on_annotation,
    "response.content_part.done": TurnAccumulator._on_part_done,
    "response.completed": TurnAccumulator._on_completed,
    "response.incomplete": TurnAccumulator._on_incomplete,
}
