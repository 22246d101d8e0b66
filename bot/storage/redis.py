"""Redis implementation of `Store`, for several bot instances sharing state.

Every multi-key or check-then-write operation is one Lua script (atomic on the server),
so claims, quotas and stale-analysis hand-over hold across instances. Needs a single
Redis server (not Cluster: some scripts touch keys they compute).

Key layout (`p` = prefix, default "dab:"; times are UTC epoch seconds, days YYYY-MM-DD):

    p files:<chat>               hash  file_key -> JSON StoredFile (without remote fields,
                                       plus "seq" for a stable order of equal times)
    p fileseq                    str   counter for "seq"
    p activity                   zset  chat -> last activity (latest of its files'
                                       added_at and the conversation's last_used_at)
    p conv:<chat>                hash  response_id, last_used_at
    p remote:<scope>             hash  sha256 -> JSON {"id": file_id, "at": uploaded_at}
    p lang                       hash  user_id -> language
    p settings:<chat>            hash  setting name -> value
    p followups:<chat>           list  JSON {"id": analysis_id, "q": [questions]},
                                       newest first, at most FOLLOW_UPS_KEPT
    p analysis:<chat>            hash  analysis_id, user_id, question, started_at,
                                       lease_until, language[, thread_id,
                                       progress_message_id]
    p leases                     zset  chat -> lease_until of its analysis
    p day:<day>                  hash  analyses, input_tokens, output_tokens (all users)
    p day:<day>:user:<user>      hash  analyses, input_tokens, output_tokens,
                                       chat:<chat> -> analyses counted in that chat
    p day:<day>:chat:<chat>      hash  analyses, input_tokens, output_tokens
    p day:<day>:users            set   users with activity that day
    p day:<day>:chats            set   chats with activity that day

The day:* keys expire COUNTER_TTL_SECONDS (~40 days) after their last update.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from bot.config import DEFAULT_LANGUAGE
from bot.storage.base import (
    FOLLOW_UPS_KEPT,
    ActiveAnalysis,
    Conversation,
    FollowUps,
    QuotaCheck,
    StoredFile,
    UsageTotals,
    remote_scope,
)

COUNTER_TTL_SECONDS = 40 * 86400
POOL_TIMEOUT_SECONDS = 20.0
CONNECT_TIMEOUT_SECONDS = 5.0

_TRY_BEGIN = """
-- KEYS: analysis hash, leases zset
-- ARGV: now, chat, lease_until, field, value, field, value, ...
local lease = redis.call('HGET', KEYS[1], 'lease_until')
if lease and tonumber(lease) >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
return 1
"""

_RENEW = """
-- KEYS: analysis hash, leases zset; ARGV: analysis_id, lease_until, chat
if redis.call('HGET', KEYS[1], 'analysis_id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

_UPDATE = """
-- KEYS: analysis hash; ARGV: analysis_id, progress_message_id ('' = none)
if redis.call('HGET', KEYS[1], 'analysis_id') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], 'progress_message_id')
else
  redis.call('HSET', KEYS[1], 'progress_message_id', ARGV[2])
end
return 1
"""

_END = """
-- KEYS: analysis hash, leases zset; ARGV: analysis_id, chat
if redis.call('HGET', KEYS[1], 'analysis_id') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""

_CLAIM_STALE = """
-- KEYS: leases zset; ARGV: '(' .. now, analysis key prefix
local chats = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local out = {}
for _, chat in ipairs(chats) do
  local key = ARGV[2] .. chat
  local record = redis.call('HGETALL', key)
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], chat)
  if #record > 0 then
    table.insert(out, chat)
    table.insert(out, record)
  end
end
return out
"""

# Recomputes a chat's activity from what remains (files' added_at, conversation).
_ACTIVITY_LUA = """
local function refresh_activity(files_key, conv_key, activity_key, chat)
  local latest = nil
  for _, raw in ipairs(redis.call('HVALS', files_key)) do
    local at = cjson.decode(raw)['added_at']
    if latest == nil or at > latest then latest = at end
  end
  if latest == nil then
    redis.call('ZREM', activity_key, chat)
    return
  end
  local used = tonumber(redis.call('HGET', conv_key, 'last_used_at') or '0')
  if used > latest then latest = used end
  redis.call('ZADD', activity_key, latest, chat)
end
"""

_REMOVE_FILE = (
    _ACTIVITY_LUA
    + """
