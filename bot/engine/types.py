"""Public types of the analysis engine: what goes into a turn and what comes out.

The engine knows nothing about Telegram or about how the bot stores state; it receives
`TurnRequest`s and emits the events below. The Telegram layer renders them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from bot.config import DEFAULT_LANGUAGE


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    name: str
    dtype: str  # "int", "float", "bool", "date", "datetime", "text", "empty"
    notes: tuple[str, ...] = ()  # for the model, in English: "12% missing", "currency ₽", ...


@dataclass(frozen=True, slots=True)
class DataFile:
    """One input file of a turn: a local copy plus what we know of its shape."""

    name: str  # the name the model sees (safe, unique within the chat)
    path: Path  # local copy, re-uploaded from here when the remote copy vanished
    sha256: str
    size: int
    rows: int
    columns: tuple[ColumnInfo, ...]
    # Remote copies are reused within one scope: "chat:<chat_id>" for a user's own file,
    # "dataset" for bundled public datasets (one remote copy shared by every chat).
    scope: str
    # How to read it, as the bot detected (empty when unknown): the pandas function and its
    # keyword arguments as (name, Python literal) pairs, e.g. ("sep", "';'").
    reader: str = ""
    read_options: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()  # about the file, in English: skipped titles, totals, origin


class RemoteFileIndex(Protocol):
    """Where the engine remembers which local file (scope, sha256) has which remote id."""

    async def get_remote_file(self, scope: str, sha256: str) -> str | None: ...

    async def set_remote_file(self, scope: str, sha256: str, file_id: str) -> None: ...

    async def forget_remote_file(self, scope: str, sha256: str) -> None: ...


@dataclass(frozen=True, slots=True)
class TurnRequest:
    question: str
    files: Sequence[DataFile]
    previous_response_id: str | None = None
    language: str = DEFAULT_LANGUAGE  # the user's language; the model is asked to answer in it
    analysis_id: str = ""  # the analysis this turn belongs to (for logs); made up when empty
    chat_key: str = ""  # who is asking (for logs and queue bookkeeping)


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    mime_type: str
    data: bytes
    file_id: str | None = None  # remote id, when it came from a file citation

    @property
    def is_image(self) -> bool:
        return self.mime_type.startswith("image/")


@dataclass(frozen=True, slots=True)
class CodeStep:
    step: int  # 1-based
    code: str
    logs: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class TurnResult:
    response_id: str
    text: str  # the answer, Markdown, with sandbox: links rewritten
    artifacts: tuple[Artifact, ...] = ()
    code_steps: tuple[CodeStep, ...] = ()
    usage: Usage = field(default_factory=Usage)
    duration_s: float = 0.0
    dropped_artifacts: int = 0  # over the count/size caps, or not downloadable
    # The previous response could not be continued (expired container, unknown response id),
    # so this turn started a fresh chain: the model did not see the earlier conversation.
    context_reset: bool = False
    # Up to three short questions the model suggests asking next (`bot.engine.followups`);
    # the block they came in is already taken off `text`.
    follow_ups: tuple[str, ...] = ()


class FailureReason(StrEnum):
    UNAVAILABLE = "unavailable"  # 5xx, connection errors, after retries
    RATE_LIMITED = "rate_limited"  # 429 after retries
    AUTH = "auth"  # 401/403: the operator's credentials are wrong
    BAD_REQUEST = "bad_request"  # 400/404/422 other than the handled cases
    TIMEOUT = "timeout"  # the whole-turn timeout elapsed
    CANCELLED = "cancelled"  # the user cancelled
    MODEL_ERROR = "model_error"  # `error` / `response.failed` event
    INCOMPLETE = "incomplete"  # `response.incomplete` (e.g. max_output_tokens)
    INTERRUPTED = "interrupted"  # the stream ended without a terminal event
    UPLOAD_FAILED = "upload_failed"  # an input file could not be uploaded


# ---- events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Queued:
    position: int  # 1 = next to start


@dataclass(frozen=True, slots=True)
class UploadingFiles:
    count: int  # files that actually need uploading now


@dataclass(frozen=True, slots=True)
class TurnStarted:
    response_id: str


@dataclass(frozen=True, slots=True)
class CodeStepStarted:
    step: int


@dataclass(frozen=True, slots=True)
class CodeDelta:
    step: int
    delta: str
    code: str  # the step's code so far


@dataclass(frozen=True, slots=True)
class CodeDone:
    step: int
    code: str


@dataclass(frozen=True, slots=True)
class CodeRunning:
    step: int


@dataclass(frozen=True, slots=True)
class CodeFinished:
    step: int
    logs: str


@dataclass(frozen=True, slots=True)
class ImageOutput:
    step: int
    artifact: Artifact


class StreamedText:
    """The answer as it streams in: pieces are appended, and joined only when someone reads
    the whole (so streaming costs no copy of the text per piece)."""

    __slots__ = ("_done", "_joined", "_parts", "length")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._joined = ""  # the first `_done` pieces, joined
        self._done = 0
        self.length = 0

    @property
    def pieces(self) -> int:
        return len(self._parts)

    def append(self, piece: str) -> None:
        self._parts.append(piece)
        self.length += len(piece)

    def ends_with(self, suffix: str) -> bool:
        return self.tail(len(suffix)).endswith(suffix)

    def tail(self, chars: int) -> str:
        """The last `chars` characters (from the last pieces only)."""
        taken, size = [], 0
        for piece in reversed(self._parts):
            taken.append(piece)
            size += len(piece)
            if size >= chars:
                break
        return "".join(reversed(taken))[-chars:] if chars else ""

    def upto(self, pieces: int) -> str:
        """The text of the first `pieces` pieces."""
        joined = self._joined
        done = self._done
        if pieces > done:
            joined = self._joined = joined + "".join(self._parts[done:pieces])
            self._done = pieces
            return joined
        if pieces == done:
            return joined
        return "".join(self._parts[:pieces])


class TextDelta:
    """A piece of the answer; `text` is the answer so far (raw Markdown, the follow-up block
    hidden), joined from the stream only when read."""

    __slots__ = ("_pieces", "_stream", "_text", "delta")
    __match_args__ = ("delta", "text")

    def __init__(
        self, delta: str, text: str | None = None, *, stream: StreamedText | None = None
    ) -> None:
        self.delta = delta
        self._text = text
        self._stream = stream
        self._pieces = stream.pieces if stream is not None else 0

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self._stream.upto(self._pieces) if self._stream is not None else ""
        return self._text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TextDelta):
            return NotImplemented
        return (self.delta, self.text) == (other.delta, other.text)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TextDelta(delta={self.delta!r}, text=<{len(self.text)} chars>)"


@dataclass(frozen=True, slots=True)
class FileCited:
    filename: str


@dataclass(frozen=True, slots=True)
class TurnFinished:
    result: TurnResult


@dataclass(frozen=True, slots=True)
class TurnFailed:
    reason: FailureReason
    detail: str  # technical detail for logs; never shown to users verbatim
    code_ran: bool = False  # True when code already ran: never re-send automatically
    response_id: str | None = None
    usage: Usage = field(default_factory=Usage)
    # The conversation could not be continued (expired container, unknown previous response)
    # and the turn still failed: the stored previous response id is dead, do not reuse it.
    chain_gone: bool = False


EngineEvent = (
    Queued
    | UploadingFiles
    | TurnStarted
    | CodeStepStarted
    | CodeDelta
    | CodeDone
    | CodeRunning
    | CodeFinished
    | ImageOutput
    | TextDelta
    | FileCited
    | TurnFinished
    | TurnFailed
)
