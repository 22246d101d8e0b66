"""Limits shared by every instance on one Redis server: a token bucket, a FIFO semaphore with
leases, and a mutex per key. Generic: they know nothing of Telegram or of analyses; the
composition root (`bot.app`) decides what each one limits.

All state changes are Lua scripts (atomic on the server) and all times are the Redis
server's clock (`TIME`), so instances with skewed clocks agree.

Key layout (`p` = prefix, given by the caller):

    p bucket:<name>        hash  tokens, ts           the bucket's level at time ts
    p sem:<name>:held      zset  holder id -> lease expiry (ms)
    p sem:<name>:queue     zset  waiter id -> arrival number (FIFO order)
    p sem:<name>:alive     zset  waiter id -> lease expiry (ms); a waiter whose process
                                 died drops out of the queue when it lapses
    p sem:<name>:seq       str   arrival counter
    p lock:<key>           str   holder token (PX = lease)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

_TAKE = """
-- KEYS: bucket hash; ARGV: rate per second, burst
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(state[1]), tonumber(state[2])
if tokens == nil or ts == nil then tokens, ts = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""

_SEM_ENTER = """
-- KEYS: held, queue, alive, seq; ARGV: id, limit, lease ms
-- Joins the queue (or renews the waiter's lease), then takes a slot when one is free for
-- the caller's place in the queue. Returns {position (0 = holds a slot), held, queued}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, limit, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
if #dead > 0 then
  redis.call('ZREM', KEYS[2], unpack(dead))
  redis.call('ZREM', KEYS[3], unpack(dead))
end
if redis.call('ZSCORE', KEYS[1], id) then
  redis.call('ZADD', KEYS[1], now + lease, id)
  return {0, redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2])}
end
if not redis.call('ZSCORE', KEYS[2], id) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), id)
end
redis.call('ZADD', KEYS[3], now + lease, id)
local rank = redis.call('ZRANK', KEYS[2], id)
local free = limit - redis.call('ZCARD', KEYS[1])
if rank < free then
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZADD', KEYS[1], now + lease, id)
  return {0, redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2])}
end
return {rank - math.max(free, 0) + 1, redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2])}
"""

_SEM_RENEW = """
-- KEYS: held; ARGV: lease ms, ids...; returns the ids no longer held
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lost = {}
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) > now then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i])
  else
    redis.call('ZREM', KEYS[1], ARGV[i])
    table.insert(lost, ARGV[i])
  end
end
return lost
"""

_SEM_LEAVE = """
-- KEYS: held, queue, alive; ARGV: id
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
"""

_LOCK_RENEW = """
-- KEYS: lock; ARGV: token, lease ms
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

_LOCK_RELEASE = """
-- KEYS: lock; ARGV: token
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


