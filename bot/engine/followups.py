"""Follow-up questions the model offers at the end of its answer.

The system prompt asks the model to end its answer with a fenced block::

    ```followups
    - What drove the February dip?
    - How does West compare by units?
    ```

The block is never shown: `split_follow_ups` takes it off the final answer (the questions
go to `TurnResult.follow_ups`) and `visible_while_streaming` hides it, and a fence that is
still being written, from the answer as it streams. No block, or an empty one, means no
suggestions.
"""

from __future__ import annotations

import re

MAX_FOLLOW_UPS = 3
MAX_QUESTION_CHARS = 200
_OPENING = "```followups"

# The opening fence: ``` (or ~~~) then "followups" ("follow-ups", "follow_ups"), alone on its line.
_OPEN = re.compile(r"(?im)^[ \t]*(?:`{3,}|~{3,})[ \t]*follow[-_ ]?ups?[ \t]*$")
_CLOSE = re.compile(r"(?m)^[ \t]*(?:`{3,}|~{3,})[ \t]*$")
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d{1,2}[.)])\s+")
_QUOTES = "\"'«»“”„`"


def _questions(body: str) -> tuple[str, ...]:
    out: list[str] = []
    for line in body.splitlines():
        question = _BULLET.sub("", line).strip().strip(_QUOTES).strip()
        question = " ".join(question.split())  # no newlines or runs of spaces in a label
        if not question or len(question) > MAX_QUESTION_CHARS or question in out:
            continue
        out.append(question)
        if len(out) == MAX_FOLLOW_UPS:
            break
    return tuple(out)


def split_follow_ups(text: str) -> tuple[str, tuple[str, ...]]:
    """(the answer without the block, up to three questions). The last block counts; one
    left unclosed (the answer was cut) runs to the end."""
    opening = None
    for opening in _OPEN.finditer(text):  # noqa: B007 — the last one is wanted
        pass
    if opening is None:
        return text, ()
    after = text[opening.end() :]
    closing = _CLOSE.search(after)
    body, rest = (after[: closing.start()], after[closing.end() :]) if closing else (after, "")
    visible = text[: opening.start()].rstrip()
    if rest.strip():
        visible += "\n\n" + rest.strip()
    return visible, _questions(body)


def visible_while_streaming(text: str) -> str:
    """The part of a partly written answer to show: without the follow-up block, and
    without a last line that may be the start of its fence."""
    visible, _ = split_follow_ups(text)
    if visible is not text:
        return visible
    head, _, last = text.rpartition("\n")
    line = last.strip().lower()
    if line and _OPENING.startswith(line.replace("~~~", "```")):
        return head.rstrip() if head else ""
    return text
