"""The system prompt (`instructions`), rendered for every turn from a template.

The template is Markdown with `string.Template` placeholders (so braces in code examples need no
escaping):

- `$files` — a description of the chat's files: name, rows × columns, how to read it with pandas,
  notes (skipped title lines, totals left out, conversion), column names, types and notes;
- `$language` — the language to answer in, e.g. "Russian";
- `$language_code` — the same as a code, e.g. "ru";
- `$sandbox` — what survives between questions in the code sandbox (depends on the provider).

Operators can replace the default (`bot/engine/prompts/system.md`) with `SYSTEM_PROMPT_FILE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from string import Template

from bot.engine.types import ColumnInfo, DataFile

DEFAULT_TEMPLATE_PATH = Path(__file__).parent / "prompts" / "system.md"

MAX_COLUMNS_LISTED = 80

LANGUAGE_NAMES = {
    "ru": "Russian",
    "en": "English",
    "uk": "Ukrainian",
    "be": "Belarusian",
    "kk": "Kazakh",
    "uz": "Uzbek",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "tr": "Turkish",
    "zh": "Chinese",
}


# Yandex's automatic containers delete the previous request's data on every new request; OpenAI's
# auto mode reuses the conversation's container while it lives (20 idle minutes), not after.
SANDBOX_NOTES = {
    True: (
        "Every question starts in a fresh sandbox: the files listed above are attached again, "
        "but variables, imports and files you saved while answering earlier questions are gone. "
        "Never rely on them: load the data and recompute what you need in every answer."
    ),
    False: (
        "The sandbox may be kept between questions of this conversation, but it expires after "
        "some idle minutes and is then replaced by a fresh one holding only the files listed "
        "above. Before relying on a variable or a file from an earlier answer, check that it "
        "exists; if it does not, load the data and recompute it."
    ),
}


def load_template(path: Path | None = None) -> str:
    """Read a template file (the default one when `path` is None). Called once at start-up."""
    return (path or DEFAULT_TEMPLATE_PATH).read_text(encoding="utf-8")


def language_name(code: str) -> str:
    code = (code or "").strip()
    base = code.split("-")[0].split("_")[0].lower()
    return LANGUAGE_NAMES.get(base, code or "the language of the question")


def _column(column: ColumnInfo) -> str:
    about = "; ".join((column.dtype, *column.notes))
    return f"{_name(column.name)} ({about})"


def _name(name: str) -> str:
    """A column name as code: `region`, or `' region '` when spaces would hide."""
    if name != name.strip() or "`" in name or not name:
        return repr(name)
    return f"`{name}`"


def describe_files(files: Sequence[DataFile]) -> str:
    if not files:
        return (
            "No data files are attached yet. "
            "If the question needs data, ask the user to send a file."
        )
    blocks = []
    for number, data_file in enumerate(files, start=1):
        columns = data_file.columns
        header = (
            f"{number}. `{data_file.name}`: {data_file.rows} rows × {len(columns)} columns"
            if columns
            else f"{number}. `{data_file.name}`: {data_file.rows} rows"
        )
        lines = [header]
        if data_file.reader:
            arguments = "".join(f", {key}={value}" for key, value in data_file.read_options)
            lines.append(f"   Read it with: `pd.{data_file.reader}(path{arguments})`")
        lines.extend(f"   Note: {note}" for note in data_file.notes)
        listed = ", ".join(_column(c) for c in columns[:MAX_COLUMNS_LISTED])
        if len(columns) > MAX_COLUMNS_LISTED:
            listed += f", … and {len(columns) - MAX_COLUMNS_LISTED} more"
        if listed:
            lines.append(f"   Columns: {listed}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def render_instructions(
    template: str,
    files: Sequence[DataFile],
    language: str,
    *,
    fresh_sandbox: bool = True,
    sandbox_note: str | None = None,
) -> str:
    """The instructions for one turn. `fresh_sandbox`: the code sandbox keeps nothing between
    turns (Yandex's automatic containers), so the model is told never to rely on earlier state.
    `sandbox_note`: the backend's own words for `$sandbox` instead (the local kernel's)."""
    return Template(template).safe_substitute(
        files=describe_files(files),
        language=language_name(language),
        language_code=language,
        sandbox=sandbox_note if sandbox_note is not None else SANDBOX_NOTES[fresh_sandbox],
    )