-- KEYS: files hash, conv hash, activity zset; ARGV: file_key, chat
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
refresh_activity(KEYS[1], KEYS[2], KEYS[3], ARGV[2])
return value
"""
)

_RESET_CHAT = """
-- KEYS: files hash, conv hash, activity zset, follow-ups list; ARGV: chat
local values = redis.call('HVALS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
redis.call('ZREM', KEYS[3], ARGV[1])
return values
"""

_SET_FOLLOW_UPS = """
-- KEYS: follow-ups list; ARGV: analysis_id, JSON record, how many to keep
for _, raw in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if cjson.decode(raw)['id'] == ARGV[1] then redis.call('LREM', KEYS[1], 0, raw) end
end
redis.call('LPUSH', KEYS[1], ARGV[2])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[3]) - 1)
return 1
"""

_IDLE_CHATS = """
-- KEYS: activity zset; ARGV: '(' .. before, files key prefix
local chats = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local out = {}
for _, chat in ipairs(chats) do
  if redis.call('EXISTS', ARGV[2] .. chat) == 1 then
    table.insert(out, chat)
  else
    redis.call('ZREM', KEYS[1], chat)
  end
end
return out
"""

_CONSUME = """
-- KEYS: user hash, chat hash, day hash, day users set, day chats set
-- ARGV: user_limit (-1 = none), chat_limit (-1 = none), user_id, chat_id, ttl
local u = tonumber(redis.call('HGET', KEYS[1], 'analyses') or '0')
local c = tonumber(redis.call('HGET', KEYS[2], 'analyses') or '0')
local user_limit = tonumber(ARGV[1])
local chat_limit = tonumber(ARGV[2])
if user_limit >= 0 and u + 1 > user_limit then return {0, u, c, 'user'} end
if chat_limit >= 0 and c + 1 > chat_limit then return {0, u, c, 'chat'} end
redis.call('HINCRBY', KEYS[1], 'analyses', 1)
redis.call('HINCRBY', KEYS[1], 'chat:' .. ARGV[4], 1)
redis.call('HINCRBY', KEYS[2], 'analyses', 1)
redis.call('HINCRBY', KEYS[3], 'analyses', 1)
redis.call('SADD', KEYS[4], ARGV[3])
redis.call('SADD', KEYS[5], ARGV[4])
for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
return {1, u + 1, c + 1}
"""

_REFUND = """
-- KEYS: user hash, chat hash, day hash, day users set, day chats set
-- ARGV: user_id, chat_id
local field = 'chat:' .. ARGV[2]
if tonumber(redis.call('HGET', KEYS[1], field) or '0') <= 0 then return 0 end
redis.call('HINCRBY', KEYS[1], field, -1)
redis.call('HINCRBY', KEYS[1], 'analyses', -1)
redis.call('HINCRBY', KEYS[2], 'analyses', -1)
redis.call('HINCRBY', KEYS[3], 'analyses', -1)
local function idle(key)
  local values = redis.call('HMGET', key, 'analyses', 'input_tokens', 'output_tokens')
  for _, v in ipairs(values) do
    if v and tonumber(v) > 0 then return false end
  end
  return true
