"""A loopback fake of the Telegram Bot API for end-to-end tests.

aiogram's real ``AiohttpSession`` talks to it over HTTP (multipart uploads with ``attach://``, long
polling, webhooks), and it answers the way Telegram does, including Telegram's refusals with their
exact ``description``, so the bot's handling of Telegram's limits is exercised for real.

Quick start::

    async with TelegramFake(bot_username="DataLensBot") as tg:
        bot = tg.make_bot()                    # real Bot + AiohttpSession pointed at tg.base_url
        ann = tg.user("Ann", language_code="en")
        chat = tg.private_chat(ann)
        async with polling(dp, bot, tg):       # dp.start_polling(bot, polling_timeout=1, ...)
            tg.send_text(chat, ann, "/start")
            reply = await tg.wait_for_message(chat, contains="Hello")
        await bot.session.close()

World:
    ``tg.user(first_name, username=None, language_code="en")`` -> ``User``;
    ``tg.private_chat(user)``, ``tg.group(title, members=[...], supergroup=False,
    bot_is_admin=False, privacy_mode=True)`` (the first member is the creator),
    ``tg.forum(title, topics=("Data",), members=[...])`` -> ``Chat``. ``chat.topics["Data"]`` is a
    topic's message_thread_id; General is 1, which Telegram refuses as a message_thread_id.
    ``tg.block(user)``: sends to that user fail with 403 "bot was blocked by the user".
Updates from users (queued for getUpdates, or POSTed to the webhook after ``setWebhook``):
    ``tg.send_text(chat, user, text, reply_to=None, thread_id=None, entities=None)``: bot_command
    and mention entities are added as Telegram does. In groups with privacy mode on (the default)
    only commands (``/cmd``, ``/cmd@ThisBot``) and replies to the bot reach it; see
    ``message.delivered``. A message in a topic without a reply replies to the topic's creation
    message, as in Telegram.
    ``tg.send_document(chat, user, filename, data, mime_type=None, caption=None,
    file_size_override=None, reply_to=None, thread_id=None)``: getFile + the download URL serve
    ``data``; ``file_size_override`` declares a huge size without allocating it.
    ``tg.press(message, "button text or callback_data", user=None)`` -> ``CallbackPress``.
    ``tg.stop_generation(chat, draft_id=None, thread_id=None)``: the user presses the stop button
    of the live draft (sent with ``can_stop``); delivers ``stopped_message_generation`` (only when
    the bot asked for it in ``allowed_updates``, like Telegram).
Inspection:
    ``tg.calls``: every request but getUpdates (``tg.polls``), in arrival order; ``ApiCall`` has
    ``.method``, ``.params`` (form values as strings, JSON fields decoded), ``.files``,
    ``.status`` (None while in flight), ``.response``, ``.error``, ``.result``.
    ``tg.calls_of("sendMessage")``, ``tg.methods()``; ``tg.messages(chat)``: the bot's live
    messages with their current text/caption, entities, reply_markup, thread_id;
    ``tg.edits_of(message)``; ``tg.sent_photos`` / ``tg.sent_documents`` (bytes, sizes, names);
    ``tg.chat_actions``, ``tg.callback_answers[press.id]``, ``tg.commands[(scope, language)]``
    (scope "default", "all_group_chats", "chat:<id>"...), ``tg.reactions``, ``tg.drafts``
    (every sendMessageDraft taken), ``tg.live_draft(chat)`` (the draft shown now: gone after a
    message from the bot, a stop, or 30 s), ``tg.drafts_after_stop``; a rich message
    (sendRichMessage with ``markdown``, parsed into blocks by ``RichMarkdown``) has
    ``message.rich`` and searchable ``message.content``; ``tg.rich_photos(message)``.
    Records of what Telegram tolerates or punishes: ``tg.flood_refusals``,
    ``tg.flood_violations`` (requests made before the announced retry_after elapsed),
    ``tg.general_topic_attempts``, ``tg.entity_overflows`` (> 100 entities: Telegram drops the
    rest), ``tg.html_warnings`` (bare ``&``/``>`` that Telegram accepts), ``tg.unhandled_methods``,
    ``tg.webhook_deliveries``, ``tg.dropped_updates`` (types outside allowed_updates).
Waiting (woken by every request and every change, no sleeps):
    ``await tg.wait_for(lambda: ..., timeout=5)`` returns the first truthy value;
    ``await tg.wait_for_message(chat, contains=..., predicate=None)``;
    ``await tg.wait_for_call("sendPhoto", predicate=None)``.
Fault injection: ``tg.refuse_next("sendMessage", "can't parse entities: ...", when=lambda call:
...)`` answers the next matching call with that 400, for refusals the fake does not model
(a failing draft: ``tg.refuse_next("sendMessageDraft", ...)``; a rich send: "sendRichMessage").
Faults after the fact (the request WAS executed, the client cannot know):
``tg.fail_after_executing("sendMessage", status=500, when=None)`` answers the next matching call
with a 5xx after carrying it out; ``tg.answer_late("sendMessage", seconds, when=None)`` carries it
out and holds the answer back (beyond the client's timeout, the client gives up). Each such call
is listed in ``tg.executed_despite_error``.
Flood control: token buckets per chat and one global (``FloodLimits``); set ``tg.flood =
FloodLimits.strict()``, ``FloodLimits.off()`` or ``FloodLimits(private_burst=..., ...)``. The
penalty does not grow with violations (Telegram's sometimes does).
Local mode (``TelegramFake(local_mode=True)``; ``make_bot`` sets ``is_local=True``): no 20 MB
download limit, getFile returns an absolute path on disk, uploads up to 2000 MB.

Telegram behaviours kept on purpose, though the schema text says otherwise: a one-item
sendMediaGroup is sent as a plain message; bare ``&`` and ``>`` in HTML are accepted (recorded
in ``html_warnings``). Simplifications: message ids are per chat; photos keep their bytes (no
JPEG re-encoding); videos and audio in albums are stored as documents; URLs are not fetched;
methods the fake does not model answer ``True`` and are listed in ``unhandled_methods`` (a name
that is no Bot API method gets 404 like Telegram).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import logging
import math
import mimetypes
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiogram import Bot
from aiogram import methods as bot_api
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import BodyPartReader, ClientError, ClientSession, ClientTimeout, web
from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    from aiogram import Dispatcher

__all__ = [
    "ApiCall",
    "CallbackAnswer",
    "CallbackPress",
    "Chat",
    "ChatAction",
    "FloodEvent",
    "FloodLimits",
    "LoopbackSession",
    "MessageVersion",
    "ParsedText",
    "SentDocument",
    "SentPhoto",
    "StoredMessage",
    "TelegramFake",
    "User",
    "format_text",
    "polling",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

MiB = 1024 * 1024
DEFAULT_TOKEN = "123456789:AAFakeTokenForLoopbackTests_0123456"
MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_ENTITIES = 100
MAX_DOWNLOAD_SIZE = 20 * MiB
MAX_PHOTO_SIZE = 10 * MiB
MAX_DOCUMENT_SIZE = 50 * MiB
LOCAL_MAX_UPLOAD_SIZE = 2000 * MiB
MAX_REQUEST_SIZE = 100 * MiB
MAX_PHOTO_SIDES_SUM = 10000
MAX_PHOTO_RATIO = 20
MAX_MEDIA_GROUP = 10
GENERAL_TOPIC_ID = 1
DRAFT_LIFETIME = 30.0  # seconds a draft stays without a newer one
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


UPDATE_KINDS = _words(
    "message edited_message channel_post edited_channel_post business_connection business_message "
    "edited_business_message deleted_business_messages message_reaction message_reaction_count "
    "inline_query chosen_inline_result callback_query shipping_query pre_checkout_query "
    "purchased_paid_media poll poll_answer my_chat_member chat_member chat_join_request chat_boost "
    "removed_chat_boost stopped_message_generation"
)
# Like Telegram, updates a bot must ask for by name (a stop of a draft included, see the notes).
DEFAULT_ALLOWED_UPDATES = UPDATE_KINDS - _words(
    "chat_member message_reaction message_reaction_count stopped_message_generation"
)
CHAT_ACTIONS = _words(
    "typing upload_photo record_video upload_video record_voice upload_voice upload_document "
    "choose_sticker find_location record_video_note upload_video_note"
)
JSON_FIELDS = _words(
    "reply_markup entities caption_entities media allowed_updates reply_parameters "
    "link_preview_options commands scope reaction results permissions quote_entities rich_message"
)
BUTTON_ACTIONS = _words(
    "url callback_data web_app login_url switch_inline_query switch_inline_query_current_chat "
    "switch_inline_query_chosen_chat copy_text callback_game pay"
)


@cache
def _bot_api_methods() -> frozenset[str]:
    """Every Bot API method name aiogram knows, lower-cased (Telegram ignores the case)."""
    names = (getattr(getattr(bot_api, n), "__api_method__", None) for n in dir(bot_api))
    return frozenset(n.lower() for n in names if isinstance(n, str))


# --------------------------------------------------------------------------------------------
# Errors


class ApiError(Exception):
    """A refusal, rendered exactly as Telegram renders it."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad(message: str) -> ApiError:
    return ApiError(400, f"Bad Request: {message}")


def _parse_error(message: str) -> ApiError:
    return _bad(f"can't parse entities: {message}")


# --------------------------------------------------------------------------------------------
# Formatted text, ported from TDLib (td/telegram/MessageEntity.cpp: parse_html, parse_markdown_v2,
# parse_markdown) so offsets, error texts and byte offsets match Telegram's.


@dataclass
class ParsedText:
    text: str
    entities: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


_TD_SPACES = frozenset(b" \t\r\n\x00\x0b")
_HTML_TAGS = _words(
    "a b strong i em s strike del u ins tg-spoiler tg-emoji span pre code blockquote"
)
_PRIORITY = {"blockquote": 0, "expandable_blockquote": 0, "pre": 11, "code": 20, "text_link": 49}
_PRIORITY |= {"bold": 90, "italic": 91, "underline": 92, "strikethrough": 93, "spoiler": 94}
_GIVEN_TYPES = _words(
    "bold italic underline strikethrough spoiler code pre text_link text_mention custom_emoji "
    "blockquote expandable_blockquote date_time"
)
_FOUND_TYPES = _words("mention hashtag cashtag bot_command url email phone_number bank_card_number")
_ENTITY_FIELDS = ("type", "offset", "length", "url", "user", "language", "custom_emoji_id")
_ENTITY_FIELDS += ("unix_time", "date_time_format")
_TD_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "pre_code": "PreCode",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
    "blockquote": "BlockQuote",
}


def _at(src: bytes, i: int) -> int:
    return src[i] if i < len(src) else 0


def _units(byte: int) -> int:
    """UTF-16 code units of the character a UTF-8 byte starts (0 for continuation bytes)."""
    if byte & 0xC0 == 0x80:
        return 0
    return 2 if byte >= 0xF0 else 1


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _entity(kind: str, offset: int, length: int, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "offset": offset, "length": length, **extra}


def _sorted(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entities, key=lambda e: (e["offset"], -e["length"], _PRIORITY.get(e["type"], 50)))


def _decode_html_entity(src: bytes, pos: int) -> tuple[int, int] | None:
    """``&lt;``/``&gt;``/``&amp;``/``&quot;`` and numeric references (the ``;`` is optional)."""
    end = pos + 1
    code = 0
    if _at(src, end) == ord("#"):
        end += 1
        if _at(src, end) == ord("x"):
            end += 1
            while chr(_at(src, end)) in "0123456789abcdefABCDEF" and _at(src, end):
                code = code * 16 + int(chr(src[end]), 16)
                end += 1
        else:
            while 48 <= _at(src, end) <= 57:
                code = code * 10 + src[end] - 48
                end += 1
        if code == 0 or code >= 0x10FFFF or end - pos >= 10:
            return None
    else:
        while chr(_at(src, end)).isascii() and chr(_at(src, end)).isalpha():
            end += 1
        named = {b"lt": 60, b"gt": 62, b"amp": 38, b"quot": 34}.get(src[pos + 1 : end])
        if named is None:
            return None
        code = named
    if _at(src, end) == ord(";"):
        end += 1
    return code, end


def _finish(out: bytearray, entities: list[dict[str, Any]], warnings: list[str]) -> ParsedText:
    try:
        text = bytes(out).decode("utf-8")
    except UnicodeDecodeError:
        raise _parse_error(
            "Text contains invalid Unicode characters after decoding HTML entities, check for "
            "unmatched surrogate code units"
        ) from None
    return ParsedText(text, _sorted(entities), warnings)


