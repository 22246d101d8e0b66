"""The runtime owns the process-wide state: closing it stops the worker process that parses
big files (nothing outlives the bot), and a stop request, even one made before the event loop
ran, ends the waits at once."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from bot.runtime import Runtime, StartupAborted, retry_until_ready
from bot.tabular import inspect_table_async, parsing_pool
from bot.tabular.api import PROCESS_MIN_BYTES


def big_csv(path: Path) -> Path:
    row = b"East,2024-01,1200\n"
    path.write_bytes(b"region,month,revenue\n" + row * (PROCESS_MIN_BYTES // len(row) + 10))
    return path


async def test_closing_the_runtime_stops_the_parsing_worker(tmp_path: Path) -> None:
    info = await inspect_table_async(big_csv(tmp_path / "big.csv"), "big.csv")
    assert info.rows > 1000
    pool = parsing_pool()
    assert pool.started
    workers = list(pool._executor._processes.values())  # type: ignore[union-attr]
    assert workers
    assert all(worker.is_alive() for worker in workers)

    Runtime().close()

    assert not pool.started
    assert not any(worker.is_alive() for worker in workers)
    # a later file starts a new worker
    again = await inspect_table_async(tmp_path / "big.csv", "big.csv")
    assert again.rows == info.rows
    parsing_pool().shutdown()


async def test_a_signal_before_the_loop_ends_the_start_up_wait() -> None:
    runtime = Runtime()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        runtime.install_signal_handlers()
        os.kill(os.getpid(), signal.SIGTERM)  # noted by the plain handler
        assert runtime.stop_requested
        calls = 0

        async def unreachable() -> None:
            nonlocal calls
            calls += 1
            raise ConnectionError("refused")

        with pytest.raises(StartupAborted):
            await retry_until_ready("Telegram", unreachable, runtime, transient=lambda _: True)
        assert calls == 0
        await asyncio.wait_for(runtime.wait_stop(), 1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        runtime.close()


async def test_a_stop_during_the_backoff_ends_it_at_once() -> None:
    runtime = Runtime()
    attempts = 0

    async def unreachable() -> None:
        nonlocal attempts
        attempts += 1
        raise ConnectionError("refused")

    loop = asyncio.get_running_loop()
    loop.call_later(0.2, runtime.request_stop, "test")
    started = loop.time()
    with pytest.raises(StartupAborted):
        await retry_until_ready(
            "Redis", unreachable, runtime, transient=lambda _: True, first_delay=30
        )
    assert attempts == 1
    assert loop.time() - started < 5  # not after the 30 s backoff


async def test_a_task_that_swallows_a_cancel_is_still_stopped() -> None:
    """As Python 3.11's wait_for does (inside redis-py's pool) when a cancel meets the end of
    its wait: the shutdown must not hang on such a task (housekeeping sleeps a minute)."""
    from bot.common import cancel_and_wait

    swallowed = asyncio.Event()

    async def housekeeping() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            swallowed.set()  # lost, as in the race
        await asyncio.sleep(60)

    task = asyncio.create_task(housekeeping())
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await cancel_and_wait(task)
    assert swallowed.is_set()
    assert task.cancelled()
    assert loop.time() - started < 5
