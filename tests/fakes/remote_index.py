"""An in-memory `RemoteFileIndex` for the engine's tests and benchmarks."""

from __future__ import annotations


class MemoryRemoteIndex:
    """An in-memory `RemoteFileIndex` (the bot uses its storage; the contract is the same)."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], str] = {}

    async def get_remote_file(self, scope: str, sha256: str) -> str | None:
        return self.ids.get((scope, sha256))

    async def set_remote_file(self, scope: str, sha256: str, file_id: str) -> None:
        self.ids[(scope, sha256)] = file_id

    async def forget_remote_file(self, scope: str, sha256: str) -> None:
        self.ids.pop((scope, sha256), None)
