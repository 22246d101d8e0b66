"""The limits the bot enforces, in one place: the checks use them and /help shows them."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Settings
from bot.services.analysis import Quotas
from bot.services.files import FileLimits

TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # what bots may download from the cloud Bot API


@dataclass(frozen=True, slots=True)
class Limits:
    files: FileLimits
    quotas: Quotas
    analysis_timeout_seconds: float
    file_retention_days: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            files=FileLimits(
                max_files=settings.max_files_per_chat,
                max_chat_bytes=settings.max_chat_bytes,
                max_download_bytes=None if settings.telegram_api_local else TELEGRAM_DOWNLOAD_LIMIT,
            ),
            quotas=Quotas(per_user=settings.daily_user_quota, per_chat=settings.daily_chat_quota),
            analysis_timeout_seconds=settings.analysis_timeout_seconds,
            file_retention_days=settings.file_retention_days,
        )

    @property
    def max_file_bytes(self) -> int:
        """The largest single file a chat can take."""
        download = self.files.max_download_bytes
        chat = self.files.max_chat_bytes
        return chat if download is None else min(download, chat)
