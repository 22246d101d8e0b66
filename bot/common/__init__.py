"""Small helpers every layer may use (they import nothing of the bot): safe file names and
per-key locks."""

from bot.common.filenames import numbered_name, safe_filename
from bot.common.locks import KeyedLocks

__all__ = ["KeyedLocks", "numbered_name", "safe_filename"]
