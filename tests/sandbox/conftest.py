from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox import KernelPool, SandboxLimits

LIMITS = SandboxLimits(
    memory_mb=1024,
    step_seconds=10,
    disk_mb=64,
    tmp_mb=32,
    max_processes=48,
    output_chars=4000,
    interrupt_grace=3,
)


@pytest.fixture
async def pool(tmp_path: Path, sandbox_venv: Path) -> AsyncIterator[KernelPool]:
    kernels = KernelPool(LIMITS, root_dir=tmp_path / "sandbox", venv=sandbox_venv)
    await kernels.start()
    yield kernels
    await kernels.aclose()
