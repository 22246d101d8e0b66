"""Download the files a turn generated and apply the count/size caps.

Where a cited file is downloaded from depends on the provider (never on the id's shape):
- `openai`: `client.containers.files.content.retrieve(file_id, container_id=...)`;
- `yandex`: `client.files.content(file_id)` (container files are copied into the Files API).
Both are streamed so a file over the size cap is never held in memory whole.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import openai

from bot.common import safe_filename
from bot.engine.retry import RetryPolicy, call_with_retries, describe
from bot.engine.stream import Citation
from bot.engine.types import Artifact

logger = logging.getLogger(__name__)

DOWNLOAD_PARALLELISM = 4
DEFAULT_MAX_ARTIFACTS = 20
DEFAULT_MAX_ARTIFACT_BYTES = 50 * 2**20

_EXTRA_TYPES = {
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".xls": "application/vnd.ms-excel",
    ".json": "application/json",
    ".parquet": "application/vnd.apache.parquet",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".md": "text/markdown",
}


def guess_mime_type(filename: str) -> str:
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    known = _EXTRA_TYPES.get(f".{suffix}")
    if known:
        return known
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or "application/octet-stream"


@dataclass(frozen=True, slots=True)
class ArtifactCaps:
    """How many files a turn may return and how big each may be (MAX_ARTIFACTS,
    MAX_ARTIFACT_BYTES). Shared by every backend."""

    max_count: int = DEFAULT_MAX_ARTIFACTS
    max_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES


def keep_within_caps(
    artifacts: Iterable[Artifact], caps: ArtifactCaps
) -> tuple[list[Artifact], int]:
    """The artifacts to deliver, in order: exact duplicates (same bytes) are skipped silently,
    files over `caps.max_bytes` or beyond `caps.max_count` are dropped. Returns (kept, dropped)."""
    kept: list[Artifact] = []
    seen: set[bytes] = set()
    dropped = 0
    for artifact in artifacts:
        digest = hashlib.sha256(artifact.data).digest()
        if digest in seen:
            continue
        seen.add(digest)
        if len(artifact.data) > caps.max_bytes or len(kept) >= caps.max_count:
            dropped += 1
            continue
        kept.append(artifact)
    return kept, dropped


class _TooBig(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Downloader:
    client: openai.AsyncOpenAI
    provider: str
    max_bytes: int
    retry: RetryPolicy

    async def fetch(self, citation: Citation) -> bytes | None:
        """The file's bytes; None when it is over the size cap. Raises on API errors."""
        try:
            return await call_with_retries(
                self.retry, lambda: self._fetch_once(citation), what=f"download {citation.file_id}"
            )
        except _TooBig:
            return None

    def _open(self, citation: Citation) -> Any:
        if self.provider == "openai":
            if not citation.container_id:
                raise ValueError("container_file_citation without container_id")
            return self.client.containers.files.content.with_streaming_response.retrieve(
                citation.file_id, container_id=citation.container_id
            )
        return self.client.files.with_streaming_response.content(citation.file_id)

    async def _fetch_once(self, citation: Citation) -> bytes:
        async with self._open(citation) as response:
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                raise _TooBig
            buffer = bytearray()
            async for chunk in response.iter_bytes():
                buffer += chunk
                if len(buffer) > self.max_bytes:
                    raise _TooBig
            return bytes(buffer)


async def collect_artifacts(
    downloader: Downloader,
    citations: Sequence[Citation],
    inline_images: Sequence[Artifact],
    *,
    max_count: int,
) -> tuple[list[Artifact], int]:
    """Download cited files (deduplicated by id), then add inline images not already among them.

    Returns the artifacts (at most `max_count`, none over the size cap) and how many were dropped:
    over a cap, or not downloadable (a failure is logged; the answer is still delivered).
    """
    kept: list[Artifact] = []
    seen_hashes: set[bytes] = set()
    dropped = 0
    pending = list(dict.fromkeys(citations))  # keeps order, drops exact duplicates
    semaphore = asyncio.Semaphore(DOWNLOAD_PARALLELISM)

    async def fetch(citation: Citation) -> bytes | BaseException | None:
        async with semaphore:
            try:
                return await downloader.fetch(citation)
            except (openai.APIError, ValueError) as error:
                return error

    while pending and len(kept) < max_count:
        batch, pending = pending[: max_count - len(kept)], pending[max_count - len(kept) :]
        results = await asyncio.gather(*(fetch(c) for c in batch))
        for citation, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                logger.warning(
                    "could not download generated file %s: %s", citation.file_id, describe(result)
                )
                dropped += 1
                continue
            if result is None:
                logger.info(
                    "generated file %s is over %d bytes; dropped",
                    citation.file_id,
                    downloader.max_bytes,
                )
                dropped += 1
                continue
            digest = hashlib.sha256(result).digest()
            if digest in seen_hashes:
                continue
            seen_hashes.add(digest)
            name = safe_filename(citation.filename or citation.file_id)
            kept.append(Artifact(name, guess_mime_type(name), result, citation.file_id))
    dropped += len(pending)
    # Inline images last: a picture that was also saved and cited keeps its named copy.
    kept, over = keep_within_caps(
        [*kept, *inline_images], ArtifactCaps(max_count, downloader.max_bytes)
    )
    return kept, dropped + over
