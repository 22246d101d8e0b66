"""Local code execution: a sandboxed, stateful IPython kernel per chat (bubblewrap + ipykernel).

Knows nothing of the engine, Telegram or storage. See `pool.KernelPool`.
"""

from bot.sandbox.kernel import SandboxError, SandboxLimits
from bot.sandbox.output import StepFile, StepOutput
from bot.sandbox.pool import KernelPool, SandboxUnavailable, Session

__all__ = [
    "KernelPool",
    "SandboxError",
    "SandboxLimits",
    "SandboxUnavailable",
    "Session",
    "StepFile",
    "StepOutput",
]
