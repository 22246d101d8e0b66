"""The state interface: per-chat files, conversations, analysis locks, usage and quotas.

Two implementations sit behind it: SQLite (default, one process) and Redis (several bot
instances sharing state). Storage knows nothing about Telegram or the analysis engine;
records are plain dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from bot.config import DEFAULT_LANGUAGE


@dataclass(frozen=True, slots=True)
class StoredFile:
    chat_id: int
    file_key: str  # short random id, unique within the chat; used in callback data
    original_name: str  # as the user sent it (display only, never a path)
    stored_name: str  # safe, unique within the chat; the name the model sees
    size: int
    sha256: str
    rows: int
    columns: tuple[tuple[str, str], ...]  # (name, dtype)
    path: str  # local copy
    added_at: datetime
    dataset_id: str | None = None  # set when it came from /dataset
    remote_id: str | None = None  # filled from the remote-file index on read
    remote_uploaded_at: datetime | None = None
    # How to read the file (reading parameters, notes), as JSON text written and read by the
    # files service; storage keeps it as it is. "" for files added before it existed.
    reading: str = ""


@dataclass(frozen=True, slots=True)
class Conversation:
    chat_id: int
    last_response_id: str | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class ActiveAnalysis:
    chat_id: int
    analysis_id: str
    user_id: int
    question: str
    started_at: datetime
    lease_until: datetime  # renewed by the running instance; stale after it passes
    thread_id: int | None = None  # forum topic to report into
    progress_message_id: int | None = None
    language: str = DEFAULT_LANGUAGE


@dataclass(frozen=True, slots=True)
class QuotaCheck:
    allowed: bool
    user_count: int  # analyses today, including this one when allowed
    chat_count: int
    limited_by: str | None = None  # "user" or "chat" when refused


@dataclass(frozen=True, slots=True)
class UsageTotals:
    analyses: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    # Distinct users and chats with any activity (a counted analysis or recorded tokens);
    # filled only by `total_usage` (0 in `user_usage`).
    users: int = 0
    chats: int = 0


@dataclass(frozen=True, slots=True)
class FollowUps:
    """The follow-up questions offered under one answer (its buttons carry only the
    analysis id and an index)."""

    chat_id: int
    analysis_id: str
    questions: tuple[str, ...]


FOLLOW_UPS_KEPT = 20
"""Follow-up sets kept per chat (the newest); older buttons are answered as outdated."""

DATASET_SCOPE = "dataset"


def remote_scope(chat_id: int, dataset_id: str | None) -> str:
    """The remote-file index scope of a file: remote copies are reused within one scope.

    A user's own upload is private to its chat ("chat:<chat_id>"); a bundled dataset
    ("dataset_id" set) has one remote copy shared by every chat ("dataset"). The engine's
    `DataFile.scope` and `Store.list_files` both follow this rule.
    """
    return DATASET_SCOPE if dataset_id else f"chat:{chat_id}"


class Store(Protocol):
    """Async state store. All times are timezone-aware UTC datetimes."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the backend answers (used by /healthz)."""
        ...

    # ---- files --------------------------------------------------------------------------
    async def add_file(self, record: StoredFile) -> None: ...

    async def list_files(self, chat_id: int) -> list[StoredFile]:
        """The chat's files, oldest first, with remote ids filled in."""
        ...

    async def get_file(self, chat_id: int, file_key: str) -> StoredFile | None: ...

    async def remove_file(self, chat_id: int, file_key: str) -> StoredFile | None:
        """Forget one file; returns the removed record (None when it was not there)."""
        ...

    # ---- remote copies (the engine's RemoteFileIndex) -------------------------------------
    async def get_remote_file(self, scope: str, sha256: str) -> str | None: ...

    async def set_remote_file(self, scope: str, sha256: str, file_id: str) -> None: ...

    async def forget_remote_file(self, scope: str, sha256: str) -> None: ...

    # ---- conversation and preferences -----------------------------------------------------
    async def get_conversation(self, chat_id: int) -> Conversation: ...

    async def set_last_response(self, chat_id: int, response_id: str | None) -> None:
        """Remember the last completed turn (None starts the next turn fresh)."""
        ...

    async def reset_chat(self, chat_id: int) -> list[StoredFile]:
        """Forget the chat's files and conversation (its follow-ups too); returns the
        removed files. The chat's settings stay."""
        ...

    async def set_follow_ups(self, record: FollowUps) -> None:
        """Remember the follow-ups of one answer; only the newest `FOLLOW_UPS_KEPT` sets
        of a chat are kept."""
        ...

    async def get_follow_ups(self, chat_id: int, analysis_id: str) -> FollowUps | None: ...

    async def get_chat_settings(self, chat_id: int) -> dict[str, str]:
        """The chat's settings as stored (name -> value); the services give them meaning."""
        ...

    async def set_chat_setting(self, chat_id: int, name: str, value: str | None) -> None:
        """Set one setting of a chat (None forgets it: the default applies again)."""
        ...

    async def get_language(self, user_id: int) -> str | None: ...

    async def set_language(self, user_id: int, language: str) -> None: ...

    async def idle_chats(self, before: datetime) -> list[int]:
        """Chats that have files and were last used (file added or turn run) before `before`."""
        ...

    # ---- one analysis per chat ------------------------------------------------------------
    async def try_begin_analysis(self, analysis: ActiveAnalysis) -> bool:
        """Atomically claim the chat; False when another analysis holds it (and its lease
        has not expired). Holds across processes sharing the backend."""
        ...

    async def renew_analysis(self, chat_id: int, analysis_id: str, lease_until: datetime) -> bool:
        """Extend the lease; False when the claim is gone (someone took it over)."""
        ...

    async def update_analysis(
        self, chat_id: int, analysis_id: str, *, progress_message_id: int | None
    ) -> None: ...

    async def get_analysis(self, chat_id: int) -> ActiveAnalysis | None: ...

    async def end_analysis(self, chat_id: int, analysis_id: str) -> None:
        """Release the claim if `analysis_id` still holds it."""
        ...

    async def claim_stale_analyses(self, now: datetime) -> list[ActiveAnalysis]:
        """Atomically remove and return analyses whose lease expired before `now`
        (the process running them died or was stopped). Each is returned to exactly one
        caller, so exactly one instance tells the chat."""
        ...

    # ---- quotas and usage ---------------------------------------------------------------
    async def try_consume_quota(
        self, day: date, user_id: int, chat_id: int, user_limit: int | None, chat_limit: int | None
    ) -> QuotaCheck:
        """Atomically count one analysis for the user and the chat on `day`, unless that
        would exceed a limit (None = unlimited)."""
        ...

    async def refund_quota(self, day: date, user_id: int, chat_id: int) -> None:
        """Undo one count (the analysis never reached the model)."""
        ...

    async def record_usage(
        self, day: date, user_id: int, chat_id: int, input_tokens: int, output_tokens: int
    ) -> None: ...

    async def user_usage(self, day: date, user_id: int) -> UsageTotals: ...

    async def total_usage(self, first_day: date, last_day: date) -> UsageTotals:
        """Totals across all users and chats for the inclusive range of days."""
        ...
