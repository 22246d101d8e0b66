"""What one step returns: text (trimmed to a budget), images, files, error and what happened."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


class TrimmedText:
    """Accumulates text, keeping at most `budget` characters: the head and the tail, cut marked."""

    def __init__(self, budget: int) -> None:
        self._half = max(budget // 2, 1)
        self._head: list[str] = []
        self._head_len = 0
        self._tail = ""
        self.total = 0

    def add(self, text: str) -> None:
        if not text:
            return
        self.total += len(text)
        room = self._half - self._head_len
        if room > 0:
            self._head.append(text[:room])
            self._head_len += min(room, len(text))
            text = text[room:]
        if text:
            self._tail = (self._tail + text)[-self._half :]

    @property
    def truncated(self) -> bool:
        return self.total > self._head_len + len(self._tail)

    def text(self) -> str:
        head = "".join(self._head)
        if not self.truncated:
            return head + self._tail
        cut = self.total - self._head_len - len(self._tail)
        return f"{head}\n… [{cut} characters of output cut] …\n{self._tail}"


@dataclass(frozen=True)
class StepFile:
    """A file the step created or changed under /mnt/data."""

    name: str  # relative to /mnt/data, '/'-separated
    path: Path  # where the bot reads it
    size: int

    @property
    def sandbox_path(self) -> str:
        return f"/mnt/data/{self.name}"


@dataclass
class StepOutput:
    text: str = ""
    images: list[bytes] = field(default_factory=list)
    files: list[StepFile] = field(default_factory=list)
    error: str | None = None  # "ZeroDivisionError: division by zero"
    truncated: bool = False
    timed_out: bool = False  # ran past the step limit and was interrupted
    restarted: bool = False  # the kernel was lost; the next step runs in a fresh one
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out and not self.restarted

    def for_model(self) -> str:
        """The tool result the model reads."""
        parts = []
        if self.text.strip():
            parts.append(self.text.rstrip())
        if self.images:
            parts.append(f"[{len(self.images)} image(s) displayed; the user will see them]")
        if self.files:
            listed = ", ".join(f"{f.sandbox_path} ({f.size} bytes)" for f in self.files)
            parts.append(f"[files created or changed: {listed}]")
        parts.extend(f"[{note}]" for note in self.notes)
        if not parts:
            parts.append("[no output]")
        return "\n".join(parts)
