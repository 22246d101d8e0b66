"""Big files are parsed in a worker process that is replaced now and then; many big files at
once (more than one worker's share) must all get their answer, not hang forever."""

from __future__ import annotations

import asyncio

from bot.tabular import inspect_table_async
from bot.tabular.api import PROCESS_MIN_BYTES
from tests.tabular.helpers import WriteFile

SIMULTANEOUS = 25  # more than one worker parses before it is replaced


def big_csv(min_bytes: int) -> bytes:
    lines = [b"region,month,revenue"]
    size = row = 0
    while size < min_bytes:
        lines.append(b"East,2024-%02d,%d" % (row % 12 + 1, row * 7 % 1000))
        size += len(lines[-1]) + 1
        row += 1
    return b"\n".join(lines) + b"\n"


async def test_many_big_files_at_once_are_all_inspected(write_file: WriteFile) -> None:
    path = write_file("big.csv", big_csv(PROCESS_MIN_BYTES + 1000))

    infos = await asyncio.wait_for(
        asyncio.gather(*(inspect_table_async(path, "big.csv") for _ in range(SIMULTANEOUS))),
        timeout=60,
    )

    assert len(infos) == SIMULTANEOUS
    assert {info.rows for info in infos} == {infos[0].rows}
    assert infos[0].rows > 10_000