def parse_html(text: str) -> ParsedText:
    src = text.encode("utf-8")
    size = len(src)
    out = bytearray()
    utf16 = 0
    entities: list[dict[str, Any]] = []
    stack: list[tuple[str, str, int, int]] = []  # tag, argument, UTF-16 offset, output byte offset
    warnings: list[str] = []
    i = 0
    while i < size:
        c = src[i]
        if c == ord("&"):
            decoded = _decode_html_entity(src, i)
            if decoded is not None:
                code, i = decoded
                utf16 += 2 if code > 0xFFFF else 1
                out += chr(code).encode("utf-8", "surrogatepass")
                continue
            warnings.append(f"unescaped '&' at byte offset {i}")
        if c != ord("<"):
            if c == ord(">"):
                warnings.append(f"unescaped '>' at byte offset {i}")
            utf16 += _units(c)
            out.append(c)
            i += 1
            continue
        begin = i
        i += 1
        if _at(src, i) != ord("/"):
            while _at(src, i) not in _TD_SPACES and _at(src, i) != ord(">"):
                i += 1
            if i >= size:
                raise _parse_error(f"Unclosed start tag at byte offset {begin}")
            tag = src[begin + 1 : i].decode("utf-8", "replace").lower()
            if tag not in _HTML_TAGS:
                raise _parse_error(f'Unsupported start tag "{tag}" at byte offset {begin}')
            argument = ""
            while _at(src, i) != ord(">"):
                while i < size and src[i] in _TD_SPACES:
                    i += 1
                if _at(src, i) == ord(">"):
                    break
                name_begin = i
                while _at(src, i) not in _TD_SPACES and _at(src, i) not in b"=>":
                    i += 1
                name = src[name_begin:i].decode("utf-8", "replace")
                if not name:
                    raise _parse_error(
                        f'Empty attribute name in the tag "{tag}" at byte offset {begin}'
                    )
                while i < size and src[i] in _TD_SPACES:
                    i += 1
                if _at(src, i) != ord("="):
                    if tag == "blockquote" and name.lower() == "expandable":
                        argument = "expandable"
                        continue
                    raise _parse_error(
                        "Expected equal sign in declaration of an attribute of the tag "
                        f'"{tag}" at byte offset {begin}'
                    )
                i += 1
                while i < size and src[i] in _TD_SPACES:
                    i += 1
                if i >= size:
                    raise _parse_error(f'Unclosed start tag "{tag}" at byte offset {begin}')
                if src[i] not in b"'\"":
                    token_begin = i
                    while chr(_at(src, i)).isascii() and (
                        chr(_at(src, i)).isalnum() or _at(src, i) in b".-"
                    ):
                        i += 1
                    value = src[token_begin:i].decode().lower()
                    if _at(src, i) not in _TD_SPACES and _at(src, i) != ord(">"):
                        raise _parse_error(
                            f"Unexpected end of name token at byte offset {token_begin}"
                        )
                else:
                    quote = src[i]
                    i += 1
                    raw = bytearray()
                    while i < size and src[i] != quote:
                        decoded = _decode_html_entity(src, i) if src[i] == ord("&") else None
                        if decoded is not None:
                            code, i = decoded
                            raw += chr(code).encode("utf-8", "surrogatepass")
                            continue
                        raw.append(src[i])
                        i += 1
                    i += 1 if i < size else 0
                    value = raw.decode("utf-8", "replace")
                if i >= size:
                    raise _parse_error(f"Unclosed start tag at byte offset {begin}")
                if tag == "a" and name == "href":
                    argument = value
                elif tag == "code" and name == "class" and value.startswith("language-"):
                    argument = value[len("language-") :]
                elif tag == "span" and name == "class" and value.startswith("tg-"):
                    argument = value[len("tg-") :]
                elif tag == "tg-emoji" and name == "emoji-id":
                    argument = value
            if tag == "span" and argument != "spoiler":
                raise _parse_error(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {begin}'
                )
            stack.append((tag, argument, utf16, len(out)))
            i += 1
            continue
        if not stack:
            raise _parse_error(f"Unexpected end tag at byte offset {begin}")
        while _at(src, i) not in _TD_SPACES and _at(src, i) != ord(">"):
            i += 1
        end_tag = src[begin + 2 : i].decode("utf-8", "replace").lower()
        while i < size and src[i] in _TD_SPACES:
            i += 1
        if _at(src, i) != ord(">"):
            raise _parse_error(f"Unclosed end tag at byte offset {begin}")
        tag, argument, offset, out_pos = stack.pop()
        if end_tag and end_tag != tag:
            raise _parse_error(
                f"Unmatched end tag at byte offset {begin}, "
                f'expected "</{tag}>", found "</{end_tag}>"'
            )
        i += 1
        if utf16 > offset:
            _close_html_tag(entities, tag, argument, offset, utf16 - offset, out[out_pos:])
    if stack:
        raise _parse_error(f"Can't find end tag corresponding to start tag {stack[-1][0]}")
    for entity in entities:
        entity.pop("_language", None)
    return _finish(out, entities, warnings)


def _close_html_tag(
    entities: list[dict[str, Any]], tag: str, arg: str, offset: int, length: int, inner: bytes
) -> None:
    simple = {"i": "italic", "em": "italic", "b": "bold", "strong": "bold", "u": "underline"}
    simple |= {"ins": "underline", "s": "strikethrough", "strike": "strikethrough"}
    simple |= {"del": "strikethrough", "tg-spoiler": "spoiler", "span": "spoiler"}
    last = entities[-1] if entities else None
    same_range = last is not None and (last["offset"], last["length"]) == (offset, length)
    if tag in simple:
        entities.append(_entity(simple[tag], offset, length))
    elif tag == "tg-emoji":
        if not arg.isdigit() or int(arg) == 0:
            raise _parse_error("Invalid custom emoji identifier specified")
        entities.append(_entity("custom_emoji", offset, length, custom_emoji_id=arg))
    elif tag == "a":
        url = arg or inner.decode("utf-8", "replace")
        if url:
            entities.append(_entity("text_link", offset, length, url=url))
    elif tag == "pre":
        if same_range and last and last["type"] == "code" and last.get("_language"):
            last.update(type="pre", language=last.pop("_language"))
        else:
            entities.append(_entity("pre", offset, length))
    elif tag == "code":
        if same_range and last and last["type"] == "pre" and arg:
            last["language"] = arg
        else:
            entities.append(_entity("code", offset, length, _language=arg))
    else:  # blockquote
        kind = "expandable_blockquote" if arg == "expandable" else "blockquote"
        entities.append(_entity(kind, offset, length))


def _reserved(char: int) -> ApiError:
    return _parse_error(
        f"Character '{chr(char)}' is reserved and must be escaped with the preceding '\\'"
    )


def _read_md_url(src: bytes, i: int) -> tuple[str, int, bool]:
    """Reads ``(url)`` starting after the ``(``; returns the URL, the index of ``)``, and found."""
    url = bytearray()
    while i < len(src) and src[i] != ord(")"):
        if src[i] == ord("\\") and 0 < _at(src, i + 1) <= 126:
            url.append(src[i + 1])
            i += 2
            continue
        url.append(src[i])
        i += 1
    return url.decode("utf-8", "replace"), i, i < len(src)


def parse_markdown_v2(text: str) -> ParsedText:
    src = text.encode("utf-8")
    size = len(src)
    out = bytearray()
    utf16 = 0
    entities: list[dict[str, Any]] = []
    stack: list[tuple[str, str, int, int, int]] = []  # kind, argument, utf16, src byte, out pos
    in_quote = False
    i = 0
    while i < size:
        c = src[i]
        if c == ord("\\") and 0 < _at(src, i + 1) <= 126:
            out.append(src[i + 1])
            utf16 += 1
            i += 2
            continue
        reserved = b"_*[]()~`>#+-=|{}.!\n"
        if stack and stack[-1][0] in ("code", "pre", "pre_code"):
            reserved = b"`"
        if c not in reserved:
            utf16 += _units(c)
            out.append(c)
            i += 1
            continue
        nxt = _at(src, i + 1)
        is_end = False
        if stack:
            top = stack[-1][0]
            if in_quote and c == ord("\n") and nxt != ord(">"):
                is_end = True
            else:
                is_end = {
                    "bold": c == ord("*"),
                    "italic": c == ord("_") and nxt != ord("_"),
                    "code": c == ord("`"),
                    "pre": c == ord("`") and nxt == ord("`") and _at(src, i + 2) == ord("`"),
                    "text_link": c == ord("]"),
                    "underline": c == ord("_") and nxt == ord("_"),
                    "strikethrough": c == ord("~"),
                    "spoiler": c == ord("|") and nxt == ord("|"),
                    "custom_emoji": c == ord("]"),
                }.get("pre" if top == "pre_code" else top, False)
        if not is_end:
            begin = i
            argument = ""
            kind: str | None
            if c == ord("_"):
                kind = "underline" if nxt == ord("_") else "italic"
                i += 1 if nxt == ord("_") else 0
            elif c in b"*~":
                kind = "bold" if c == ord("*") else "strikethrough"
            elif c == ord("|"):
                if nxt != ord("|"):
                    raise _reserved(c)
                kind = "spoiler"
                i += 1
            elif c == ord("["):
                kind = "text_link"
            elif c == ord("`"):
                kind = "code"
                if nxt == ord("`") and _at(src, i + 2) == ord("`"):
                    i += 3
                    kind = "pre"
                    lang_end = i
                    while _at(src, lang_end) not in _TD_SPACES and _at(src, lang_end) != ord("`"):
                        lang_end += 1
                    if i != lang_end and lang_end < size and src[lang_end] != ord("`"):
                        kind, argument = "pre_code", src[i:lang_end].decode("utf-8", "replace")
                        i = lang_end
                    if _at(src, i) in b"\n\r":
                        pair = _at(src, i + 1) in b"\n\r" and _at(src, i) != _at(src, i + 1)
                        i += 2 if pair else 1
                    i -= 1
            elif c == ord("!"):
                if nxt != ord("["):
                    raise _reserved(c)
                kind = "custom_emoji"
                i += 1
            elif c == ord("\n"):
                utf16 += 1
                out.append(c)
                kind = None
                if nxt == ord(">"):
                    i += 1
                    if not in_quote:
                        kind, in_quote = "blockquote", True
            elif c == ord(">") and i == 0:
                kind, in_quote = "blockquote", True
            else:
                raise _reserved(c)
            if kind is not None:
                stack.append((kind, argument, utf16, begin, len(out)))
            i += 1
            continue
        kind, argument, offset, byte_offset, out_pos = stack[-1]
        if c == ord("\n") and kind != "blockquote":
            raise _parse_error(
                f"Can't find end of {_TD_NAMES[kind]} entity at byte offset {byte_offset}"
            )
        skip = utf16 == offset
        extra: dict[str, Any] = {}
        if kind in ("underline", "spoiler"):
            i += 1
        elif kind in ("pre", "pre_code"):
            i += 2
        elif kind == "text_link":
            if _at(src, i + 1) != ord("("):
                url = out[out_pos:].decode("utf-8", "replace")
            else:
                url_begin = i + 2
                url, i, found = _read_md_url(src, url_begin)
                if not found:
                    raise _parse_error(f"Can't find end of a URL at byte offset {url_begin}")
            skip = skip or not url
            extra["url"] = url
        elif kind == "custom_emoji":
            if _at(src, i + 1) != ord("("):
                raise _parse_error("Custom emoji entity must contain a tg://emoji URL")
            url_begin = i + 2
            url, i, found = _read_md_url(src, url_begin)
            if not found:
                raise _parse_error(
                    f"Can't find end of a custom emoji URL at byte offset {url_begin}"
                )
            emoji_id = url.removeprefix("tg://emoji?id=")
            if not emoji_id.isdigit() or int(emoji_id) == 0:
                raise _parse_error("Invalid custom emoji identifier specified")
            extra["custom_emoji_id"] = emoji_id
        elif kind == "blockquote":
            in_quote = False
            out.append(c)
            utf16 += 1
        if not skip:
            if kind == "pre_code":
                kind, extra = "pre", {"language": argument}
            entities.append(_entity(kind, offset, utf16 - offset, **extra))
        stack.pop()
        i += 1
    if in_quote and stack and stack[-1][0] == "blockquote":
        _, _, offset, _, _ = stack.pop()
        if utf16 > offset:
            entities.append(_entity("blockquote", offset, utf16 - offset))
    if stack:
        kind, _, _, byte_offset, _ = stack[-1]
        raise _parse_error(
            f"Can't find end of {_TD_NAMES[kind]} entity at byte offset {byte_offset}"
        )
    return _finish(out, entities, [])


