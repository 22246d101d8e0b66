"""The analysis engine: LLM turns over a chat's data files (no Telegram, no storage imports).

Public surface: `AnalysisEngine`, `TurnRun`, `TurnLimiter`, `build_client`,
`rewrite_sandbox_links`, and the contract types of `bot.engine.types`.
"""

from bot.engine.client import build_client
from bot.engine.engine import AnalysisEngine, TurnRun
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
    "CodeDelta",
    "CodeDone",
    "CodeFinished",
    "CodeRunning",
    "CodeStep",
    "CodeStepStarted",
    "ColumnInfo",
    "DataFile",
    "EngineEvent",
    "FailureReason",
    "FileCited",
    "ImageOutput",
    "Queued",
    "RemoteFileIndex",
    "TextDelta",
    "TurnFailed",
    "TurnFinished",
    "TurnLimiter",
    "TurnRequest",
    "TurnResult",
    "TurnRun",
    "TurnStarted",
    "UploadingFiles",
    "Usage",
    "build_client",
    "rewrite_sandbox_links",
]
