"""The limits instances share on one Redis (`bot.storage.redis_limits`), each "instance"
with its own connection pool, and the store's atomic capped add on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from bot.storage import Store, StoredFile
from bot.storage.redis_limits import RedisLocks, RedisSemaphore, RedisTokenBucket
from tests.storage.conftest import StoreFactory


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[Callable[[], aioredis.Redis]]:
    made: list[aioredis.Redis] = []

    def make() -> aioredis.Redis:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


async def test_one_budget_for_every_instance(clients: Callable[[], aioredis.Redis]) -> None:
    buckets = [RedisTokenBucket(clients(), "b", rate=0.5, burst=4) for _ in range(3)]
    waits = [await buckets[i % 3].try_take() for i in range(12)]

    taken = waits.count(0.0)
    assert taken in (4, 5)  # the burst, plus at most one token refilled meanwhile
    assert waits[:4] == [0.0] * 4
    assert all(0 < w <= 2.0 for w in waits if w)  # one token comes every 2 s


async def test_a_lock_is_held_by_one_instance_at_a_time(
    clients: Callable[[], aioredis.Redis],
) -> None:
    locks = [RedisLocks(clients(), "lock") for _ in range(2)]
    inside = 0
    most = 0
    order: list[int] = []

    async def send(n: int) -> None:
        nonlocal inside, most
        async with locks[n % 2].hold(42):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.02)
            order.append(n)
            inside -= 1

    await asyncio.gather(*(send(n) for n in range(6)))
    assert most == 1
    assert sorted(order) == list(range(6))


async def test_a_lapsed_slot_goes_to_the_next_in_line(
    clients: Callable[[], aioredis.Redis],
) -> None:
    dead = RedisSemaphore(clients(), "sem", 1, lease=0.5, heartbeat=60)  # never renews in time
    alive = RedisSemaphore(clients(), "sem", 1, lease=5)
    await dead.acquire()
    seen: list[int] = []
    await asyncio.wait_for(alive.acquire(seen.append), timeout=10)
    assert seen == [1]
    alive.release()
    await alive.aclose()
    await dead.aclose()


def record(chat: int, n: int, size: int) -> StoredFile:
    return StoredFile(
        chat_id=chat,
        file_key=f"k{n}",
        original_name=f"f{n}.csv",
        stored_name=f"f{n}.csv",
        size=size,
        sha256=f"{n:064x}",
        rows=1,
        columns=(("a", "int"),),
        path=f"/data/{chat}/f{n}.csv",
        added_at=datetime.now(UTC),
    )


async def test_capped_adds_from_two_instances_respect_both_caps(
    open_new_store: StoreFactory,
) -> None:
    stores: list[Store] = [await open_new_store(), await open_new_store()]
    outcomes = await asyncio.gather(
        *(
            stores[n % 2].add_file_within(record(5, n, 40), max_files=10, max_bytes=100)
            for n in range(8)
        )
    )
    assert sum(o.added for o in outcomes) == 2  # 2 x 40 bytes fit in 100, a third does not
    assert sum(f.size for f in await stores[0].list_files(5)) == 80

    outcomes = await asyncio.gather(
        *(
            stores[n % 2].add_file_within(record(6, n, 1), max_files=3, max_bytes=100)
            for n in range(8)
        )
    )
    assert sum(o.added for o in outcomes) == 3
    kept = await stores[1].list_files(6)
    assert len(kept) == 3
    # Which three won the race varies; the same bytes again are found as a duplicate.
    n = int(kept[0].file_key.removeprefix("k"))
    again = await stores[0].add_file_within(record(6, n, 1), max_files=9, max_bytes=100)
    assert not again.added
    assert again.duplicate_key == f"k{n}"