def parse_markdown(text: str) -> ParsedText:
    """Telegram's legacy ``Markdown`` mode."""
    src = text.encode("utf-8")
    size = len(src)
    out = bytearray()
    utf16 = 0
    entities: list[dict[str, Any]] = []
    i = 0
    while i < size:
        c = src[i]
        if c == ord("\\") and _at(src, i + 1) in b"_*`[":
            out.append(src[i + 1])
            utf16 += 1
            i += 2
            continue
        if c not in b"_*`[":
            utf16 += _units(c)
            out.append(c)
            i += 1
            continue
        begin = i
        end_char = ord("]") if c == ord("[") else c
        i += 1
        language = ""
        is_pre = c == ord("`") and _at(src, i) == ord("`") and _at(src, i + 1) == ord("`")
        if is_pre:
            i += 2
            lang_end = i
            while _at(src, lang_end) not in _TD_SPACES and _at(src, lang_end) != ord("`"):
                lang_end += 1
            if i != lang_end and lang_end < size and src[lang_end] != ord("`"):
                language, i = src[i:lang_end].decode("utf-8", "replace"), lang_end
            if _at(src, i) in b"\n\r":
                i += 2 if _at(src, i + 1) in b"\n\r" and _at(src, i) != _at(src, i + 1) else 1
        offset = utf16
        while i < size and (
            src[i] != end_char
            or (is_pre and not (_at(src, i + 1) == ord("`") and _at(src, i + 2) == ord("`")))
        ):
            utf16 += _units(src[i])
            out.append(src[i])
            i += 1
        if i == size:
            raise _parse_error(f"Can't find end of the entity starting at byte offset {begin}")
        if utf16 != offset:
            length = utf16 - offset
            if c == ord("_"):
                entities.append(_entity("italic", offset, length))
            elif c == ord("*"):
                entities.append(_entity("bold", offset, length))
            elif c == ord("["):
                if _at(src, i + 1) != ord("("):
                    url = src[begin + 1 : i].decode("utf-8", "replace")
                else:
                    close = src.find(b")", i + 2)
                    close = size if close < 0 else close
                    url, i = src[i + 2 : close].decode("utf-8", "replace"), close
                entities.append(_entity("text_link", offset, length, url=url))
            elif is_pre:
                extra = {"language": language} if language else {}
                entities.append(_entity("pre", offset, length, **extra))
            else:
                entities.append(_entity("code", offset, length))
        i += 3 if is_pre else 1
    return _finish(out, entities, [])


def apply_entities(text: str, raw: Any) -> ParsedText:
    """Checks explicit ``entities``/``caption_entities`` as the Bot API does (UTF-16 offsets)."""
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise _bad("can't parse entities JSON object")
    total = utf16_len(text)
    entities: list[dict[str, Any]] = []
    for item in raw:
        if not isinstance(item, dict):
            raise _bad("can't parse MessageEntity: expected an Object")
        for key in ("offset", "length", "type"):
            if key not in item:
                raise _bad(f"can't parse MessageEntity: Can't find field \"{key}\"")
        for key in ("offset", "length"):
            if isinstance(item[key], bool) or not isinstance(item[key], int):
                raise _bad(f'can\'t parse MessageEntity: Field "{key}" must be of type Number')
        kind = item["type"]
        if kind == "":
            raise _bad("can't parse MessageEntity: Type is not specified")
        if kind in _FOUND_TYPES:
            continue  # Telegram finds these by itself and ignores given ones
        if kind not in _GIVEN_TYPES:
            raise _bad("can't parse MessageEntity: Unsupported type specified")
        needed = {"text_link": "url", "text_mention": "user", "custom_emoji": "custom_emoji_id"}
        if kind in needed and needed[kind] not in item:
            raise _bad(f"can't parse MessageEntity: Can't find field \"{needed[kind]}\"")
        if item["length"] <= 0:
            continue  # empty entities are dropped
        if item["offset"] < 0:
            # Exact wording unverified against Telegram; any 400 flags the bot's bug.
            raise _bad(f"entity offset {item['offset']} is negative")
        entities.append({k: item[k] for k in _ENTITY_FIELDS if k in item})
    entities = _sorted(entities)
    for e in entities:
        if e["offset"] >= total:
            raise _bad(f"entity begins after the end of the text at UTF-16 offset {e['offset']}")
        if e["offset"] + e["length"] > total:
            raise _bad(
                f"entity beginning at UTF-16 offset {e['offset']} ends after the end of the text "
                f"at UTF-16 offset {e['offset'] + e['length']}"
            )
    return ParsedText(text, entities)


def format_text(text: str, parse_mode: str | None, entities: Any = None) -> ParsedText:
    """Parses text as the Bot API does, then trims whitespace like TDLib (entities follow)."""
    mode = (parse_mode or "").lower()
    if mode in ("", "none"):
        parsed = apply_entities(text, entities)
    elif mode == "html":
        parsed = parse_html(text)
    elif mode == "markdownv2":
        parsed = parse_markdown_v2(text)
    elif mode == "markdown":
        parsed = parse_markdown(text)
    else:
        raise _bad("unsupported parse_mode")
    stripped = parsed.text.strip(" \t\r\n")
    shift = utf16_len(parsed.text[: len(parsed.text) - len(parsed.text.lstrip(" \t\r\n"))])
    total = utf16_len(stripped)
    entities_out = []
    for e in parsed.entities:
        start, end = max(e["offset"] - shift, 0), min(e["offset"] + e["length"] - shift, total)
        if end > start:
            entities_out.append({**e, "offset": start, "length": end - start})
    return ParsedText(stripped, entities_out, parsed.warnings)


_COMMAND = re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>@])")
_MENTION = re.compile(r"(?<![\w/@])@[A-Za-z0-9_]{5,32}(?![\w@])")


def find_auto_entities(text: str) -> list[dict[str, Any]]:
    """The bot_command and mention entities Telegram adds to a user's message."""
    found = [("bot_command", m) for m in _COMMAND.finditer(text)]
    found += [("mention", m) for m in _MENTION.finditer(text)]
    return _sorted(
        [_entity(kind, utf16_len(text[: m.start()]), utf16_len(m.group())) for kind, m in found]
    )


# --------------------------------------------------------------------------------------------
# Rich messages (sendRichMessage with `markdown`): Telegram parses the Markdown itself; the fake
# parses it with pyromark (the parser telegramify-markdown uses) into the `RichBlock` objects a
# sent message carries, and enforces the documented limits. Texts seen from Telegram:
# RICH_MESSAGE_CONTENT_REQUIRED, RICH_MESSAGE_TEXT_TOO_LONG, RICH_MESSAGE_BLOCKS_TOO_MANY; the
# ones for too many media, table columns or nesting levels and for a media id without its media
# are not documented and are the fake's guesses (RICH_MESSAGE_MEDIA_*, RICH_MESSAGE_TABLE_*,
# RICH_MESSAGE_NESTING_TOO_DEEP). Rich text is kept as plain strings (no bold/italic objects).

RICH_MAX_CHARS = 32768
RICH_MAX_BLOCKS = 500
RICH_MAX_MEDIA = 50
RICH_MAX_COLUMNS = 20
RICH_MAX_DEPTH = 16
_RICH_MEDIA_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TG_MEDIA_URL = re.compile(r"tg://(?P<kind>photo|video|document|audio)\?id=(?P<id>[^\s&#]*)")
_DETAILS_OPEN = re.compile(
    r"^\s*<details(?P<open>\s+open)?\s*>\s*(?:<summary>(?P<summary>.*?)</summary>)?(?P<rest>.*)$",
    re.S | re.I,
)
_TAG = re.compile(r"<[^>]*>")


def _rich_options() -> Any:
    import pyromark

    o = pyromark.Options
    return o.ENABLE_TABLES | o.ENABLE_MATH | o.ENABLE_STRIKETHROUGH | o.ENABLE_TASKLISTS


class _RichFrame:
    def __init__(self, kind: str, **extra: Any) -> None:
        self.kind = kind
        self.blocks: list[dict[str, Any]] = []
        self.extra = extra


class RichMarkdown:
    """Markdown → rich blocks, as Telegram builds them for a sent rich message.

    ``media`` maps each id given in the request's ``media`` to ``(kind, api_object)``, e.g.
    ``("photo", [PhotoSize…])``; every ``tg://photo?id=X`` must name one of the right kind.
    """

    def __init__(self, media: dict[str, tuple[str, Any]]) -> None:
        self.media = media
        self.used_media: set[str] = set()
        self.chars = 0
        self.stack = [_RichFrame("root")]
        self.inline: list[str] = []
        self.images: list[tuple[str, str]] = []  # (url, title) of the current paragraph
        self.math: list[str] = []
        self.in_image = 0
        self.table: list[list[dict[str, Any]]] | None = None
        self.row: list[dict[str, Any]] = []
        self.aligns: list[str] = []
        self.heading_level = 1
        self.code_language: str | None = None

    def parse(self, markdown: str) -> list[dict[str, Any]]:
        import pyromark

        for event in pyromark.events(markdown, options=_rich_options()):
            self._event(event)
        while len(self.stack) > 1:  # an unclosed <details> ends with the message
            self._close_frame()
        blocks = self.stack[0].blocks
        if not blocks:
            raise _bad("RICH_MESSAGE_CONTENT_REQUIRED")
        if self.chars > RICH_MAX_CHARS:
            raise _bad("RICH_MESSAGE_TEXT_TOO_LONG")
        if _count_blocks(blocks) > RICH_MAX_BLOCKS:
            raise _bad("RICH_MESSAGE_BLOCKS_TOO_MANY")
        return blocks

    # ---- building ---------------------------------------------------------------------------

    def _add(self, block: dict[str, Any]) -> None:
        self.stack[-1].blocks.append(block)

    def _text(self) -> str:
        text, self.inline = "".join(self.inline).strip(), []
        self.chars += len(text)
        return text

    def _push(self, kind: str, **extra: Any) -> None:
        if len(self.stack) > RICH_MAX_DEPTH:
            raise _bad("RICH_MESSAGE_NESTING_TOO_DEEP")
        self.stack.append(_RichFrame(kind, **extra))

    def _close_frame(self) -> None:
        self._flush_inline()
        frame = self.stack.pop()
        extra = frame.extra
        if frame.kind == "details":
            block = {"type": "details", "summary": extra["summary"], "blocks": frame.blocks}
            if extra["open"]:
                block["is_open"] = True
            self._add(block)
        elif frame.kind == "blockquote":
            self._add({"type": "blockquote", "blocks": frame.blocks})
        elif frame.kind == "item":
            self.stack[-1].extra["items"].append(frame.blocks)
        elif frame.kind == "list":
            start = extra["start"]
            items = [
                {"label": "•" if start is None else f"{start + i}.", "blocks": blocks}
                for i, blocks in enumerate(extra["items"])
            ]
            self._add({"type": "list", "items": items})

    def _flush_inline(self) -> None:
        """Text outside a paragraph (tight list items): a paragraph of its own."""
        if self.inline and "".join(self.inline).strip():
            self._add({"type": "paragraph", "text": self._text()})
        self.inline = []
        self._flush_images()

    def _flush_images(self) -> None:
        for url, title in self.images:
            self._add(self._media_block(url, title))
        self.images = []

    def _media_block(self, url: str, title: str) -> dict[str, Any]:
        match = _TG_MEDIA_URL.fullmatch(url)
        if match is None:  # an ordinary image link: Telegram shows it as a link
            return {"type": "paragraph", "text": title or url}
        kind, media_id = match["kind"], match["id"]
        found = self.media.get(media_id)
        if found is None:
            raise _bad("RICH_MESSAGE_MEDIA_NOT_FOUND")
        if found[0] != kind:
            raise _bad("RICH_MESSAGE_MEDIA_TYPE_INVALID")
        self.used_media.add(media_id)
        block: dict[str, Any] = {"type": kind, kind: found[1]}
        if title:
            block["caption"] = {"text": title}
            self.chars += len(title)
        return block

    def _event(self, event: Any) -> None:
        if isinstance(event, str):
            event = {event: None}
        ((name, value),) = event.items()
        if name == "Start":
            self._start(value)
        elif name == "End":
            self._end(value if isinstance(value, str) else next(iter(value)))
        elif name in ("Text", "Code"):
            if not self.in_image:
                self.inline.append(value)
        elif name == "InlineMath":
            self.inline.append(value)
        elif name == "DisplayMath":
            self.math.append(value)
            self.inline.append(value)
        elif name in ("SoftBreak",):
            self.inline.append(" ")
        elif name == "HardBreak":
            self.inline.append("\n")
        elif name == "InlineHtml":
            pass
        elif name == "Html":
            self._html(value)
        elif name == "Rule":
            self._add({"type": "divider"})
        elif name == "TaskListMarker":
            self.inline.append("☑ " if value else "☐ ")

    def _start(self, tag: Any) -> None:
        kind = tag if isinstance(tag, str) else next(iter(tag))
        value = None if isinstance(tag, str) else tag[kind]
        if kind in ("Paragraph", "Heading", "TableCell"):
            self._flush_inline()
            self.math = []
            if kind == "Heading":
                self.heading_level = int(str(value["level"]).lstrip("H"))
        elif kind == "CodeBlock":
            self._flush_inline()
            fenced = value.get("Fenced") if isinstance(value, dict) else None
            self.code_language = fenced or None
        elif kind == "Image":
            self.in_image += 1
            self.images.append((value["dest_url"], value.get("title") or ""))
        elif kind == "Table":
            self._flush_inline()
            self.aligns = [str(a).lower() for a in value]
            if len(self.aligns) > RICH_MAX_COLUMNS:
                raise _bad("RICH_MESSAGE_TABLE_TOO_WIDE")
            self.table = []
        elif kind in ("TableHead", "TableRow"):
            self.row = []
        elif kind == "List":
            self._flush_inline()
            self._push("list", start=value, items=[])
        elif kind == "Item":
            self._push("item")
        elif kind == "BlockQuote":
            self._flush_inline()
            self._push("blockquote")

    def _end(self, kind: str) -> None:
        if kind == "Paragraph":
            text = "".join(self.inline).strip()
            if self.math and text == "".join(self.math).strip():
                self.inline = []
                for expression in self.math:
                    self.chars += len(expression)
                    self._add({"type": "mathematical_expression", "expression": expression})
            elif text:
                self._add({"type": "paragraph", "text": self._text()})
            self.inline = []
            self._flush_images()
        elif kind == "Heading":
            text = self._text()
            if not text:
                raise _bad("RICH_MESSAGE_CONTENT_REQUIRED")
            self._add({"type": "heading", "text": text, "size": self.heading_level})
        elif kind == "CodeBlock":
            code = "".join(self.inline)
            self.inline = []
            self.chars += len(code)
            block = {"type": "pre", "text": code.removesuffix("\n")}
            if self.code_language:
                block["language"] = self.code_language
            self._add(block)
        elif kind == "Image":
            self.in_image -= 1
        elif kind == "TableCell":
            column = len(self.row)
            align = self.aligns[column] if column < len(self.aligns) else "none"
            cell = {"text": self._text(), "align": align if align != "none" else "left"}
            cell["valign"] = "middle"
            self.row.append(cell)
        elif kind == "TableHead":
            for cell in self.row:
                cell["is_header"] = True
            assert self.table is not None
            self.table.append(self.row)
        elif kind == "TableRow":
            assert self.table is not None
            self.table.append(self.row)
        elif kind == "Table":
            self._add({"type": "table", "cells": self.table or [], "is_bordered": True})
            self.table = None
        elif kind in ("Item", "List", "BlockQuote"):
            self._close_frame()

    def _html(self, html_text: str) -> None:
        opened = _DETAILS_OPEN.match(html_text)
        if opened is not None:
            self._flush_inline()
            summary = _TAG.sub("", opened["summary"] or "").strip() or "Details"
            self.chars += len(summary)
            self._push("details", summary=summary, open=bool(opened["open"]))
            rest = opened["rest"]
            closes = "</details>" in rest.lower()
            inner = _TAG.sub("", rest).strip()
            if inner:
                self.chars += len(inner)
                self._add({"type": "paragraph", "text": inner})
            if closes:
                self._close_frame()
            return
        if html_text.strip().lower().startswith("</details>"):
            if self.stack[-1].kind == "details":
                self._close_frame()
            return
        # Markdown is not parsed inside other block HTML: its text stands as it is.
        text = _TAG.sub("", html_text).strip()
        if text:
            self.chars += len(text)
            self._add({"type": "paragraph", "text": text})


