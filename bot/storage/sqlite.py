"""SQLite implementation of `Store`: one file, one connection, WAL mode.

Good for one bot process (several processes sharing the file also stay correct: every
claim and quota check is enforced by the database, not by in-process locks).

Times are stored as UTC epoch seconds (REAL), days as ISO dates (TEXT), and returned as
timezone-aware UTC datetimes. The schema is created and migrated at `open()`: the
database's `PRAGMA user_version` is the number of applied steps in `MIGRATIONS`. To change
the schema, append a step; never edit or reorder a step that has shipped.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.storage.base import (
    DATASET_SCOPE,
    FOLLOW_UPS_KEPT,
    ActiveAnalysis,
    Conversation,
    FollowUps,
    QuotaCheck,
    StoredFile,
    UsageTotals,
    remote_scope,
)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000

# Each step is a sequence of SQL statements applied in one transaction; step N (1-based)
# brings the database to user_version N.
MIGRATIONS: list[Sequence[str]] = [
    # 1: initial schema
    (
        """
        CREATE TABLE files (
            chat_id INTEGER NOT NULL,
            file_key TEXT NOT NULL,
            original_name TEXT NOT NULL,
            stored_name TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            rows INTEGER NOT NULL,
            columns TEXT NOT NULL,          -- JSON [[name, dtype], ...]
            path TEXT NOT NULL,
            added_at REAL NOT NULL,         -- epoch seconds, UTC
            dataset_id TEXT,
            PRIMARY KEY (chat_id, file_key)
        )
        """,
        """
        CREATE TABLE remote_files (
            scope TEXT NOT NULL,            -- see base.remote_scope
            sha256 TEXT NOT NULL,
            file_id TEXT NOT NULL,
            uploaded_at REAL NOT NULL,
            PRIMARY KEY (scope, sha256)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE conversations (
            chat_id INTEGER PRIMARY KEY,
            last_response_id TEXT,
            last_used_at REAL
        )
        """,
        """
        CREATE TABLE user_languages (
            user_id INTEGER PRIMARY KEY,
            language TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE active_analyses (
            chat_id INTEGER PRIMARY KEY,    -- one analysis per chat
            analysis_id TEXT NOT NULL,
            user_id INTEGER NOT NULL,
            question TEXT NOT NULL,
            started_at REAL NOT NULL,
            lease_until REAL NOT NULL,
            thread_id INTEGER,
            progress_message_id INTEGER,
            language TEXT NOT NULL
        )
        """,
        "CREATE INDEX active_analyses_lease ON active_analyses (lease_until)",
        """
        CREATE TABLE daily_counters (
            day TEXT NOT NULL,              -- YYYY-MM-DD
            user_id INTEGER NOT NULL,
            chat_id INTEGER NOT NULL,
            analyses INTEGER NOT NULL DEFAULT 0,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (day, user_id, chat_id)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX daily_counters_chat ON daily_counters (day, chat_id)",
    ),
    # 2: per-chat settings and the follow-up questions offered under answers
    (
        """
        CREATE TABLE chat_settings (
            chat_id INTEGER NOT NULL,
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (chat_id, name)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE follow_ups (
            chat_id INTEGER NOT NULL,
            analysis_id TEXT NOT NULL,
            questions TEXT NOT NULL,        -- JSON ["...", ...]
            created_at REAL NOT NULL,
            PRIMARY KEY (chat_id, analysis_id)
        )
        """,
    ),
    # 3: how to read each file (JSON kept for the files service)
    ("ALTER TABLE files ADD COLUMN reading TEXT NOT NULL DEFAULT ''",),
]


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer version of the bot."""


def _ts(value: datetime) -> float:
    """Epoch seconds of a datetime (naive datetimes are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _now() -> float:
    return datetime.now(UTC).timestamp()


_FILE_COLUMNS = (
    "chat_id, file_key, original_name, stored_name, size, sha256, rows, columns, path, "
    "added_at, dataset_id, reading"
)
_ANALYSIS_COLUMNS = (
    "chat_id, analysis_id, user_id, question, started_at, lease_until, thread_id, "
    "progress_message_id, language"
)

# Statements assembled once from the constant column lists above (never from input).
_INSERT_FILE = f"INSERT OR REPLACE INTO files ({_FILE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"  # noqa: S608
_FILES_WITH_REMOTE = (
    "SELECT f.chat_id, f.file_key, f.original_name, f.stored_name, f.size, f.sha256, f.rows,"
    " f.columns, f.path, f.added_at, f.dataset_id, f.reading, r.file_id, r.uploaded_at"
    " FROM files f"
    # the remote copy is looked up in the scope `remote_scope(chat_id, dataset_id)`
    " LEFT JOIN remote_files r ON r.sha256 = f.sha256 AND r.scope = CASE"
    " WHEN f.dataset_id IS NOT NULL AND f.dataset_id != '' THEN 'dataset'"
    " ELSE 'chat:' || f.chat_id END"
)
assert DATASET_SCOPE == "dataset"
_DELETE_FILE = f"DELETE FROM files WHERE chat_id = ? AND file_key = ? RETURNING {_FILE_COLUMNS}"  # noqa: S608
_CHAT_FILES = f"SELECT {_FILE_COLUMNS} FROM files WHERE chat_id = ? ORDER BY added_at, rowid"  # noqa: S608
_BEGIN_ANALYSIS = (
    f"INSERT INTO active_analyses ({_ANALYSIS_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)"  # noqa: S608
    " ON CONFLICT (chat_id) DO UPDATE SET"
    " analysis_id = excluded.analysis_id, user_id = excluded.user_id,"
    " question = excluded.question, started_at = excluded.started_at,"
    " lease_until = excluded.lease_until, thread_id = excluded.thread_id,"
    " progress_message_id = excluded.progress_message_id, language = excluded.language"
    " WHERE active_analyses.lease_until < ?"  # only an expired lease is taken over
    " RETURNING analysis_id"
)
_GET_ANALYSIS = f"SELECT {_ANALYSIS_COLUMNS} FROM active_analyses WHERE chat_id = ?"  # noqa: S608
_CLAIM_STALE = f"DELETE FROM active_analyses WHERE lease_until < ? RETURNING {_ANALYSIS_COLUMNS}"  # noqa: S608


def _file_from_row(row: sqlite3.Row | tuple[Any, ...]) -> StoredFile:
    return StoredFile(
        chat_id=row[0],
        file_key=row[1],
        original_name=row[2],
        stored_name=row[3],
        size=row[4],
        sha256=row[5],
        rows=row[6],
        columns=tuple((str(n), str(t)) for n, t in json.loads(row[7])),
        path=row[8],
        added_at=_dt(row[9]),  # type: ignore[arg-type]
        dataset_id=row[10],
        reading=row[11] or "",
    )


def _analysis_from_row(row: sqlite3.Row | tuple[Any, ...]) -> ActiveAnalysis:
    return ActiveAnalysis(
        chat_id=row[0],
        analysis_id=row[1],
        user_id=row[2],
        question=row[3],
        started_at=_dt(row[4]),  # type: ignore[arg-type]
        lease_until=_dt(row[5]),  # type: ignore[arg-type]
        thread_id=row[6],
        progress_message_id=row[7],
        language=row[8],
    )


async def _enable_wal(db: aiosqlite.Connection, attempts: int = 50) -> None:
    """Switch to WAL. On a brand-new file, connections opening at once race for the switch,
    and SQLite answers the losers "database is locked" at once (its busy handler does not
    cover a journal-mode change), so retry briefly."""
    for attempt in range(attempts):
        try:
            await db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.02 * (attempt + 1))


class SqliteStore:
    """`Store` on a SQLite file (created with its directory if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        # One connection is shared by all coroutines: statements of one coroutine's
        # transaction must not interleave with another's, so every use holds this lock.
        self._lock = asyncio.Lock()

    # ---- lifecycle ------------------------------------------------------------------------
    async def open(self) -> None:
        if self._db is not None:
            return
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        db = await aiosqlite.connect(
            self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
        )
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await _enable_wal(db)
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            await _migrate(db)
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            async with self._lock:
                await db.close()

    async def ping(self) -> bool:
        try:
            rows = await self._fetchall("SELECT 1")
        except Exception:
            return False
        return rows == [(1,)]

    async def schema_version(self) -> int:
        rows = await self._fetchall("PRAGMA user_version")
        return int(rows[0][0])

    # ---- plumbing -------------------------------------------------------------------------
    @property
    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("SqliteStore is not open")
        return self._db

    async def _fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement in autocommit mode (atomic by itself)."""
        async with self._lock:
            rows = await self._conn.execute_fetchall(sql, tuple(params))
        return [tuple(r) for r in rows]

    async def _execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """One statement in autocommit mode; returns the number of changed rows."""
        async with self._lock, self._conn.execute(sql, tuple(params)) as cursor:
            return cursor.rowcount

    async def _transaction(self, body: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `body` in BEGIN IMMEDIATE ... COMMIT (rolled back on error).

        BEGIN IMMEDIATE takes the write lock up front, so concurrent writers (this or other
        processes) queue on busy_timeout instead of failing on a stale read snapshot. The
        transaction is shielded from cancellation so it never stays half-open on the shared
        connection.
        """

        async def run() -> T:
            async with self._lock:
                db = self._conn
                await db.execute("BEGIN IMMEDIATE")
                try:
                    result = await body(db)
                except BaseException:
                    await db.execute("ROLLBACK")
                    raise
                await db.execute("COMMIT")
                return result

        task = asyncio.create_task(run())
        # If the caller is cancelled, the transaction still finishes; its outcome is then
        # nobody's to read, so mark any error as seen.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(task)

    # ---- files ----------------------------------------------------------------------------
    async def add_file(self, record: StoredFile) -> None:
        await self._execute(
            _INSERT_FILE,
            (
                record.chat_id,
                record.file_key,
                record.original_name,
                record.stored_name,
                record.size,
                record.sha256,
                record.rows,
                json.dumps([list(c) for c in record.columns], ensure_ascii=False),
                record.path,
                _ts(record.added_at),
                record.dataset_id,
                record.reading,
            ),
        )

    async def list_files(self, chat_id: int) -> list[StoredFile]:
        rows = await self._fetchall(
            _FILES_WITH_REMOTE + " WHERE f.chat_id = ? ORDER BY f.added_at, f.rowid",
            (chat_id,),
        )
        return [self._with_remote(_file_from_row(r), r[12], r[13]) for r in rows]

    async def get_file(self, chat_id: int, file_key: str) -> StoredFile | None:
        rows = await self._fetchall(
            _FILES_WITH_REMOTE + " WHERE f.chat_id = ? AND f.file_key = ?", (chat_id, file_key)
        )
        return (
            self._with_remote(_file_from_row(rows[0]), rows[0][12], rows[0][13]) if rows else None
        )

    @staticmethod
    def _with_remote(record: StoredFile, file_id: str | None, at: float | None) -> StoredFile:
        if file_id is None:
            return record
        return replace(record, remote_id=file_id, remote_uploaded_at=_dt(at))

    async def _fill_remote(
        self, db: aiosqlite.Connection, files: list[StoredFile]
    ) -> list[StoredFile]:
        out = []
        for record in files:
            rows = await db.execute_fetchall(
                "SELECT file_id, uploaded_at FROM remote_files WHERE scope = ? AND sha256 = ?",
                (remote_scope(record.chat_id, record.dataset_id), record.sha256),
            )
            rows = list(rows)
            out.append(self._with_remote(record, rows[0][0], rows[0][1]) if rows else record)
        return out

    async def remove_file(self, chat_id: int, file_key: str) -> StoredFile | None:
        async def body(db: aiosqlite.Connection) -> StoredFile | None:
            rows = list(await db.execute_fetchall(_DELETE_FILE, (chat_id, file_key)))
            if not rows:
                return None
            return (await self._fill_remote(db, [_file_from_row(rows[0])]))[0]

        return await self._transaction(body)

    # ---- remote copies --------------------------------------------------------------------
    async def get_remote_file(self, scope: str, sha256: str) -> str | None:
        rows = await self._fetchall(
            "SELECT file_id FROM remote_files WHERE scope = ? AND sha256 = ?", (scope, sha256)
        )
        return rows[0][0] if rows else None

    async def set_remote_file(self, scope: str, sha256: str, file_id: str) -> None:
        await self._execute(
            "INSERT INTO remote_files (scope, sha256, file_id, uploaded_at) VALUES (?,?,?,?)"
            " ON CONFLICT (scope, sha256) DO UPDATE SET"
            " file_id = excluded.file_id, uploaded_at = excluded.uploaded_at",
            (scope, sha256, file_id, _now()),
        )

    async def forget_remote_file(self, scope: str, sha256: str) -> None:
        await self._execute(
            "DELETE FROM remote_files WHERE scope = ? AND sha256 = ?", (scope, sha256)
        )

    # ---- conversation and preferences -----------------------------------------------------
    async def get_conversation(self, chat_id: int) -> Conversation:
        rows = await self._fetchall(
            "SELECT last_response_id, last_used_at FROM conversations WHERE chat_id = ?",
            (chat_id,),
        )
        if not rows:
            return Conversation(chat_id=chat_id, last_response_id=None, last_used_at=None)
        return Conversation(
            chat_id=chat_id, last_response_id=rows[0][0], last_used_at=_dt(rows[0][1])
        )

    async def set_last_response(self, chat_id: int, response_id: str | None) -> None:
        await self._execute(
            "INSERT INTO conversations (chat_id, last_response_id, last_used_at) VALUES (?,?,?)"
            " ON CONFLICT (chat_id) DO UPDATE SET"
            " last_response_id = excluded.last_response_id, last_used_at = excluded.last_used_at",
            (chat_id, response_id, _now()),
        )

    async def reset_chat(self, chat_id: int) -> list[StoredFile]:
        async def body(db: aiosqlite.Connection) -> list[StoredFile]:
            rows = await db.execute_fetchall(_CHAT_FILES, (chat_id,))
            files = [_file_from_row(r) for r in rows]
            files = await self._fill_remote(db, files)
            await db.execute("DELETE FROM files WHERE chat_id = ?", (chat_id,))
            await db.execute("DELETE FROM conversations WHERE chat_id = ?", (chat_id,))
            await db.execute("DELETE FROM follow_ups WHERE chat_id = ?", (chat_id,))
            return files

        return await self._transaction(body)

    async def set_follow_ups(self, record: FollowUps) -> None:
        async def body(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT OR REPLACE INTO follow_ups (chat_id, analysis_id, questions, created_at)"
                " VALUES (?,?,?,?)",
                (
                    record.chat_id,
                    record.analysis_id,
                    json.dumps(list(record.questions), ensure_ascii=False),
                    _now(),
                ),
            )
            await db.execute(
                "DELETE FROM follow_ups WHERE chat_id = ? AND rowid NOT IN"
                " (SELECT rowid FROM follow_ups WHERE chat_id = ?"
                "  ORDER BY created_at DESC, rowid DESC LIMIT ?)",
                (record.chat_id, record.chat_id, FOLLOW_UPS_KEPT),
            )

        await self._transaction(body)

    async def get_follow_ups(self, chat_id: int, analysis_id: str) -> FollowUps | None:
        rows = await self._fetchall(
            "SELECT questions FROM follow_ups WHERE chat_id = ? AND analysis_id = ?",
            (chat_id, analysis_id),
        )
        if not rows:
            return None
        questions = tuple(str(q) for q in json.loads(rows[0][0]))
        return FollowUps(chat_id=chat_id, analysis_id=analysis_id, questions=questions)

    async def get_chat_settings(self, chat_id: int) -> dict[str, str]:
        rows = await self._fetchall(
            "SELECT name, value FROM chat_settings WHERE chat_id = ?", (chat_id,)
        )
        return {str(name): str(value) for name, value in rows}

    async def set_chat_setting(self, chat_id: int, name: str, value: str | None) -> None:
        if value is None:
            await self._execute(
                "DELETE FROM chat_settings WHERE chat_id = ? AND name = ?", (chat_id, name)
            )
            return
        await self._execute(
            "INSERT INTO chat_settings (chat_id, name, value) VALUES (?,?,?)"
            " ON CONFLICT (chat_id, name) DO UPDATE SET value = excluded.value",
            (chat_id, name, value),
        )

    async def get_language(self, user_id: int) -> str | None:
        rows = await self._fetchall(
            "SELECT language FROM user_languages WHERE user_id = ?", (user_id,)
        )
        return rows[0][0] if rows else None

    async def set_language(self, user_id: int, language: str) -> None:
        await self._execute(
            "INSERT INTO user_languages (user_id, language) VALUES (?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET language = excluded.language",
            (user_id, language),
        )

    async def idle_chats(self, before: datetime) -> list[int]:
        rows = await self._fetchall(
            "SELECT f.chat_id FROM files f LEFT JOIN conversations c ON c.chat_id = f.chat_id"
            " GROUP BY f.chat_id"
            " HAVING max(max(f.added_at), coalesce(max(c.last_used_at), 0)) < ?"
            " ORDER BY f.chat_id",
            (_ts(before),),
        )
        return [r[0] for r in rows]

    # ---- one analysis per chat ------------------------------------------------------------
    async def try_begin_analysis(self, analysis: ActiveAnalysis) -> bool:
        # One statement: insert, or take over a row whose lease has expired. The database
        # decides; RETURNING yields a row only when this call got the chat.
        rows = await self._fetchall(
            _BEGIN_ANALYSIS,
            (
                analysis.chat_id,
                analysis.analysis_id,
                analysis.user_id,
                analysis.question,
                _ts(analysis.started_at),
                _ts(analysis.lease_until),
                analysis.thread_id,
                analysis.progress_message_id,
                analysis.language,
                _now(),
            ),
        )
        return bool(rows) and rows[0][0] == analysis.analysis_id

    async def renew_analysis(self, chat_id: int, analysis_id: str, lease_until: datetime) -> bool:
        changed = await self._execute(
            "UPDATE active_analyses SET lease_until = ? WHERE chat_id = ? AND analysis_id = ?",
            (_ts(lease_until), chat_id, analysis_id),
        )
        return changed == 1

    async def update_analysis(
        self, chat_id: int, analysis_id: str, *, progress_message_id: int | None
    ) -> None:
        await self._execute(
            "UPDATE active_analyses SET progress_message_id = ?"
            " WHERE chat_id = ? AND analysis_id = ?",
            (progress_message_id, chat_id, analysis_id),
        )

    async def get_analysis(self, chat_id: int) -> ActiveAnalysis | None:
        rows = await self._fetchall(_GET_ANALYSIS, (chat_id,))
        return _analysis_from_row(rows[0]) if rows else None

    async def end_analysis(self, chat_id: int, analysis_id: str) -> None:
        await self._execute(
            "DELETE FROM active_analyses WHERE chat_id = ? AND analysis_id = ?",
            (chat_id, analysis_id),
        )

    async def claim_stale_analyses(self, now: datetime) -> list[ActiveAnalysis]:
        # DELETE ... RETURNING is one write: a row is returned only to the caller that
        # deleted it, whichever process or connection races for it.
        rows = await self._fetchall(_CLAIM_STALE, (_ts(now),))
        claimed = [_analysis_from_row(r) for r in rows]
        return sorted(claimed, key=lambda a: (a.lease_until, a.chat_id))

    # ---- quotas and usage -----------------------------------------------------------------
    async def try_consume_quota(
        self, day: date, user_id: int, chat_id: int, user_limit: int | None, chat_limit: int | None
    ) -> QuotaCheck:
        d = day.isoformat()

        async def body(db: aiosqlite.Connection) -> QuotaCheck:
            rows = list(
                await db.execute_fetchall(
                    "SELECT"
                    " (SELECT coalesce(sum(analyses), 0) FROM daily_counters"
                    "   WHERE day = ? AND user_id = ?),"
                    " (SELECT coalesce(sum(analyses), 0) FROM daily_counters"
                    "   WHERE day = ? AND chat_id = ?)",
                    (d, user_id, d, chat_id),
                )
            )
            user_count, chat_count = int(rows[0][0]), int(rows[0][1])
            if user_limit is not None and user_count + 1 > user_limit:
                return QuotaCheck(False, user_count, chat_count, limited_by="user")
            if chat_limit is not None and chat_count + 1 > chat_limit:
                return QuotaCheck(False, user_count, chat_count, limited_by="chat")
            await db.execute(
                "INSERT INTO daily_counters (day, user_id, chat_id, analyses) VALUES (?,?,?,1)"
                " ON CONFLICT (day, user_id, chat_id) DO UPDATE SET analyses = analyses + 1",
                (d, user_id, chat_id),
            )
            return QuotaCheck(True, user_count + 1, chat_count + 1)

        return await self._transaction(body)

    async def refund_quota(self, day: date, user_id: int, chat_id: int) -> None:
        await self._execute(
            "UPDATE daily_counters SET analyses = analyses - 1"
            " WHERE day = ? AND user_id = ? AND chat_id = ? AND analyses > 0",
            (day.isoformat(), user_id, chat_id),
        )

    async def record_usage(
        self, day: date, user_id: int, chat_id: int, input_tokens: int, output_tokens: int
    ) -> None:
        await self._execute(
            "INSERT INTO daily_counters (day, user_id, chat_id, input_tokens, output_tokens)"
            " VALUES (?,?,?,?,?)"
            " ON CONFLICT (day, user_id, chat_id) DO UPDATE SET"
            " input_tokens = input_tokens + excluded.input_tokens,"
            " output_tokens = output_tokens + excluded.output_tokens",
            (day.isoformat(), user_id, chat_id, input_tokens, output_tokens),
        )

    async def user_usage(self, day: date, user_id: int) -> UsageTotals:
        rows = await self._fetchall(
            "SELECT coalesce(sum(analyses), 0), coalesce(sum(input_tokens), 0),"
            " coalesce(sum(output_tokens), 0) FROM daily_counters WHERE day = ? AND user_id = ?",
            (day.isoformat(), user_id),
        )
        a, i, o = rows[0]
        return UsageTotals(analyses=int(a), input_tokens=int(i), output_tokens=int(o))

    async def total_usage(self, first_day: date, last_day: date) -> UsageTotals:
        rows = await self._fetchall(
            "SELECT coalesce(sum(analyses), 0), coalesce(sum(input_tokens), 0),"
            " coalesce(sum(output_tokens), 0),"
            " count(DISTINCT CASE WHEN active THEN user_id END),"
            " count(DISTINCT CASE WHEN active THEN chat_id END)"
            " FROM (SELECT *, (analyses > 0 OR input_tokens > 0 OR output_tokens > 0) AS active"
            "       FROM daily_counters WHERE day BETWEEN ? AND ?)",
            (first_day.isoformat(), last_day.isoformat()),
        )
        a, i, o, u, c = rows[0]
        return UsageTotals(
            analyses=int(a), input_tokens=int(i), output_tokens=int(o), users=int(u), chats=int(c)
        )


async def _migrate(db: aiosqlite.Connection) -> None:
    """Bring the schema to len(MIGRATIONS), one step per transaction.

    Each step re-reads the version inside BEGIN IMMEDIATE, so two processes opening the
    same new file at once apply every step exactly once.
    """
    latest = len(MIGRATIONS)
    while True:
        await db.execute("BEGIN IMMEDIATE")
        try:
            (row,) = await db.execute_fetchall("PRAGMA user_version")
            version = int(row[0])
            if version > latest:
                raise SchemaTooNewError(
                    f"the state database has schema version {version}, newer than this "
                    f"version of the bot supports ({latest}); upgrade the bot"
                )
            if version == latest:
                await db.execute("COMMIT")
                return
            for statement in MIGRATIONS[version]:
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        await db.execute("COMMIT")
