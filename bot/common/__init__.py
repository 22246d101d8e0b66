"""Small helpers every layer may use (they import nothing of the bot): safe file names and
per-key locks, stopping a task for sure."""

from bot.common.filenames import numbered_name, safe_filename
from bot.common.locks import KeyedLocks
from bot.common.tasks import cancel_and_wait

__all__ = ["KeyedLocks", "cancel_and_wait", "numbered_name", "safe_filename"]