end
if idle(KEYS[1]) then redis.call('SREM', KEYS[4], ARGV[1]) end
if idle(KEYS[2]) then redis.call('SREM', KEYS[5], ARGV[2]) end
return 1
"""


def _ts(value: datetime) -> float:
    """Epoch seconds of a datetime (naive datetimes are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _dt(value: str | float) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


def _now() -> float:
    return datetime.now(UTC).timestamp()


def _days(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


class RedisStore:
    """`Store` on a Redis server; `url` is a redis:// or rediss:// URL (may hold a password:
    it is never logged)."""

    def __init__(self, url: str, prefix: str = "dab:", *, max_connections: int = 32) -> None:
        self._url = url
        self.prefix = prefix
        self.max_connections = max_connections
        self._client: aioredis.Redis | None = None

    def __repr__(self) -> str:  # never show the URL: it may carry a password
        return f"RedisStore(prefix={self.prefix!r})"

    # ---- lifecycle ------------------------------------------------------------------------
    async def open(self) -> None:
        if self._client is not None:
            return
        # A blocking pool: a burst of callers waits for a free connection instead of
        # failing with "Too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            self._url,
            max_connections=self.max_connections,
            timeout=POOL_TIMEOUT_SECONDS,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            decode_responses=True,
        )
        client = aioredis.Redis.from_pool(pool)
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
        self._client = client
        reg = client.register_script
        self._try_begin = reg(_TRY_BEGIN)
        self._renew = reg(_RENEW)
        self._update = reg(_UPDATE)
        self._end = reg(_END)
        self._claim_stale = reg(_CLAIM_STALE)
        self._remove_file = reg(_REMOVE_FILE)
        self._reset_chat = reg(_RESET_CHAT)
        self._set_follow_ups = reg(_SET_FOLLOW_UPS)
        self._idle_chats = reg(_IDLE_CHATS)
        self._consume = reg(_CONSUME)
        self._refund = reg(_REFUND)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._r.ping(), CONNECT_TIMEOUT_SECONDS))
        except Exception:
            return False

    @property
    def _r(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("RedisStore is not open")
        return self._client

    # ---- keys -----------------------------------------------------------------------------
    def _k(self, *parts: object) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    def _day_keys(self, day: date, user_id: int, chat_id: int) -> list[str]:
        d = day.isoformat()
        return [
            self._k("day", d, "user", user_id),
            self._k("day", d, "chat", chat_id),
            self._k("day", d),
            self._k("day", d, "users"),
            self._k("day", d, "chats"),
        ]

    # ---- files ----------------------------------------------------------------------------
    @staticmethod
    def _encode_file(record: StoredFile, seq: int) -> str:
        return json.dumps(
            {
                "file_key": record.file_key,
                "original_name": record.original_name,
                "stored_name": record.stored_name,
                "size": record.size,
                "sha256": record.sha256,
                "rows": record.rows,
                "columns": [list(c) for c in record.columns],
                "path": record.path,
                "added_at": _ts(record.added_at),
                "dataset_id": record.dataset_id,
                "reading": record.reading,
                "seq": seq,
            },
            ensure_ascii=False,
        )

    @staticmethod
    def _decode_file(chat_id: int, raw: str) -> tuple[float, int, StoredFile]:
        d = json.loads(raw)
        record = StoredFile(
            chat_id=chat_id,
            file_key=d["file_key"],
            original_name=d["original_name"],
            stored_name=d["stored_name"],
            size=d["size"],
            sha256=d["sha256"],
            rows=d["rows"],
            columns=tuple((str(n), str(t)) for n, t in d["columns"]),
            path=d["path"],
            added_at=_dt(d["added_at"]),
            dataset_id=d.get("dataset_id"),
            reading=d.get("reading", ""),
        )
        return d["added_at"], d.get("seq", 0), record

    async def _with_remote(self, files: Sequence[StoredFile]) -> list[StoredFile]:
        if not files:
            return []
        async with self._r.pipeline(transaction=False) as pipe:
            for f in files:
                pipe.hget(self._k("remote", remote_scope(f.chat_id, f.dataset_id)), f.sha256)
            found = await pipe.execute()
        out = []
        for f, raw in zip(files, found, strict=True):
            if raw:
                remote = json.loads(raw)
                f = replace(f, remote_id=remote["id"], remote_uploaded_at=_dt(remote["at"]))
            out.append(f)
        return out

    def _decode_files(self, chat_id: int, values: Iterable[str]) -> list[StoredFile]:
        decoded = sorted((self._decode_file(chat_id, v) for v in values), key=lambda t: t[:2])
        return [record for _, _, record in decoded]

    async def add_file(self, record: StoredFile) -> None:
        seq = await self._r.incr(self._k("fileseq"))
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._k("files", record.chat_id), record.file_key, self._encode_file(record, seq)
            )
            pipe.zadd(self._k("activity"), {str(record.chat_id): _ts(record.added_at)}, gt=True)
            await pipe.execute()

    async def list_files(self, chat_id: int) -> list[StoredFile]:
        values = await self._r.hvals(self._k("files", chat_id))
        return await self._with_remote(self._decode_files(chat_id, values))

    async def get_file(self, chat_id: int, file_key: str) -> StoredFile | None:
        raw = await self._r.hget(self._k("files", chat_id), file_key)
        if raw is None:
            return None
        return (await self._with_remote(self._decode_files(chat_id, [raw])))[0]

    async def remove_file(self, chat_id: int, file_key: str) -> StoredFile | None:
        raw = await self._remove_file(
            keys=[self._k("files", chat_id), self._k("conv", chat_id), self._k("activity")],
            args=[file_key, chat_id],
        )
        if raw is None:
            return None
        return (await self._with_remote(self._decode_files(chat_id, [raw])))[0]

    # ---- remote copies --------------------------------------------------------------------
    async def get_remote_file(self, scope: str, sha256: str) -> str | None:
        raw = await self._r.hget(self._k("remote", scope), sha256)
        return json.loads(raw)["id"] if raw else None

    async def set_remote_file(self, scope: str, sha256: str, file_id: str) -> None:
        await self._r.hset(
            self._k("remote", scope), sha256, json.dumps({"id": file_id, "at": _now()})
        )

    async def forget_remote_file(self, scope: str, sha256: str) -> None:
        await self._r.hdel(self._k("remote", scope), sha256)

    # ---- conversation and preferences -----------------------------------------------------
    async def get_conversation(self, chat_id: int) -> Conversation:
        response_id, used = await self._r.hmget(
            self._k("conv", chat_id), ["response_id", "last_used_at"]
        )
        return Conversation(
            chat_id=chat_id,
            last_response_id=response_id or None,
            last_used_at=_dt(used) if used else None,
        )

    async def set_last_response(self, chat_id: int, response_id: str | None) -> None:
        key = self._k("conv", chat_id)
        now = _now()
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hset(key, "last_used_at", repr(now))
            if response_id is None:
                pipe.hdel(key, "response_id")
            else:
                pipe.hset(key, "response_id", response_id)
            pipe.zadd(self._k("activity"), {str(chat_id): now}, gt=True)
            await pipe.execute()

    async def reset_chat(self, chat_id: int) -> list[StoredFile]:
        values = await self._reset_chat(
            keys=[
                self._k("files", chat_id),
                self._k("conv", chat_id),
                self._k("activity"),
                self._k("followups", chat_id),
            ],
            args=[chat_id],
        )
        return await self._with_remote(self._decode_files(chat_id, values))

    async def set_follow_ups(self, record: FollowUps) -> None:
        item = {"id": record.analysis_id, "q": list(record.questions)}
        raw = json.dumps(item, ensure_ascii=False)
        await self._set_follow_ups(
            keys=[self._k("followups", record.chat_id)],
            args=[record.analysis_id, raw, FOLLOW_UPS_KEPT],
        )

    async def get_follow_ups(self, chat_id: int, analysis_id: str) -> FollowUps | None:
        for raw in await self._r.lrange(self._k("followups", chat_id), 0, -1):
            item = json.loads(raw)
            if item.get("id") == analysis_id:
                questions = tuple(str(q) for q in item.get("q", ()))
                return FollowUps(chat_id=chat_id, analysis_id=analysis_id, questions=questions)
        return None

    async def get_chat_settings(self, chat_id: int) -> dict[str, str]:
        return dict(await self._r.hgetall(self._k("settings", chat_id)))

    async def set_chat_setting(self, chat_id: int, name: str, value: str | None) -> None:
        key = self._k("settings", chat_id)
        if value is None:
            await self._r.hdel(key, name)
        else:
            await self._r.hset(key, name, value)

    async def get_language(self, user_id: int) -> str | None:
        return await self._r.hget(self._k("lang"), str(user_id))

    async def set_language(self, user_id: int, language: str) -> None:
        await self._r.hset(self._k("lang"), str(user_id), language)

    async def idle_chats(self, before: datetime) -> list[int]:
        chats = await self._idle_chats(
            keys=[self._k("activity")], args=["(" + repr(_ts(before)), self._k("files", "")]
        )
        return sorted(int(c) for c in chats)

    # ---- one analysis per chat ------------------------------------------------------------
    @staticmethod
    def _analysis_fields(a: ActiveAnalysis) -> list[str]:
        fields: dict[str, Any] = {
            "analysis_id": a.analysis_id,
            "user_id": a.user_id,
            "question": a.question,
            "started_at": repr(_ts(a.started_at)),
            "lease_until": repr(_ts(a.lease_until)),
            "language": a.language,
        }
        if a.thread_id is not None:
            fields["thread_id"] = a.thread_id
        if a.progress_message_id is not None:
            fields["progress_message_id"] = a.progress_message_id
        flat: list[str] = []
        for name, value in fields.items():
            flat += [name, str(value)]
        return flat

    @staticmethod
    def _decode_analysis(chat_id: int, h: dict[str, str]) -> ActiveAnalysis:
        thread = h.get("thread_id")
        progress = h.get("progress_message_id")
        return ActiveAnalysis(
            chat_id=chat_id,
            analysis_id=h["analysis_id"],
            user_id=int(h["user_id"]),
            question=h["question"],
            started_at=_dt(h["started_at"]),
            lease_until=_dt(h["lease_until"]),
            thread_id=int(thread) if thread else None,
            progress_message_id=int(progress) if progress else None,
            language=h.get("language", DEFAULT_LANGUAGE),
        )

    async def try_begin_analysis(self, analysis: ActiveAnalysis) -> bool:
        got = await self._try_begin(
            keys=[self._k("analysis", analysis.chat_id), self._k("leases")],
            args=[
                repr(_now()),
                analysis.chat_id,
                repr(_ts(analysis.lease_until)),
                *self._analysis_fields(analysis),
            ],
        )
        return got == 1

    async def renew_analysis(self, chat_id: int, analysis_id: str, lease_until: datetime) -> bool:
        got = await self._renew(
            keys=[self._k("analysis", chat_id), self._k("leases")],
            args=[analysis_id, repr(_ts(lease_until)), chat_id],
        )
        return got == 1

    async def update_analysis(
        self, chat_id: int, analysis_id: str, *, progress_message_id: int | None
    ) -> None:
        await self._update(
            keys=[self._k("analysis", chat_id)],
            args=[analysis_id, "" if progress_message_id is None else progress_message_id],
        )

    async def get_analysis(self, chat_id: int) -> ActiveAnalysis | None:
        h = await self._r.hgetall(self._k("analysis", chat_id))
        return self._decode_analysis(chat_id, h) if h else None

    async def end_analysis(self, chat_id: int, analysis_id: str) -> None:
        await self._end(
            keys=[self._k("analysis", chat_id), self._k("leases")], args=[analysis_id, chat_id]
        )

    async def claim_stale_analyses(self, now: datetime) -> list[ActiveAnalysis]:
        flat = await self._claim_stale(
            keys=[self._k("leases")], args=["(" + repr(_ts(now)), self._k("analysis", "")]
        )
        out = []
        for chat, record in zip(flat[::2], flat[1::2], strict=True):
            h = dict(zip(record[::2], record[1::2], strict=True))
            out.append(self._decode_analysis(int(chat), h))
        return sorted(out, key=lambda a: (a.lease_until, a.chat_id))

    # ---- quotas and usage -----------------------------------------------------------------
    async def try_consume_quota(
        self, day: date, user_id: int, chat_id: int, user_limit: int | None, chat_limit: int | None
    ) -> QuotaCheck:
        result = await self._consume(
            keys=self._day_keys(day, user_id, chat_id),
            args=[
                -1 if user_limit is None else user_limit,
                -1 if chat_limit is None else chat_limit,
                user_id,
                chat_id,
                COUNTER_TTL_SECONDS,
            ],
        )
        if int(result[0]) == 1:
            return QuotaCheck(True, int(result[1]), int(result[2]))
        return QuotaCheck(False, int(result[1]), int(result[2]), limited_by=result[3])

    async def refund_quota(self, day: date, user_id: int, chat_id: int) -> None:
        await self._refund(keys=self._day_keys(day, user_id, chat_id), args=[user_id, chat_id])

    async def record_usage(
        self, day: date, user_id: int, chat_id: int, input_tokens: int, output_tokens: int
    ) -> None:
        if input_tokens <= 0 and output_tokens <= 0:
            return
        user_key, chat_key, day_key, users_key, chats_key = self._day_keys(day, user_id, chat_id)
        async with self._r.pipeline(transaction=True) as pipe:
            for key in (user_key, chat_key, day_key):
                pipe.hincrby(key, "input_tokens", input_tokens)
                pipe.hincrby(key, "output_tokens", output_tokens)
            pipe.sadd(users_key, str(user_id))
            pipe.sadd(chats_key, str(chat_id))
            for key in (user_key, chat_key, day_key, users_key, chats_key):
                pipe.expire(key, COUNTER_TTL_SECONDS)
            await pipe.execute()

    _TOTAL_FIELDS = ("analyses", "input_tokens", "output_tokens")

    async def user_usage(self, day: date, user_id: int) -> UsageTotals:
        values = await self._r.hmget(
            self._k("day", day.isoformat(), "user", user_id), list(self._TOTAL_FIELDS)
        )
        a, i, o = (int(v or 0) for v in values)
        return UsageTotals(analyses=a, input_tokens=i, output_tokens=o)

    async def total_usage(self, first_day: date, last_day: date) -> UsageTotals:
        days = [d.isoformat() for d in _days(first_day, last_day)]
        if not days:
            return UsageTotals()
        async with self._r.pipeline(transaction=False) as pipe:
            for d in days:
                pipe.hmget(self._k("day", d), list(self._TOTAL_FIELDS))
            pipe.sunion([self._k("day", d, "users") for d in days])
            pipe.sunion([self._k("day", d, "chats") for d in days])
            results = await pipe.execute()
        totals = [0, 0, 0]
        for values in results[: len(days)]:
            for n, v in enumerate(values):
                totals[n] += int(v or 0)
        return UsageTotals(
            analyses=totals[0],
            input_tokens=totals[1],
            output_tokens=totals[2],
            users=len(results[-2]),
            chats=len(results[-1]),
        )