def _count_blocks(blocks: list[dict[str, Any]]) -> int:
    """Blocks as Telegram counts them: list items, table rows and quotes count too."""
    total = 0
    for block in blocks:
        total += 1
        if block["type"] == "table":
            total += len(block["cells"])
        elif block["type"] == "list":
            total += sum(1 + _count_blocks(item["blocks"]) for item in block["items"])
        elif block["type"] in ("details", "blockquote"):
            total += _count_blocks(block["blocks"])
    return total


def rich_plain_text(blocks: list[dict[str, Any]]) -> str:
    """The text of rich blocks, one block a line (for searching a sent rich message)."""
    lines: list[str] = []
    for block in blocks:
        kind = block["type"]
        if kind in ("paragraph", "heading", "pre"):
            lines.append(block["text"])
        elif kind == "mathematical_expression":
            lines.append(block["expression"])
        elif kind == "table":
            lines += [" | ".join(c.get("text", "") for c in row) for row in block["cells"]]
        elif kind == "list":
            for item in block["items"]:
                lines.append(item["label"] + " " + rich_plain_text(item["blocks"]))
        elif kind == "details":
            lines.append(block["summary"])
            lines.append(rich_plain_text(block["blocks"]))
        elif kind == "blockquote":
            lines.append(rich_plain_text(block["blocks"]))
        elif "caption" in block:
            lines.append(block["caption"]["text"])
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The world


@dataclass(frozen=True)
class User:
    id: int
    first_name: str
    username: str | None = None
    language_code: str | None = None
    is_bot: bool = False

    def to_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data


@dataclass(eq=False)
class Chat:
    id: int
    type: str  # private | group | supergroup
    title: str | None = None
    user: User | None = None  # the other side of a private chat
    is_forum: bool = False
    bot_sees_all: bool = False  # privacy mode off, or the bot is an admin
    bot_is_admin: bool = False
    blocked: bool = False
    members: dict[int, str] = field(default_factory=dict)  # user id -> status
    topics: dict[str, int] = field(default_factory=dict)  # topic name -> message_thread_id
    messages: dict[int, StoredMessage] = field(default_factory=dict, repr=False)
    next_message_id: int = field(default=1, repr=False)

    def to_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.type == "private" and self.user is not None:
            data["first_name"] = self.user.first_name
            if self.user.username:
                data["username"] = self.user.username
        else:
            data["title"] = self.title
        if self.is_forum:
            data["is_forum"] = True
        return data


@dataclass(frozen=True)
class MessageVersion:
    text: str | None
    entities: list[dict[str, Any]]
    caption: str | None
    reply_markup: dict[str, Any] | None


@dataclass(eq=False)
class StoredMessage:
    chat: Chat
    message_id: int
    from_user: User | None
    date: int
    text: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    caption: str | None = None
    caption_entities: list[dict[str, Any]] = field(default_factory=list)
    reply_markup: dict[str, Any] | None = None
    thread_id: int | None = None
    reply_to: StoredMessage | None = None
    media: dict[str, Any] = field(default_factory=dict)  # e.g. {"photo": [...]} or {"document": {}}
    media_group_id: str | None = None
    service: dict[str, Any] = field(default_factory=dict)  # e.g. {"forum_topic_created": {...}}
    rich: dict[str, Any] | None = None  # a rich message: {"blocks": [...]} (and no text)
    edit_date: int | None = None
    deleted: bool = False
    delivered: bool = False  # did the bot get an update for it (user messages)
    versions: list[MessageVersion] = field(default_factory=list)

    def __repr__(self) -> str:
        body = self.text if self.text is not None else self.caption
        return f"StoredMessage(chat={self.chat.id}, id={self.message_id}, text={body!r})"

    @property
    def content(self) -> str:
        if self.rich is not None:
            return rich_plain_text(self.rich["blocks"])
        return self.text or self.caption or ""

    @property
    def buttons(self) -> list[dict[str, Any]]:
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [button for row in rows for button in row]

    def snapshot(self) -> MessageVersion:
        return MessageVersion(self.text, self.entities, self.caption, self.reply_markup)

    def to_api(self, *, nested: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "message_id": self.message_id,
            "date": self.date,
            "chat": self.chat.to_api(),
        }
        if self.from_user is not None:
            data["from"] = self.from_user.to_api()
        if self.thread_id is not None:
            data["message_thread_id"] = self.thread_id
            if self.chat.is_forum:
                data["is_topic_message"] = True
        if nested and self.reply_to is not None:
            data["reply_to_message"] = self.reply_to.to_api(nested=False)
        if self.text is not None:
            data["text"] = self.text
            if self.entities:
                data["entities"] = self.entities
        data.update(self.media)
        if self.rich is not None:
            data["rich_message"] = self.rich
        if self.caption:
            data["caption"] = self.caption
            if self.caption_entities:
                data["caption_entities"] = self.caption_entities
        if self.media_group_id:
            data["media_group_id"] = self.media_group_id
        data.update(self.service)
        if self.edit_date:
            data["edit_date"] = self.edit_date
        if self.reply_markup:
            data["reply_markup"] = self.reply_markup
        return data


@dataclass(eq=False)
class StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    size: int
    path: str  # relative file_path, as getFile returns it
    file_name: str | None = None
    mime_type: str | None = None


@dataclass(frozen=True)
class UploadedFile:
    field: str
    filename: str
    content_type: str | None
    data: bytes


@dataclass(eq=False)
class ApiCall:
    method: str
    params: dict[str, Any]  # form values as sent (strings); JSON fields decoded
    files: dict[str, UploadedFile]
    at: float
    via_webhook_reply: bool = False
    status: int | None = None  # None while in flight
    response: dict[str, Any] | None = None

    def __repr__(self) -> str:
        outcome = self.status if self.ok or self.status is None else f"{self.status} {self.error}"
        return f"ApiCall({self.method} -> {outcome})"

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def error(self) -> str | None:
        return None if self.response is None else self.response.get("description")

    @property
    def result(self) -> Any:
        return None if self.response is None else self.response.get("result")


@dataclass(frozen=True)
class SentPhoto:
    chat_id: int
    message_id: int
    width: int
    height: int
    data: bytes
    filename: str | None
    caption: str | None
    thread_id: int | None
    media_group_id: str | None = None


@dataclass(frozen=True)
class SentDocument:
    chat_id: int
    message_id: int
    filename: str | None
    mime_type: str | None
    data: bytes
    caption: str | None
    thread_id: int | None
    media_group_id: str | None = None


@dataclass(frozen=True)
class ChatAction:
    chat_id: int
    action: str
    thread_id: int | None


@dataclass(frozen=True)
class CallbackPress:
    id: str
    data: str
    message: StoredMessage
    user: User


@dataclass(frozen=True)
class CallbackAnswer:
    query_id: str
    text: str | None
    show_alert: bool
    url: str | None


@dataclass(frozen=True)
class FloodEvent:
    method: str
    chat_id: int | None
    retry_after: int


@dataclass(frozen=True)
class Draft:
    chat_id: int
    draft_id: int
    text: str
    entities: list[dict[str, Any]]
    thread_id: int | None
    can_stop: bool = False
    at: float = 0.0  # time.monotonic() when Telegram took it


@dataclass(frozen=True)
class WebhookDelivery:
    update_id: int
    status: int | None
    error: str | None


# --------------------------------------------------------------------------------------------
# Flood control


@dataclass(frozen=True)
class FloodLimits:
    """Token buckets per chat: ``*_burst`` messages at once, refilled at the given rate.

    Telegram does not publish its limits; the defaults follow its guidance (about one message
    per second in a chat with short bursts, 20 per minute in a group, 30 per second overall).
    A request is let through while its chat has a whole token and may overdraw it (an album of
    N costs N), so the debt delays later messages.
    """

    private_per_second: float = 1.0
    private_burst: float = 6
    group_per_minute: float = 20
    group_burst: float = 10
    global_per_second: float = 30
    global_burst: float = 30
    enabled: bool = True

    @classmethod
    def strict(cls) -> FloodLimits:
        """One message per second in private chats, one per 3 s in groups, no bursts."""
        return cls(private_burst=1, group_burst=1)

    @classmethod
    def off(cls) -> FloodLimits:
        return cls(enabled=False)


@dataclass
class _Bucket:
    capacity: float
    per_second: float
    tokens: float
    updated: float
    blocked_until: float = 0.0