class RedisTokenBucket:
    """A token bucket shared by every instance: `rate` tokens a second, at most `burst`
    saved up. `try_take()` takes one token and returns 0.0, or returns the seconds to wait
    before a token may be there (taking nothing)."""

    def __init__(
        self, client: aioredis.Redis, key: str, *, rate: float, burst: float | None = None
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.key = key
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._take = client.register_script(_TAKE)

    async def try_take(self) -> float:
        wait = await self._take(keys=[self.key], args=[repr(self.rate), repr(self.burst)])
        return max(0.0, float(wait))


PositionCallback = Callable[[int], None]


class RedisSemaphore:
    """At most `limit` holders at once across every instance, the others waiting in one FIFO
    queue (arrival order at the server). The same interface as `bot.engine.TurnLimiter`:
    `acquire(on_position)`, `release()`, `running`, `queued`.

    A slot is a lease renewed by this instance's heartbeat; a waiter renews its place each
    time it polls. When an instance dies its slots and places lapse after `lease` seconds
    and the queue moves on. A waiter cancelled while queued leaves the queue.

    Waiters poll: the first `limit` places often (`poll` seconds), the others less often;
    a release on this instance wakes the local waiters at once. `running` and `queued` are
    the deployment-wide figures as of the last call to the server."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        limit: int,
        *,
        lease: float = 30.0,
        heartbeat: float | None = None,
        poll: float = 0.1,
        far_poll: float = 1.0,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._limit = limit
        self.lease = lease
        self.heartbeat = heartbeat if heartbeat is not None else lease / 3
        self.poll = poll
        self.far_poll = far_poll
        self._keys = [f"{prefix}:held", f"{prefix}:queue", f"{prefix}:alive", f"{prefix}:seq"]
        self._enter = client.register_script(_SEM_ENTER)
        self._renew = client.register_script(_SEM_RENEW)
        self._leave = client.register_script(_SEM_LEAVE)
        self._held: list[str] = []  # this instance's slots, oldest first
        self._running = 0
        self._queued = 0
        self._wake = asyncio.Event()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._releasing: set[asyncio.Task[None]] = set()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def running(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        return self._queued

    async def acquire(self, on_position: PositionCallback | None = None) -> None:
        holder = secrets.token_hex(8)
        shown = 0
        lease_ms = str(int(self.lease * 1000))
        try:
            while True:
                position, held, queued = await self._enter(
                    keys=self._keys, args=[holder, str(self._limit), lease_ms]
                )
                _raise_if_cancelled()
                self._running, self._queued = int(held), int(queued)
                if position == 0:
                    break
                if position != shown:
                    shown = position
                    if on_position is not None:
                        on_position(position)
                delay = self.poll if position <= self._limit else self.far_poll
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        except BaseException:
            # Cancelled (or the server failed) while queued, or just as a slot was granted:
            # leave the queue and give back a slot the server may have handed us.
            await asyncio.shield(self._leave_quietly(holder))
            raise
        self._held.append(holder)
        if self._heartbeat_task is None or self._heartbeat_task.done():
            self._heartbeat_task = asyncio.create_task(self._keep_leases(), name="sem-heartbeat")

    def release(self) -> None:
        """Give back this instance's oldest slot (the slots are interchangeable). Returns at
        once; the server is told in the background (should that fail, the lease lapses)."""
        if not self._held:
            raise RuntimeError("release() without acquire()")
        holder = self._held.pop(0)
        self._running = max(0, self._running - 1)
        task = asyncio.get_running_loop().create_task(self._leave_quietly(holder))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _leave_quietly(self, holder: str) -> None:
        try:
            await self._leave(keys=self._keys[:3], args=[holder])
        except Exception:
            log.warning("could not give back a shared slot; it lapses in %.0fs", self.lease)
        self._wake.set()

    async def _keep_leases(self) -> None:
        lease_ms = str(int(self.lease * 1000))
        while self._held and not await _stopped(self._closing, self.heartbeat):
            held = list(self._held)
            if not held:
                break
            try:
                lost = await self._renew(keys=self._keys[:1], args=[lease_ms, *held])
            except Exception:
                log.warning("renewing shared slots failed", exc_info=True)
                continue
            lost = [holder for holder in lost if holder in self._held]  # not released since
            if lost:
                # The lease lapsed (this process stalled longer than the lease): the slot may
                # now be someone else's; the turn goes on, the count is one over for a while.
                log.warning("%d shared slot(s) lapsed before renewal", len(lost))

    async def aclose(self) -> None:
        """Give back every slot still held and stop the heartbeat."""
        self._closing.set()
        for holder in list(self._held):
            await self._leave_quietly(holder)
        self._held.clear()
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
        if self._heartbeat_task is not None:
            await asyncio.wait({self._heartbeat_task}, timeout=5)


class RedisLocks:
    """One holder per key at a time across every instance (`async with locks.hold(key)`).
    The lock is a lease renewed while held, so a dead holder's lock lapses after `lease`
    seconds. Waiters poll every `poll` seconds (not FIFO between instances: order within an
    instance is the caller's business)."""

    def __init__(
        self, client: aioredis.Redis, prefix: str, *, lease: float = 10.0, poll: float = 0.01
    ) -> None:
        self._client = client
        self.prefix = prefix
        self.lease = lease
        self.poll = poll
        self._renew = client.register_script(_LOCK_RENEW)
        self._release = client.register_script(_LOCK_RELEASE)
        self._renewals: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def hold(self, key: str | int) -> AsyncIterator[None]:
        name = f"{self.prefix}:{key}"
        token = secrets.token_hex(8)
        lease_ms = int(self.lease * 1000)
        delay = self.poll
        while not await self._client.set(name, token, nx=True, px=lease_ms):
            _raise_if_cancelled()
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.2)
        try:
            _raise_if_cancelled()
        except asyncio.CancelledError:
            await asyncio.shield(self._release(keys=[name], args=[token]))
            raise
        # The renewal is stopped by an event, never cancelled: a cancel that lands inside a
        # Redis call may be swallowed there, and awaiting that task would then never end.
        stop = asyncio.Event()
        renewing = asyncio.create_task(self._keep(name, token, lease_ms, stop))
        self._renewals.add(renewing)
        renewing.add_done_callback(self._renewals.discard)
        try:
            yield
        finally:
            stop.set()
            try:
                await asyncio.shield(self._release(keys=[name], args=[token]))
            except Exception:
                log.warning("could not release a shared lock; it lapses in %.0fs", self.lease)

    async def _keep(self, name: str, token: str, lease_ms: int, stop: asyncio.Event) -> None:
        while not await _stopped(stop, self.lease / 3):
            try:
                await self._renew(keys=[name], args=[token, str(lease_ms)])
            except Exception:
                log.warning("renewing a shared lock failed", exc_info=True)


def _raise_if_cancelled() -> None:
    """redis-py can swallow a cancel that lands while a command is under way (the call then
    returns normally): honour it once the call is back."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `stop`; whether it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
