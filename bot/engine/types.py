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


@dataclass(frozen=True, slots=True)
class TextDelta:
    delta: str
    text: str  # the answer so far (raw Markdown, the follow-up block hidden)


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