class _FloodControl:
    def __init__(self, limits: FloodLimits) -> None:
        self.limits = limits
        self._buckets: dict[object, _Bucket] = {}

    def _bucket(self, key: object, capacity: float, per_second: float, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, per_second, capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * per_second)
        bucket.updated = now
        return bucket

    def check(self, chat_id: int, private: bool, cost: int, now: float) -> tuple[int, bool] | None:
        """None when allowed (and charged), else ``(retry_after, is_violation)``."""
        limits = self.limits
        if not limits.enabled:
            return None
        if private:
            chat = self._bucket(chat_id, limits.private_burst, limits.private_per_second, now)
        else:
            chat = self._bucket(chat_id, limits.group_burst, limits.group_per_minute / 60, now)
        every = self._bucket("*", limits.global_burst, limits.global_per_second, now)
        for bucket in (chat, every):
            if now < bucket.blocked_until:
                return math.ceil(bucket.blocked_until - now), True
        for bucket in (chat, every):
            if bucket.tokens < 1:
                retry_after = max(1, math.ceil((1 - bucket.tokens) / bucket.per_second))
                bucket.blocked_until = now + retry_after
                return retry_after, False
        chat.tokens -= cost
        every.tokens -= cost
        return None


# --------------------------------------------------------------------------------------------
# The server


class _Signal:
    """Wakes every waiter on each change; waiters re-check their own condition."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, timeout: float | None) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)


class _Args:
    """Typed access to one request's parameters."""

    def __init__(self, call: ApiCall, params: dict[str, Any] | None = None) -> None:
        self.call = call
        self.params = call.params if params is None else params
        self.files = call.files

    def text(self, key: str) -> str | None:
        value = self.params.get(key)
        return None if value is None else str(value)

    def integer(self, key: str) -> int | None:
        value = self.params.get(key)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise _bad(f"invalid {key} specified") from None

    def flag(self, key: str) -> bool:
        return self.params.get(key) in (True, 1, "1", "true", "True")

    def json(self, key: str) -> Any:
        value = self.params.get(key)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise _bad(f"can't parse {key} JSON object") from None
        return value


@dataclass
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class _Input:
    data: bytes | None
    filename: str | None
    mime_type: str | None
    stored: StoredFile | None = None


class LoopbackSession(AiohttpSession):
    """aiogram's ``AiohttpSession``, minus the 250 ms pause ``close()`` keeps for TLS shutdown.

    Requests go through the unchanged session; over plain loopback HTTP there is no TLS to drain.
    """

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


