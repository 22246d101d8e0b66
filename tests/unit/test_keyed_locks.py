"""KeyedLocks: one lock per key while it is in use, nothing kept afterwards."""

from __future__ import annotations

import asyncio

from bot.common import KeyedLocks


async def test_holders_of_one_key_take_turns_and_other_keys_do_not_wait() -> None:
    locks: KeyedLocks[int] = KeyedLocks()
    order: list[str] = []
    inside = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with locks.hold(1):
            order.append("first in")
            inside.set()
            await release.wait()
            order.append("first out")

    async def second() -> None:
        async with locks.hold(1):
            order.append("second in")

    async def other_key() -> None:
        async with locks.hold(2):
            order.append("other key")

    tasks = [asyncio.create_task(first())]
    await inside.wait()
    tasks += [asyncio.create_task(second()), asyncio.create_task(other_key())]
    await asyncio.sleep(0.01)
    assert order == ["first in", "other key"]  # key 2 did not wait; key 1 did
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["first in", "other key", "first out", "second in"]


async def test_no_lock_is_kept_for_keys_nobody_uses_any_more() -> None:
    locks: KeyedLocks[int] = KeyedLocks()

    async def use(key: int) -> None:
        async with locks.hold(key):
            await asyncio.sleep(0)

    await asyncio.gather(*(use(key % 40) for key in range(400)))
    assert len(locks) == 0
