"""The analysis engine: LLM turns over a chat's data files (no Telegram, no storage imports).

Public surface: `AnalysisEngine`, `TurnRun`, `TurnLimiter`, `build_client`,
`rewrite_sandbox_links`, and the contract types of `bot.engine.types`.

Code-execution backends plug in behind one seam, `bot.engine.executor.Executor`
(`run_turn(turn) -> TurnFinished | TurnFailed`): the engine keeps the queue, the timeout,
cancelling and the single terminal event; the backend runs the turn's body and reports through
`turn.emit(...)`. `HostedInterpreter` (the provider's Code Interpreter) is the first backend; the
module docstring of `bot.engine.executor` says how to add another.
"""

from bot.engine.artifacts import ArtifactCaps, keep_within_caps
from bot.engine.client import build_client
from bot.engine.engine import AnalysisEngine, TurnRun
from bot.engine.executor import Executor, ProgressRecord, Turn, TurnProgress
from bot.engine.hosted import HostedInterpreter
from bot.engine.limiter import TurnLimiter
from bot.engine.links import rewrite_sandbox_links
from bot.engine.types import (
    Artifact,
    CodeDelta,
    CodeDone,
    CodeFinished,
    CodeRunning,
    CodeStep,
    CodeStepStarted,
    ColumnInfo,
    DataFile,
    EngineEvent,
    FailureReason,
    FileCited,
    ImageOutput,
    Queued,
    RemoteFileIndex,
    TextDelta,
    TurnFailed,
    TurnFinished,
    TurnRequest,
    TurnResult,
    TurnStarted,
    UploadingFiles,
    Usage,
)

__all__ = [
    "AnalysisEngine",
    "Artifact",
    "ArtifactCaps",
    "CodeDelta",
    "CodeDone",
    "CodeFinished",
    "CodeRunning",
    "CodeStep",
    "CodeStepStarted",
    "ColumnInfo",
    "DataFile",
    "EngineEvent",
    "Executor",
    "FailureReason",
    "FileCited",
    "HostedInterpreter",
    "ImageOutput",
    "ProgressRecord",
    "Queued",
    "RemoteFileIndex",
    "TextDelta",
    "Turn",
    "TurnFailed",
    "TurnFinished",
    "TurnLimiter",
    "TurnProgress",
    "TurnRequest",
    "TurnResult",
    "TurnRun",
    "TurnStarted",
    "UploadingFiles",
    "Usage",
    "build_client",
    "keep_within_caps",
    "rewrite_sandbox_links",
]