class TelegramFake:
    """A small Telegram world served over loopback HTTP. Use as an async context manager."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_username: str = "DataLensBot",
        bot_first_name: str = "DataLens",
        local_mode: bool = False,
        flood: FloodLimits | None = None,
        require_https_webhook: bool = False,
        webhook_retry_delay: float = 0.2,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        bot_id, sep, _ = token.partition(":")
        if not sep or not bot_id.isdigit():
            raise ValueError("token must look like '<bot id>:<secret>'")
        self.token = token
        self.bot_user = User(int(bot_id), bot_first_name, username=bot_username, is_bot=True)
        self.local_mode = local_mode
        self.require_https_webhook = require_https_webhook
        self.webhook_retry_delay = webhook_retry_delay
        self._flood = _FloodControl(flood or FloodLimits())

        self.calls: list[ApiCall] = []
        self.polls: list[ApiCall] = []
        self.sent_photos: list[SentPhoto] = []
        self.sent_documents: list[SentDocument] = []
        self.chat_actions: list[ChatAction] = []
        self.callback_answers: dict[str, CallbackAnswer] = {}
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.reactions: dict[tuple[int, int], list[dict[str, Any]]] = {}
        self.drafts: list[Draft] = []
        self.drafts_after_stop: list[Draft] = []  # sent with a draft id the user had stopped
        self._live_drafts: dict[tuple[int, int | None], Draft] = {}  # (chat, thread) → shown
        self._stopped_drafts: set[tuple[int, int]] = set()
        self.flood_refusals: list[FloodEvent] = []
        self.flood_violations: list[FloodEvent] = []
        self.general_topic_attempts: list[ApiCall] = []
        self.entity_overflows: list[ApiCall] = []
        self.html_warnings: list[str] = []
        self.unhandled_methods: list[str] = []
        self._refusals: list[tuple[str, str, Callable[[ApiCall], bool] | None]] = []
        self._after_faults: list[tuple[str, int, float, Callable[[ApiCall], bool] | None]] = []
        self.executed_despite_error: list[ApiCall] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.dropped_updates: list[dict[str, Any]] = []

        self._users: dict[int, User] = {self.bot_user.id: self.bot_user}
        self._chats: dict[int, Chat] = {}
        self._files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._queries: dict[str, CallbackPress] = {}
        self._updates: list[dict[str, Any]] = []
        self._allowed_updates = DEFAULT_ALLOWED_UPDATES
        self._poll_generation = 0
        self._ids = itertools.count(1)
        self._user_ids = itertools.count(1_000_001)
        self._update_ids = itertools.count(700_000_001)
        self._signal = _Signal()
        self._closing = False
        self._webhook: _Webhook | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._client: ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._local_dir: Path | None = None
        self._host = host
        self._port = port
        self._handlers: dict[str, Callable[[_Args], Any]] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "getfile": self._get_file,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagecaption": self._edit_message_caption,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "deletemessage": self._delete_message,
            "sendphoto": self._send_photo,
            "senddocument": self._send_document,
            "sendmediagroup": self._send_media_group,
            "sendchataction": self._send_chat_action,
            "sendmessagedraft": self._send_message_draft,
            "sendrichmessage": self._send_rich_message,
            "answercallbackquery": self._answer_callback_query,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "setmessagereaction": self._set_message_reaction,
            "getchatmember": self._get_chat_member,
            "getchat": self._get_chat,
        }

    # ---- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> TelegramFake:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_REQUEST_SIZE)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self._port = self._runner.addresses[0][1]
        if self.local_mode:
            self._local_dir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="tg-fake-"))

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._signal.notify()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._local_dir is not None:
            await asyncio.to_thread(shutil.rmtree, self._local_dir, ignore_errors=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def flood(self) -> FloodLimits:
        return self._flood.limits

    @flood.setter
    def flood(self, limits: FloodLimits) -> None:
        self._flood = _FloodControl(limits)

    def make_bot(self, **bot_kwargs: Any) -> Bot:
        """A real aiogram ``Bot`` whose ``AiohttpSession`` points at this fake."""
        api = TelegramAPIServer.from_base(self.base_url, is_local=self.local_mode)
        return Bot(self.token, session=LoopbackSession(api=api), **bot_kwargs)

    # ---- building the world ----------------------------------------------------------------

    def user(
        self, first_name: str = "Ann", *, username: str | None = None, language_code: str = "en"
    ) -> User:
        user = User(next(self._user_ids), first_name, username, language_code or None)
        self._users[user.id] = user
        return user

    def private_chat(self, user: User) -> Chat:
        chat = self._chats.get(user.id)
        if chat is None:
            chat = Chat(user.id, "private", user=user, members={user.id: "member"})
            self._chats[user.id] = chat
        return chat

    def group(
        self,
        title: str = "Data team",
        *,
        members: Iterable[User] = (),
        supergroup: bool = False,
        bot_is_admin: bool = False,
        privacy_mode: bool = True,
    ) -> Chat:
        serial = next(self._ids)
        chat_id = -(1_000_000_000_000 + serial) if supergroup else -(4_000_000 + serial)
        chat = Chat(chat_id, "supergroup" if supergroup else "group", title=title)
        chat.bot_is_admin = bot_is_admin
        chat.bot_sees_all = bot_is_admin or not privacy_mode
        for index, member in enumerate(members):
            chat.members[member.id] = "creator" if index == 0 else "member"
        self._chats[chat_id] = chat
        return chat

    def forum(
        self,
        title: str = "Data forum",
        *,
        topics: Iterable[str] = ("Data",),
        members: Iterable[User] = (),
        bot_is_admin: bool = False,
        privacy_mode: bool = True,
    ) -> Chat:
        """A forum supergroup; ``chat.topics[name]`` is each topic's message_thread_id."""
        members = list(members) or [self.user("Owner")]
        chat = self.group(
            title,
            members=members,
            supergroup=True,
            bot_is_admin=bot_is_admin,
            privacy_mode=privacy_mode,
        )
        chat.is_forum = True
        chat.next_message_id = GENERAL_TOPIC_ID + 1
        for name in topics:
            created = {"forum_topic_created": {"name": name, "icon_color": 7322096}}
            root = self._new_message(chat, members[0], service=created)
            root.thread_id = root.message_id
            chat.topics[name] = root.message_id
        return chat

    def block(self, user: User) -> None:
        """The user blocked the bot: sends to them fail with 403."""
        self.private_chat(user).blocked = True

    # ---- updates from users ----------------------------------------------------------------

    def send_text(
        self,
        chat: Chat,
        user: User,
        text: str,
        *,
        reply_to: StoredMessage | None = None,
        thread_id: int | None = None,
        entities: list[dict[str, Any]] | None = None,
    ) -> StoredMessage:
        """A user posts a text message (delivered to the bot unless privacy mode hides it)."""
        thread, reply = self._user_thread(chat, thread_id, reply_to)
        message = self._new_message(
            chat,
            user,
            text=text,
            entities=find_auto_entities(text) if entities is None else entities,
            thread_id=thread,
            reply_to=reply,
        )
        self._deliver(message)
        return message

    def send_document(
        self,
        chat: Chat,
        user: User,
        filename: str,
        data: bytes = b"",
        *,
        mime_type: str | None = None,
        caption: str | None = None,
        file_size_override: int | None = None,
        reply_to: StoredMessage | None = None,
        thread_id: int | None = None,
    ) -> StoredMessage:
        """A user uploads a file; getFile and the download URL serve ``data``."""
        mime_type = mime_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        size = len(data) if file_size_override is None else file_size_override
        stored = self._store_file(data, "documents", filename, mime_type, size)
        thread, reply = self._user_thread(chat, thread_id, reply_to)
        message = self._new_message(
            chat,
            user,
            caption=caption,
            caption_entities=find_auto_entities(caption or ""),
            media={"document": self._document_api(stored)},
            thread_id=thread,
            reply_to=reply,
        )
        self._deliver(message)
        return message

    def press(
        self, message: StoredMessage, button: str, *, user: User | None = None
    ) -> CallbackPress:
        """A user presses an inline button (found by its text or callback_data)."""
        for candidate in message.buttons:
            if button in (candidate.get("text"), candidate.get("callback_data")):
                break
        else:
            labels = [b.get("text") for b in message.buttons]
            raise LookupError(f"no button {button!r} on {message!r}; buttons: {labels}")
        if "callback_data" not in candidate:
            raise LookupError(f"button {button!r} has no callback_data")
        user = user or message.chat.user
        if user is None:
            raise ValueError("say which user presses the button in a group")
        press = CallbackPress(secrets.token_hex(8), candidate["callback_data"], message, user)
        self._queries[press.id] = press
        self._enqueue(
            "callback_query",
            {
                "id": press.id,
                "from": user.to_api(),
                "message": message.to_api(),
                "chat_instance": str(abs(message.chat.id) * 7 + 3),
                "data": press.data,
            },
        )
        return press

    def stop_generation(
        self, chat: Chat, draft_id: int | None = None, *, thread_id: int | None = None
    ) -> int:
        """The user presses the stop button of the draft shown in the chat (or topic): Telegram
        removes the draft and sends ``stopped_message_generation``. The button exists only on a
        live draft sent with ``can_stop``; returns the stopped draft's id."""
        draft = self.live_draft(chat, thread_id=thread_id)
        if draft is None or (draft_id is not None and draft.draft_id != draft_id):
            raise LookupError(f"no draft {draft_id or ''} is shown in chat {chat.id}")
        if not draft.can_stop:
            raise LookupError(f"draft {draft.draft_id} was sent without can_stop: no stop button")
        del self._live_drafts[(chat.id, thread_id)]
        self._stopped_drafts.add((chat.id, draft.draft_id))
        payload: dict[str, Any] = {"chat": chat.to_api(), "draft_id": draft.draft_id}
        if thread_id is not None:
            payload["message_thread_id"] = thread_id
        self._enqueue("stopped_message_generation", payload)
        return draft.draft_id

    # ---- inspection ------------------------------------------------------------------------

    def calls_of(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def methods(self) -> list[str]:
        return [c.method for c in self.calls]

    def chat(self, chat_id: int) -> Chat:
        return self._chats[chat_id]

    def messages(self, chat: Chat | int, *, include_users: bool = False) -> list[StoredMessage]:
        """Live (not deleted) messages, the bot's only unless ``include_users``."""
        chat = self._chats[chat if isinstance(chat, int) else chat.id]
        return [
            m
            for m in chat.messages.values()
            if not m.deleted and (include_users or m.from_user == self.bot_user)
        ]

    def live_draft(self, chat: Chat | int, *, thread_id: int | None = None) -> Draft | None:
        """The draft the chat shows now: the last one sent, until the bot sends a message there,
        the user stops it, or ``DRAFT_LIFETIME`` seconds pass."""
        chat_id = chat if isinstance(chat, int) else chat.id
        draft = self._live_drafts.get((chat_id, thread_id))
        if draft is None or time.monotonic() - draft.at > DRAFT_LIFETIME:
            return None
        return draft

    def rich_photos(self, message: StoredMessage) -> list[bytes]:
        """The pictures embedded in a rich message, in the order they show."""

        def walk(blocks: list[dict[str, Any]]) -> list[bytes]:
            found: list[bytes] = []
            for block in blocks:
                if block["type"] == "photo":
                    found.append(self._files[block["photo"][-1]["file_id"]].data)
                for key in ("blocks",):
                    found += walk(block.get(key, []))
                for item in block.get("items", []):
                    found += walk(item["blocks"])
            return found

        return walk((message.rich or {}).get("blocks", []))

    def edits_of(
        self, message: StoredMessage | int, chat: Chat | None = None
    ) -> list[MessageVersion]:
        """Each edit applied to the message, in order (the original version excluded)."""
        if isinstance(message, int):
            chats = [chat] if chat is not None else list(self._chats.values())
            found = [c.messages[message] for c in chats if message in c.messages]
            if len(found) != 1:
                raise LookupError(f"message {message} is in {len(found)} chats; pass chat=")
            message = found[0]
        return message.versions[1:]

    def describe(self, last: int = 15) -> str:
        return "\n".join(repr(c) for c in self.calls[-last:]) or "(no calls)"

    # ---- waiting ---------------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Returns the predicate's first truthy value, re-checked after every change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"condition not met within {timeout} s; last calls:\n{self.describe()}"
                )
            await self._signal.wait(remaining)

    async def wait_for_message(
        self,
        chat: Chat | int,
        contains: str | None = None,
        *,
        predicate: Callable[[StoredMessage], bool] | None = None,
        timeout: float = 5.0,
    ) -> StoredMessage:
        """The first bot message in the chat whose current text/caption contains ``contains``."""

        def find() -> StoredMessage | None:
            for message in self.messages(chat):
                if contains is not None and contains not in message.content:
                    continue
                if predicate is None or predicate(message):
                    return message
            return None

        return await self.wait_for(find, timeout=timeout)

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        *,
        timeout: float = 5.0,
    ) -> ApiCall:
        """The first completed call of ``method`` (matching ``predicate``)."""

        def find() -> ApiCall | None:
            calls = self.polls if method.lower() == "getupdates" else self.calls_of(method)
            for call in calls:
                if call.status is not None and (predicate is None or predicate(call)):
                    return call
            return None

        return await self.wait_for(find, timeout=timeout)

    # ---- internals: world ------------------------------------------------------------------

    def _new_message(self, chat: Chat, sender: User | None, **fields: Any) -> StoredMessage:
        if sender is not None and sender != self.bot_user:
            chat.members.setdefault(sender.id, "member")
        message = StoredMessage(chat, chat.next_message_id, sender, int(time.time()), **fields)
        chat.next_message_id += 1
        if sender == self.bot_user:  # any message the bot sends removes its draft there
            self._live_drafts.pop((chat.id, message.thread_id), None)
        message.versions.append(message.snapshot())
        chat.messages[message.message_id] = message
        self._signal.notify()
        return message

    def _user_thread(
        self, chat: Chat, thread_id: int | None, reply_to: StoredMessage | None
    ) -> tuple[int | None, StoredMessage | None]:
        if thread_id is None or thread_id == GENERAL_TOPIC_ID:
            if reply_to is not None and chat.is_forum:
                return reply_to.thread_id, reply_to
            return None, reply_to
        if thread_id not in chat.topics.values():
            raise ValueError(f"chat {chat.id} has no topic {thread_id}")
        # Telegram makes a topic message without a reply a reply to the topic's creation message.
        return thread_id, reply_to or chat.messages[thread_id]

    def _deliver(self, message: StoredMessage) -> None:
        chat = message.chat
        visible = chat.type == "private" or chat.bot_sees_all
        replied = message.reply_to
        if replied is not None and replied.from_user == self.bot_user:
            visible = True
        body = message.text if message.text is not None else message.caption or ""
        for entity in message.entities or message.caption_entities:
            if entity["type"] == "bot_command":
                command = body.encode("utf-16-le")[
                    2 * entity["offset"] : 2 * (entity["offset"] + entity["length"])
                ].decode("utf-16-le")
                _, at, addressee = command.partition("@")
                username = (self.bot_user.username or "").lower()
                visible = visible or not at or addressee.lower() == username
        message.delivered = visible
        if visible:
            self._enqueue("message", message.to_api())
        self._signal.notify()

    def _enqueue(self, kind: str, payload: dict[str, Any]) -> None:
        self._updates.append({"update_id": next(self._update_ids), kind: payload})
        self._signal.notify()

    def _deliverable(self, limit: int) -> list[dict[str, Any]]:
        ready: list[dict[str, Any]] = []
        for update in list(self._updates):
            kind = next(k for k in update if k != "update_id")
            if kind not in self._allowed_updates:
                self._updates.remove(update)
                self.dropped_updates.append(update)
                continue
            ready.append(update)
            if len(ready) >= limit:
                break
        return ready

    def _store_file(
        self, data: bytes, folder: str, name: str | None, mime: str | None, size: int | None = None
    ) -> StoredFile:
        serial = next(self._ids)
        suffix = Path(name).suffix if name else ""
        stored = StoredFile(
            file_id=f"BQACAgIAAxk{secrets.token_urlsafe(24)}",
            file_unique_id=f"AgAD{secrets.token_urlsafe(8)}",
            data=data,
            size=len(data) if size is None else size,
            path=f"{folder}/file_{serial}{suffix}",
            file_name=name,
            mime_type=mime,
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.path] = stored
        return stored

    @staticmethod
    def _document_api(stored: StoredFile) -> dict[str, Any]:
        data: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
        }
        if stored.file_name:
            data["file_name"] = stored.file_name
        if stored.mime_type:
            data["mime_type"] = stored.mime_type
        return data

    def _photo_sizes(self, stored: StoredFile, width: int, height: int) -> list[dict[str, Any]]:
        longest = max(width, height)
        bounds = [b for b in (90, 320, 800, 1280) if b < longest] + [min(longest, 2560)]
        sizes = []
        for bound in bounds:
            file_id = f"AgACAgIAAxk{secrets.token_urlsafe(24)}"
            self._files[file_id] = stored
            sizes.append(
                {
                    "file_id": file_id,
                    "file_unique_id": f"AQAD{secrets.token_urlsafe(8)}",
                    "width": max(1, round(width * bound / longest)),
                    "height": max(1, round(height * bound / longest)),
                    "file_size": max(1, stored.size * bound * bound // (longest * longest)),
                }
            )
        return sizes

    # ---- internals: HTTP -------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        method = request.match_info["method"]
        try:
            params, files = await self._read_request(request)
        except ApiError as error:
            return web.json_response(error.body(), status=error.code)
        call = ApiCall(method, params, files, time.monotonic())
        (self.polls if method.lower() == "getupdates" else self.calls).append(call)
        self._signal.notify()
        fault = self._take_after_fault(call)
        body = await self._execute(call)
        if fault is not None and call.ok:
            status, delay = fault
            self.executed_despite_error.append(call)
            if delay:
                await asyncio.sleep(delay)  # the client has given up by now
            if status:
                description = "Internal Server Error" if status == 500 else "Bad Gateway"
                call.status = status
                call.response = {"ok": False, "error_code": status, "description": description}
                body = call.response
            self._signal.notify()
        return web.json_response(body, status=call.status or 200)

    def fail_after_executing(
        self, method: str, status: int = 500, when: Callable[[ApiCall], bool] | None = None
    ) -> None:
        """Fault injection: the next matching call is carried out (a message is sent), then
        answered with a 5xx, as when Telegram's front end loses the backend's answer."""
        self._after_faults.append((method.lower(), status, 0.0, when))

    def answer_late(
        self, method: str, seconds: float, when: Callable[[ApiCall], bool] | None = None
    ) -> None:
        """Fault injection: the next matching call is carried out at once and answered only
        after ``seconds`` (make it longer than the client's timeout)."""
        self._after_faults.append((method.lower(), 0, seconds, when))

    def _take_after_fault(self, call: ApiCall) -> tuple[int, float] | None:
        name = call.method.lower()
        for index, (method, status, delay, when) in enumerate(self._after_faults):
            if method == name and (when is None or when(call)):
                del self._after_faults[index]
                return status, delay
        return None

    async def _read_request(
        self, request: web.Request
    ) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
        params: dict[str, Any] = dict(request.query)
        files: dict[str, UploadedFile] = {}
        limit = LOCAL_MAX_UPLOAD_SIZE if self.local_mode else MAX_REQUEST_SIZE
        if request.method == "POST" and request.body_exists:
            if request.content_type.startswith("multipart/"):
                total = 0
                async for part in await request.multipart():
                    if not isinstance(part, BodyPartReader) or part.name is None:
                        continue
                    data = bytes(await part.read())
                    total += len(data)
                    if total > limit:
                        raise ApiError(413, "Request Entity Too Large")
                    if part.filename is not None:
                        content_type = part.headers.get("Content-Type")
                        files[part.name] = UploadedFile(
                            part.name, part.filename, content_type, data
                        )
                    else:
                        params[part.name] = data.decode("utf-8")
            elif request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
            else:
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        for key in JSON_FIELDS & params.keys():
            if isinstance(params[key], str):
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(params[key])
        return params, files

    def refuse_next(
        self, method: str, description: str, when: Callable[[ApiCall], bool] | None = None
    ) -> None:
        """Fault injection: the next matching call of ``method`` gets 400 ``description``
        (e.g. a formatting Telegram rejects for reasons the fake does not model)."""
        self._refusals.append((method.lower(), description, when))

    async def _execute(self, call: ApiCall) -> dict[str, Any]:
        name = call.method.lower()
        for index, (method, description, when) in enumerate(self._refusals):
            if method == name and (when is None or when(call)):
                del self._refusals[index]
                call.status, call.response = 400, _bad(description).body()
                self._signal.notify()
                return call.response
        handler = self._handlers.get(name)
        try:
            if handler is not None:
                result = handler(_Args(call))
                if asyncio.iscoroutine(result):
                    result = await result
            elif name in _bot_api_methods():
                log.info("fake Telegram: %s is not modelled, answering True", call.method)
                self.unhandled_methods.append(call.method)
                result = True
            else:
                raise ApiError(404, "Not Found")
            call.status, call.response = 200, {"ok": True, "result": result}
        except ApiError as error:
            call.status, call.response = error.code, error.body()
        log.debug("fake Telegram: %r", call)
        self._signal.notify()
        return call.response

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        stored = self._files_by_path.get(request.match_info["path"])
        if stored is None:
            return web.json_response(ApiError(404, "Not Found").body(), status=404)
        return web.Response(body=stored.data, content_type="application/octet-stream")

    # ---- internals: shared checks ----------------------------------------------------------

    def _chat(self, a: _Args, key: str = "chat_id") -> Chat:
        raw = a.params.get(key)
        if raw is None or raw == "":
            raise _bad(f"{key} is empty")
        try:
            chat = self._chats.get(int(raw))
        except (TypeError, ValueError):
            chat = None
        if chat is None:
            raise _bad("chat not found")
        if chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _message(self, chat: Chat, message_id: int | None, missing: str) -> StoredMessage:
        if message_id is None:
            raise _bad("message identifier is not specified")
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise _bad(missing)
        return message

    def _reply_target(self, a: _Args, chat: Chat) -> StoredMessage | None:
        parameters = a.json("reply_parameters") or {}
        message_id = parameters.get("message_id") or a.integer("reply_to_message_id")
        if not message_id:
            return None
        message = chat.messages.get(int(message_id))
        if message is None or message.deleted:
            if parameters.get("allow_sending_without_reply") or a.flag(
                "allow_sending_without_reply"
            ):
                return None
            raise _bad("message to be replied not found")
        return message

    def _thread(self, a: _Args, chat: Chat, reply_to: StoredMessage | None) -> int | None:
        thread_id = a.integer("message_thread_id")
        if thread_id is None:
            return reply_to.thread_id if reply_to is not None and chat.is_forum else None
        if chat.is_forum:
            if thread_id == GENERAL_TOPIC_ID:
                self.general_topic_attempts.append(a.call)
            if thread_id in chat.topics.values():
                return thread_id
        elif chat.type == "supergroup" and thread_id in chat.messages:
            return thread_id  # a reply thread in a plain supergroup
        raise _bad("message thread not found")

    def _formatted(self, a: _Args, text_key: str, *, caption: bool) -> tuple[str, list[dict]]:
        raw = a.text(text_key) or ""
        parse_mode = a.text("parse_mode")
        if not caption and not raw:
            raise _bad("message text is empty")
        entities_key = "caption_entities" if caption else "entities"
        parsed = format_text(raw, parse_mode, a.json(entities_key))
        self.html_warnings.extend(parsed.warnings)
        if not caption and not parsed.text.replace("\u200b", ""):
            raise _bad("text must be non-empty")
        if caption and len(parsed.text) > MAX_CAPTION_LENGTH:
            raise _bad("message caption is too long")
        if not caption and len(parsed.text) > MAX_TEXT_LENGTH:
            raise _bad("message is too long")
        if len(parsed.entities) > MAX_ENTITIES:
            self.entity_overflows.append(a.call)  # Telegram silently drops the rest
        return parsed.text, parsed.entities[:MAX_ENTITIES]

    @staticmethod
    def _markup(a: _Args) -> dict[str, Any] | None:
        markup = a.json("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad("object expected as reply markup")
        rows = markup.get("inline_keyboard")
        if rows is None:
            return markup
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
        for button in (button for row in rows for button in row):
            if not isinstance(button, dict) or "text" not in button:
                raise _bad("can't parse inline keyboard button: Can't find field \"text\"")
            if "callback_data" in button:
                size = len(str(button["callback_data"]).encode("utf-8"))
                if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
                    raise _bad("BUTTON_DATA_INVALID")
            elif not BUTTON_ACTIONS & button.keys():
                raise _bad(
                    "can't parse inline keyboard button: Text buttons are unallowed in the "
                    "inline keyboard"
                )
        return markup

    def _charge(self, a: _Args, chat: Chat, cost: int = 1) -> None:
        verdict = self._flood.check(chat.id, chat.type == "private", cost, time.monotonic())
        if verdict is None:
            return
        retry_after, violation = verdict
        event = FloodEvent(a.call.method, chat.id, retry_after)
        self.flood_refusals.append(event)
        if violation:
            self.flood_violations.append(event)
        raise ApiError(
            429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
        )

    def _input_file(self, a: _Args, value: Any, key: str) -> _Input:
        if value is None and key in a.files:  # a part named after the field itself
            value = f"attach://{key}"
        if not isinstance(value, str) or not value:
            raise _bad(f"there is no {key} in the request")
        if value.startswith("attach://"):
            upload = a.files.get(value.removeprefix("attach://"))
            if upload is None:
                raise _bad("can't parse InputMedia: media not found")
            mime = upload.content_type
            if not mime or mime == "application/octet-stream":
                mime = mimetypes.guess_type(upload.filename)[0] or mime
            return _Input(upload.data, upload.filename, mime)
        if value.startswith(("http://", "https://")):
            return _Input(None, value.rsplit("/", 1)[-1], None)  # URLs are not fetched
        stored = self._files.get(value)
        if stored is None:
            raise _bad("wrong file identifier/HTTP URL specified")
        return _Input(stored.data, stored.file_name, stored.mime_type, stored)

    @staticmethod
    def _photo_dimensions(data: bytes) -> tuple[int, int]:
        if len(data) > MAX_PHOTO_SIZE:
            raise _bad("file is too big")
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        except (UnidentifiedImageError, OSError):
            raise _bad("IMAGE_PROCESS_FAILED") from None
        ratio = max(width, height) / max(1, min(width, height))
        if width + height > MAX_PHOTO_SIDES_SUM or ratio > MAX_PHOTO_RATIO:
            raise _bad("PHOTO_INVALID_DIMENSIONS")
        return width, height

    def _check_document(self, upload: _Input) -> None:
        limit = LOCAL_MAX_UPLOAD_SIZE if self.local_mode else MAX_DOCUMENT_SIZE
        if upload.data is not None and len(upload.data) > limit:
            raise ApiError(413, "Request Entity Too Large")
        if upload.data is not None and not upload.data and upload.stored is None:
            raise _bad("file must be non-empty")

    # ---- methods ---------------------------------------------------------------------------

    def _get_me(self, a: _Args) -> dict[str, Any]:
        return self.bot_user.to_api() | {
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _get_updates(self, a: _Args) -> list[dict[str, Any]]:
        if self._webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset, limit = a.integer("offset"), min(max(a.integer("limit") or 100, 1), 100)
        allowed = a.json("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) or DEFAULT_ALLOWED_UPDATES
        if offset is not None and offset < 0:
            self._updates = self._updates[offset:]
        elif offset is not None:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        self._poll_generation += 1
        generation = self._poll_generation
        self._signal.notify()  # an older pending poll is now terminated
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (a.integer("timeout") or 0)
        while True:
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one "
                    "bot instance is running",
                )
            ready = self._deliverable(limit)
            remaining = deadline - loop.time()
            if ready or self._closing or remaining <= 0:
                return ready
            await self._signal.wait(remaining)

    async def _get_file(self, a: _Args) -> dict[str, Any]:
        stored = self._files.get(a.text("file_id") or "")
        if stored is None:
            raise _bad("invalid file_id")
        if stored.size > MAX_DOWNLOAD_SIZE and not self.local_mode:
            raise _bad("file is too big")
        path = stored.path
        if self._local_dir is not None:
            local = self._local_dir / stored.path
            await asyncio.to_thread(local.parent.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(local.write_bytes, stored.data)
            path = str(local)
        return {
            "file_id": a.text("file_id"),
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": path,
        }

    def _send_message(self, a: _Args) -> dict[str, Any]:
        chat = self._chat(a)
        reply_to = self._reply_target(a, chat)
        thread_id = self._thread(a, chat, reply_to)
        text, entities = self._formatted(a, "text", caption=False)
        markup = self._markup(a)
        self._charge(a, chat)
        message = self._new_message(
            chat,
            self.bot_user,
            text=text,
            entities=entities,
            reply_markup=markup,
            thread_id=thread_id,
            reply_to=reply_to,
        )
        return message.to_api()

    def _edit(self, message: StoredMessage, **changes: Any) -> dict[str, Any]:
        if all(getattr(message, key) == value for key, value in changes.items()):
            raise _bad(NOT_MODIFIED)
        for key, value in changes.items():
            setattr(message, key, value)
        message.edit_date = int(time.time())
        message.versions.append(message.snapshot())
        self._signal.notify()
        return message.to_api()

    def _editable(self, a: _Args, chat: Chat) -> StoredMessage:
        message = self._message(chat, a.integer("message_id"), "message to edit not found")
        if message.from_user != self.bot_user:
            raise _bad("message can't be edited")
        return message

    def _edit_message_text(self, a: _Args) -> dict[str, Any] | bool:
        if a.text("inline_message_id"):
            self._formatted(a, "text", caption=False)
            return True
        chat = self._chat(a)
        text, entities = self._formatted(a, "text", caption=False)
        markup = self._markup(a)
        self._charge(a, chat)
        message = self._editable(a, chat)
        if message.text is None:
            raise _bad("there is no text in the message to edit")
        return self._edit(message, text=text, entities=entities, reply_markup=markup)

    def _edit_message_caption(self, a: _Args) -> dict[str, Any] | bool:
        if a.text("inline_message_id"):
            return True
        chat = self._chat(a)
        caption, entities = self._formatted(a, "caption", caption=True)
        markup = self._markup(a)
        self._charge(a, chat)
        message = self._editable(a, chat)
        if not message.media:
            raise _bad("there is no caption in the message to edit")
        changes = {"caption": caption or None, "caption_entities": entities}
        return self._edit(message, **changes, reply_markup=markup)

    def _edit_message_reply_markup(self, a: _Args) -> dict[str, Any] | bool:
        if a.text("inline_message_id"):
            return True
        chat = self._chat(a)
        markup = self._markup(a)
        self._charge(a, chat)
        return self._edit(self._editable(a, chat), reply_markup=markup)

    def _delete_message(self, a: _Args) -> bool:
        chat = self._chat(a)
        message = self._message(chat, a.integer("message_id"), "message to delete not found")
        if chat.type != "private" and message.from_user != self.bot_user and not chat.bot_is_admin:
            raise _bad("message can't be deleted")
        message.deleted = True
        self._signal.notify()
        return True

    def _send_photo(self, a: _Args) -> dict[str, Any]:
        return self._send_file(a, "photo")

    def _send_document(self, a: _Args) -> dict[str, Any]:
        return self._send_file(a, "document")

    def _send_file(self, a: _Args, kind: str) -> dict[str, Any]:
        """sendPhoto (`kind` "photo") or sendDocument ("document"): one file, with a caption."""
        chat = self._chat(a)
        reply_to = self._reply_target(a, chat)
        thread_id = self._thread(a, chat, reply_to)
        upload = self._input_file(a, a.params.get(kind), kind)
        caption, entities = self._formatted(a, "caption", caption=True)
        markup = self._markup(a)
        if kind == "document":
            self._check_document(upload)
        self._charge(a, chat)
        post = self._post_photo if kind == "photo" else self._post_document
        message = post(
            chat,
            upload,
            caption=caption or None,
            caption_entities=entities,
            thread_id=thread_id,
            reply_to=reply_to,
            reply_markup=markup,
        )
        return message.to_api()

    def _post_photo(self, chat: Chat, photo: _Input, **fields: Any) -> StoredMessage:
        width, height = (0, 0) if photo.data is None else self._photo_dimensions(photo.data)
        stored = photo.stored or self._store_file(
            photo.data or b"", "photos", photo.filename, "image/jpeg"
        )
        sizes = self._photo_sizes(stored, max(width, 1), max(height, 1))
        message = self._new_message(chat, self.bot_user, media={"photo": sizes}, **fields)
        self.sent_photos.append(
            SentPhoto(
                chat.id,
                message.message_id,
                width,
                height,
                stored.data,
                photo.filename,
                message.caption,
                message.thread_id,
                message.media_group_id,
            )
        )
        return message

    def _post_document(self, chat: Chat, document: _Input, **fields: Any) -> StoredMessage:
        stored = document.stored or self._store_file(
            document.data or b"", "documents", document.filename, document.mime_type
        )
        media = {"document": self._document_api(stored)}
        message = self._new_message(chat, self.bot_user, media=media, **fields)
        self.sent_documents.append(
            SentDocument(
                chat.id,
                message.message_id,
                stored.file_name,
                stored.mime_type,
                stored.data,
                message.caption,
                message.thread_id,
                message.media_group_id,
            )
        )
        return message

    def _send_media_group(self, a: _Args) -> list[dict[str, Any]]:
        chat = self._chat(a)
        reply_to = self._reply_target(a, chat)
        thread_id = self._thread(a, chat, reply_to)
        media = a.json("media")
        if media is None:
            raise _bad('parameter "media" is required')
        if not isinstance(media, list) or not media:
            raise _bad("there are no messages to send")
        if len(media) > MAX_MEDIA_GROUP:
            raise _bad("too many messages to send as an album")
        items = []
        for item in media:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind not in ("photo", "video", "document", "audio"):
                raise _bad(
                    f"can't parse InputMedia: type \"{kind}\" can't be used in sendMediaGroup"
                )
            item_args = _Args(a.call, item)
            upload = self._input_file(a, item.get("media"), "media")
            caption, entities = self._formatted(item_args, "caption", caption=True)
            items.append((item["type"], upload, caption, entities))
        kinds = {kind for kind, *_ in items}
        for lonely in ("document", "audio"):
            if lonely in kinds and len(kinds) > 1:
                raise _bad(f"{lonely} can't be mixed with other media types")
        for kind, upload, *_ in items:
            if kind == "document":
                self._check_document(upload)
        self._charge(a, chat, cost=len(items))
        for position, (kind, upload, *_) in enumerate(items, 1):
            try:
                if kind == "photo" and upload.data is not None:
                    self._photo_dimensions(upload.data)
            except ApiError as error:  # the server refuses one item: Telegram names it
                reason = error.description.removeprefix("Bad Request: ")
                raise _bad(
                    f'failed to send message #{position} with the error message "{reason}"'
                ) from None
        # A single item is accepted and sent as a plain message, without media_group_id.
        group_id = str(10**17 + next(self._ids)) if len(items) > 1 else None
        messages = []
        for kind, upload, caption, entities in items:
            # Videos and audio are kept as documents.
            post = self._post_photo if kind == "photo" else self._post_document
            message = post(
                chat,
                upload,
                caption=caption or None,
                caption_entities=entities,
                thread_id=thread_id,
                reply_to=reply_to,
                media_group_id=group_id,
            )
            messages.append(message)
        return [m.to_api() for m in messages]

    def _send_chat_action(self, a: _Args) -> bool:
        chat = self._chat(a)
        thread_id = self._thread(a, chat, None)
        action = a.text("action")
        if action not in CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        self.chat_actions.append(ChatAction(chat.id, action, thread_id))
        self._signal.notify()
        return True

    def _send_message_draft(self, a: _Args) -> bool:
        chat = self._chat(a)
        if chat.type != "private":
            raise _bad("TEXTDRAFT_PEER_INVALID")
        draft_id = a.integer("draft_id")
        if not draft_id:
            raise _bad("draft_id must be non-zero")
        thread_id = self._thread(a, chat, None)
        text, entities = ("", [])
        if a.text("text"):
            parsed = format_text(a.text("text") or "", a.text("parse_mode"), a.json("entities"))
            if len(parsed.text) > MAX_TEXT_LENGTH:
                raise _bad("message is too long")
            text, entities = parsed.text, parsed.entities
        self._charge(a, chat)
        draft = Draft(
            chat.id, draft_id, text, entities, thread_id, a.flag("can_stop"), time.monotonic()
        )
        self.drafts.append(draft)
        if (chat.id, draft_id) in self._stopped_drafts:
            self.drafts_after_stop.append(draft)
        self._live_drafts[(chat.id, thread_id)] = draft
        self._signal.notify()
        return True

    def _send_rich_message(self, a: _Args) -> dict[str, Any]:
        chat = self._chat(a)
        reply_to = self._reply_target(a, chat)
        thread_id = self._thread(a, chat, reply_to)
        rich = a.json("rich_message")
        if not isinstance(rich, dict):
            raise _bad('parameter "rich_message" is required')
        given = [k for k in ("markdown", "html", "blocks") if rich.get(k)]
        if len(given) != 1:
            raise _bad("RICH_MESSAGE_CONTENT_REQUIRED")
        if given != ["markdown"]:
            raise NotImplementedError("the fake models rich messages given as markdown only")
        markdown = str(rich["markdown"])
        media = rich.get("media") or []
        if not isinstance(media, list) or len(media) > RICH_MAX_MEDIA:
            raise _bad("RICH_MESSAGE_MEDIA_TOO_MANY")
        uploads: dict[str, tuple[str, _Input]] = {}
        for item in media:
            media_id = str(item.get("id", "")) if isinstance(item, dict) else ""
            if not _RICH_MEDIA_ID.fullmatch(media_id) or media_id in uploads:
                raise _bad("RICH_MESSAGE_MEDIA_ID_INVALID")
            described = item.get("media") or {}
            kind = described.get("type") if isinstance(described, dict) else None
            if kind not in ("photo", "video", "document", "audio"):
                raise _bad("RICH_MESSAGE_MEDIA_INVALID")
            uploads[media_id] = (kind, self._input_file(a, described.get("media"), "media"))
        markup = self._markup(a)
        stored: dict[str, tuple[str, Any]] = {}
        for media_id, (kind, upload) in uploads.items():
            if kind == "photo":
                width, height = (
                    (1, 1) if upload.data is None else self._photo_dimensions(upload.data)
                )
                file = upload.stored or self._store_file(
                    upload.data or b"", "photos", upload.filename, "image/jpeg"
                )
                stored[media_id] = (kind, self._photo_sizes(file, width, height))
            else:  # kept as documents, like album videos and audio
                self._check_document(upload)
                file = upload.stored or self._store_file(
                    upload.data or b"", "documents", upload.filename, upload.mime_type
                )
                stored[media_id] = (kind, self._document_api(file))
        blocks = RichMarkdown(stored).parse(markdown)
        self._charge(a, chat)
        message = self._new_message(
            chat,
            self.bot_user,
            rich={"blocks": blocks},
            reply_markup=markup,
            thread_id=thread_id,
            reply_to=reply_to,
        )
        return message.to_api()

    def _answer_callback_query(self, a: _Args) -> bool:
        query_id = a.text("callback_query_id") or ""
        if query_id not in self._queries or query_id in self.callback_answers:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        answer = CallbackAnswer(query_id, a.text("text"), a.flag("show_alert"), a.text("url"))
        self.callback_answers[query_id] = answer
        return True

    @staticmethod
    def _commands_key(a: _Args) -> tuple[str, str]:
        scope = a.json("scope") or {"type": "default"}
        if not isinstance(scope, dict) or "type" not in scope:
            raise _bad("can't parse BotCommandScope JSON object")
        key = scope["type"] + "".join(f":{scope[k]}" for k in ("chat_id", "user_id") if k in scope)
        return key, a.text("language_code") or ""

    def _set_my_commands(self, a: _Args) -> bool:
        commands = a.json("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad("BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            name = str(command.get("command", "")) if isinstance(command, dict) else ""
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[self._commands_key(a)] = commands
        return True

    def _get_my_commands(self, a: _Args) -> list[dict[str, Any]]:
        return self.commands.get(self._commands_key(a), [])

    def _delete_my_commands(self, a: _Args) -> bool:
        self.commands.pop(self._commands_key(a), None)
        return True

    def _set_webhook(self, a: _Args) -> bool:
        url = a.text("url") or ""
        if not url:
            return self._delete_webhook(a)
        if self.require_https_webhook and not self.local_mode and not url.startswith("https://"):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = a.text("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise _bad("secret token contains unallowed characters")
        allowed = a.json("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) or DEFAULT_ALLOWED_UPDATES
        if a.flag("drop_pending_updates"):
            self._updates.clear()
        self._webhook = _Webhook(url, secret, a.integer("max_connections") or 40)
        self._poll_generation += 1  # a pending getUpdates is terminated
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.create_task(self._deliver_webhooks())
        self._signal.notify()
        return True

    def _delete_webhook(self, a: _Args) -> bool:
        if a.flag("drop_pending_updates"):
            self._updates.clear()
        self._webhook = None
        self._signal.notify()
        return True

    def _get_webhook_info(self, a: _Args) -> dict[str, Any]:
        hook = self._webhook
        info: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if hook is not None:
            info["max_connections"] = hook.max_connections
            if hook.last_error_date is not None:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
        return info

    def _set_message_reaction(self, a: _Args) -> bool:
        chat = self._chat(a)
        message = self._message(chat, a.integer("message_id"), "MESSAGE_ID_INVALID")
        reaction = a.json("reaction") or []
        if not isinstance(reaction, list):
            raise _bad("can't parse reaction JSON object")
        if len(reaction) > 1:
            raise _bad("REACTIONS_TOO_MANY")
        self.reactions[(chat.id, message.message_id)] = reaction
        self._signal.notify()
        return True

    def _get_chat_member(self, a: _Args) -> dict[str, Any]:
        chat = self._chat(a)
        user = self._users.get(a.integer("user_id") or 0)
        if user is None:
            raise _bad("user not found")
        if user == self.bot_user:
            status = "administrator" if chat.bot_is_admin else "member"
        else:
            status = chat.members.get(user.id, "left")
        member: dict[str, Any] = {"status": status, "user": user.to_api()}
        if status == "creator":
            member["is_anonymous"] = False
        if status == "administrator":
            rights = _words(
                "can_manage_chat can_delete_messages can_restrict_members can_invite_users "
                "can_pin_messages can_manage_topics"
            )
            denied = _words(
                "can_be_edited is_anonymous can_manage_video_chats can_promote_members "
                "can_change_info can_post_stories can_edit_stories can_delete_stories "
                "can_send_welcome_messages"
            )
            member |= dict.fromkeys(rights, True) | dict.fromkeys(denied, False)
        return member

    def _get_chat(self, a: _Args) -> dict[str, Any]:
        chat = self._chat(a)
        gifts = _words(
            "unlimited_gifts limited_gifts unique_gifts premium_subscription gifts_from_channels"
        )
        return chat.to_api() | {
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": dict.fromkeys(gifts, False),
        }

    # ---- webhook delivery ------------------------------------------------------------------

    async def _deliver_webhooks(self) -> None:
        if self._client is None:
            self._client = ClientSession(timeout=ClientTimeout(total=30))
        while not self._closing and self._webhook is not None:
            hook = self._webhook
            ready = self._deliverable(1)
            if not ready:
                await self._signal.wait(None)
                continue
            update = ready[0]
            headers = (
                {"X-Telegram-Bot-Api-Secret-Token": hook.secret_token} if hook.secret_token else {}
            )
            try:
                async with self._client.post(hook.url, json=update, headers=headers) as response:
                    status, reason = response.status, response.reason
                    content_type = response.headers.get("Content-Type", "")
                    body = await response.read()
            except (ClientError, TimeoutError) as error:
                self.webhook_deliveries.append(
                    WebhookDelivery(update["update_id"], None, str(error))
                )
                hook.last_error_date, hook.last_error_message = int(time.time()), str(error)
                await asyncio.sleep(self.webhook_retry_delay)
                continue
            if not 200 <= status < 300:
                message = f"Wrong response from the webhook: {status} {reason}"
                self.webhook_deliveries.append(
                    WebhookDelivery(update["update_id"], status, message)
                )
                hook.last_error_date, hook.last_error_message = int(time.time()), message
                self._signal.notify()
                await asyncio.sleep(self.webhook_retry_delay)
                continue
            with contextlib.suppress(ValueError):
                self._updates.remove(update)
            self.webhook_deliveries.append(WebhookDelivery(update["update_id"], status, None))
            self._signal.notify()
            await self._run_webhook_reply(content_type, body)

    async def _run_webhook_reply(self, content_type: str, body: bytes) -> None:
        """Executes a method the bot put in its webhook response, as Telegram does."""
        params: dict[str, Any] = {}
        files: dict[str, UploadedFile] = {}
        if content_type.startswith("application/json"):
            with contextlib.suppress(ValueError):
                data = json.loads(body or b"{}")
                params = data if isinstance(data, dict) else {}
        elif content_type.startswith("multipart/"):
            head = f"Content-Type: {content_type}\r\n\r\n".encode()
            for part in BytesParser(policy=HTTP).parsebytes(head + body).iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True) or b""
                if not isinstance(name, str):
                    continue
                if part.get_filename():
                    files[name] = UploadedFile(
                        name, part.get_filename() or name, part.get_content_type(), payload
                    )
                else:
                    params[name] = payload.decode("utf-8")
        method = params.pop("method", None)
        if not isinstance(method, str):
            return
        for key in JSON_FIELDS & params.keys():
            if isinstance(params[key], str):
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(params[key])
        call = ApiCall(method, params, files, time.monotonic(), via_webhook_reply=True)
        self.calls.append(call)
        await self._execute(call)


@contextlib.asynccontextmanager
async def polling(dp: Dispatcher, bot: Bot, tg: TelegramFake, **kwargs: Any) -> AsyncIterator[None]:
    """Runs ``dp.start_polling`` against the fake until the block ends."""
    started = len(tg.polls)
    task = asyncio.create_task(
        dp.start_polling(
            bot, polling_timeout=1, handle_signals=False, close_bot_session=False, **kwargs
        )
    )
    try:
        await tg.wait_for(lambda: len(tg.polls) > started or task.done(), timeout=10)
        if task.done():
            task.result()
        yield
    finally:
        if not task.done():
            with contextlib.suppress(RuntimeError):
                await dp.stop_polling()
        await task


async def _serve(host: str, port: int, token: str) -> None:  # pragma: no cover - manual use
    """Serve the fake until interrupted, logging each call: for trying the bot by hand (or in
    a container: `--host 0.0.0.0`)."""
    async with TelegramFake(token, host=host, port=port) as tg:
        print(f"fake Telegram on {host}:{tg._port} token {token}", flush=True)
        seen = 0
        while True:
            await asyncio.sleep(0.5)
            for call in tg.calls[seen:]:
                print(f"call {call!r}", flush=True)
            seen = len(tg.calls)


if __name__ == "__main__":  # pragma: no cover - manual use
    import argparse

    parser = argparse.ArgumentParser(description="Run the Telegram Bot API fake.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    options = parser.parse_args()
    asyncio.run(_serve(options.host, options.port, options.token))
