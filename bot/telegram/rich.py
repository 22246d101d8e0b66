"""Rich answers: one `sendRichMessage` (Markdown) holding the answer's real tables, headings and
formulas, the charts where the answer names them, and each step's code in a collapsed
`<details>`.

Opt-in (RICH_ANSWERS=auto) and only for answers that need it, because Telegram Web and the
macOS app cannot show rich messages yet. Within Telegram's documented limits (32,768
characters, 500 blocks, 50 media, 20 table columns) or not at all: when the code does not fit,
it goes as today's .py file; when the answer itself does not fit, or Telegram refuses the
message (any 400), the answer takes today's path. A send that failed otherwise (a timeout) is
not retried in another form: it may have arrived.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyromark
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramEntityTooLarge
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    InputRichMessage,
    InputRichMessageMedia,
)

from bot.engine.types import Artifact, CodeStep, TurnResult
from bot.telegram.i18n import Translator
from bot.telegram.render import Destination, photo_ok, send_artifacts

log = logging.getLogger(__name__)

RICH_MAX_CHARS = 32_768
RICH_MAX_BLOCKS = 500
RICH_MAX_MEDIA = 50
RICH_MAX_COLUMNS = 20
# Telegram Desktop crashed on longer formulas (tdesktop #31047): such answers go the usual way.
SAFE_FORMULA_CHARS = 4096

_OPTIONS = (
    pyromark.Options.ENABLE_TABLES
    | pyromark.Options.ENABLE_MATH
    | pyromark.Options.ENABLE_STRIKETHROUGH
    | pyromark.Options.ENABLE_TASKLISTS
)
# Events that make a block as Telegram counts them (list items, table rows and quotes count).
_BLOCK_EVENTS = frozenset(
    {
        "Paragraph",
        "Heading",
        "CodeBlock",
        "List",
        "Item",
        "Table",
        "TableHead",
        "TableRow",
        "BlockQuote",
        "HtmlBlock",
    }
)


@dataclass(slots=True)
class Shape:
    """What a Markdown answer is made of, as far as the choice of a rich message goes."""

    tables: int = 0
    headings: int = 0
    formulas: int = 0
    blocks: int = 0
    widest_table: int = 0
    longest_formula: int = 0
    # (start, end) source offsets of the top-level blocks, to place the charts between them
    spans: list[tuple[int, int]] = field(default_factory=list)


def shape_of(markdown: str) -> Shape:
    shape = Shape()
    depth = 0
    for event, span in pyromark.events_with_range(markdown, options=_OPTIONS):
        if event == "Rule":
            shape.blocks += 1
            if depth == 0:
                shape.spans.append((span["start"], span["end"]))
            continue
        if not isinstance(event, dict):
            continue
        ((kind, value),) = event.items()
        if kind in ("InlineMath", "DisplayMath"):
            shape.formulas += 1
            shape.longest_formula = max(shape.longest_formula, len(value))
        elif kind == "Start":
            name = value if isinstance(value, str) else next(iter(value))
            if depth == 0:
                shape.spans.append((span["start"], span["end"]))
            depth += 1
            if name in _BLOCK_EVENTS:
                shape.blocks += 1
            if name == "Table":
                shape.tables += 1
                shape.widest_table = max(shape.widest_table, len(value[name]))
            elif name == "Heading":
                shape.headings += 1
        elif kind == "End":
            depth -= 1
    return shape


def needs_rich(shape: Shape, charts: int) -> bool:
    """Tables, headings, formulas or several charts: what a plain message shows badly."""
    return bool(shape.tables or shape.headings or shape.formulas) or charts >= 2


@dataclass(slots=True)
class RichAnswer:
    markdown: str
    media: list[InputRichMessageMedia]
    embedded: list[Artifact]  # the charts inside
    has_code: bool


def _fence(code: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    return "`" * max(3, longest + 1)


def _details(steps: Sequence[CodeStep], t: Translator) -> str:
    parts = []
    for step in steps:
        code = step.code.rstrip()
        fence = _fence(code)
        summary = t.plain("code-step", step=step.step)
        parts.append(
            f"<details><summary>{summary}</summary>\n\n{fence}python\n{code}\n{fence}\n\n</details>"
        )
    return "\n\n".join(parts)


def _photo_line(media_id: str, artifact: Artifact) -> str:
    title = artifact.name.replace('"', "'").replace("\n", " ")
    return f'![](tg://photo?id={media_id} "{title}")'


def compose(
    markdown: str,
    charts: Sequence[Artifact],
    steps: Sequence[CodeStep],
    t: Translator,
    *,
    with_code: bool = True,
) -> RichAnswer | None:
    """The rich message for an answer, or None when it would break a limit. Each chart follows
    the first top-level block that names it (the rest follow the answer)."""
    shape = shape_of(markdown)
    if (
        shape.widest_table > RICH_MAX_COLUMNS
        or len(charts) > RICH_MAX_MEDIA
        or shape.longest_formula > SAFE_FORMULA_CHARS
    ):
        return None
    after: dict[int, list[str]] = {}
    media = []
    for number, chart in enumerate(charts, 1):
        media_id = f"chart{number}"
        media.append(
            InputRichMessageMedia(
                id=media_id, media=InputMediaPhoto(media=BufferedInputFile(chart.data, chart.name))
            )
        )
        place = next(
            (i for i, (start, end) in enumerate(shape.spans) if chart.name in markdown[start:end]),
            len(shape.spans) - 1,
        )
        after.setdefault(place, []).append(_photo_line(media_id, chart))
    pieces: list[str] = []
    previous = 0
    for index, (_start, end) in enumerate(shape.spans):
        if index in after:
            pieces.append(markdown[previous:end].strip("\n"))
            pieces += after[index]
            previous = end
    pieces.append(markdown[previous:].strip("\n"))
    pieces += after.get(-1, [])  # an empty answer: only charts
    body = "\n\n".join(piece for piece in pieces if piece.strip())
    code = [s for s in steps if s.code.strip()] if with_code else []
    if code:
        body += "\n\n" + _details(code, t)
    blocks = shape.blocks + len(charts) + 3 * len(code)
    if len(body) > RICH_MAX_CHARS or blocks > RICH_MAX_BLOCKS or not body:
        return None
    return RichAnswer(body, media, list(charts), bool(code))


def plan(result: TurnResult, t: Translator) -> RichAnswer | None:
    """The rich message for a finished analysis when it needs one and fits (off the loop)."""
    charts = [a for a in result.artifacts if a.is_image and photo_ok(a)]
    if not needs_rich(shape_of(result.text), len(charts)):
        return None
    answer = compose(result.text, charts, result.code_steps, t)
    if answer is None:  # the code takes too much room: it goes as a file
        answer = compose(result.text, charts, result.code_steps, t, with_code=False)
    return answer


async def send_rich_answer(
    bot: Bot,
    to: Destination,
    result: TurnResult,
    t: Translator,
    *,
    markup: InlineKeyboardMarkup | None = None,
) -> bool:
    """Send the answer as one rich message, then the files it does not hold. False (nothing
    sent) when the answer does not need a rich message, does not fit, or Telegram refuses it."""
    answer = await asyncio.to_thread(plan, result, t)
    if answer is None:
        return False
    try:
        await bot.send_rich_message(
            to.chat_id,
            InputRichMessage(markdown=answer.markdown, media=answer.media or None),
            message_thread_id=to.thread_id,
            reply_parameters=to.reply(),
            reply_markup=markup,
        )
    except (TelegramBadRequest, TelegramEntityTooLarge) as error:
        log.warning("rich answer refused (%s); sending it the usual way", error.message)
        return False
    embedded = {id(a) for a in answer.embedded}
    rest = [a for a in result.artifacts if id(a) not in embedded]
    steps = () if answer.has_code else result.code_steps
    if rest or steps:
        await send_artifacts(bot, to, rest, steps, t)
    return True
