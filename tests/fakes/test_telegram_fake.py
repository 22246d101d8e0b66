"""The Telegram fake answers aiogram's real client the way Telegram does.

Every test drives the fake through aiogram's real Bot + AiohttpSession (and a real Dispatcher with
long polling or a webhook), so the bot's end-to-end tests can rely on what the fake accepts and
refuses.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command, CommandObject
from aiogram.methods import SendMessage
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaDocument,
    InputMediaPhoto,
    InputRichMessage,
    InputRichMessageMedia,
    Message,
    MessageEntity,
    MessageGenerationStopped,
    ReplyParameters,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import ClientSession, web
from PIL import Image

from tests.fakes.telegram_api import NOT_MODIFIED, FloodLimits, TelegramFake, polling

MiB = 1024 * 1024


@pytest.fixture
async def tg() -> AsyncIterator[TelegramFake]:
    async with TelegramFake(bot_username="DataLensBot") as fake:
        yield fake


@pytest.fixture
async def bot(tg: TelegramFake) -> AsyncIterator[Bot]:
    bot = tg.make_bot()
    yield bot
    await bot.session.close()


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def plain(entities: list[MessageEntity] | None) -> list[dict[str, object]]:
    return [e.model_dump(exclude_none=True) for e in entities or []]


def keyboard(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    row = [InlineKeyboardButton(text=text, callback_data=data) for text, data in buttons]
    return InlineKeyboardMarkup(inline_keyboard=[row])


# ---- basics ----------------------------------------------------------------------------------


async def test_get_me_describes_the_bot_and_a_wrong_token_is_unauthorized(
    tg: TelegramFake, bot: Bot
) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (bot.id, "DataLensBot", True)

    stranger = Bot("42:not-the-token", session=tg.make_bot().session)
    with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
        await stranger.get_me()
    await stranger.session.close()


async def test_unknown_methods_are_404_and_unmodelled_ones_answer_true(
    tg: TelegramFake, bot: Bot
) -> None:
    chat = tg.private_chat(tg.user())
    sent = await bot.send_message(chat.id, "pin me")
    assert await bot.pin_chat_message(chat.id, sent.message_id) is True
    assert tg.unhandled_methods == ["pinChatMessage"]

    async with (
        ClientSession() as http,
        http.post(f"{tg.base_url}/bot{tg.token}/noSuchMethod") as response,
    ):
        assert response.status == 404
        assert await response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


# ---- long polling ----------------------------------------------------------------------------


async def test_polling_dispatcher_echoes_a_message(tg: TelegramFake, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(f"echo: {message.text}")

    ann = tg.user("Ann")
    chat = tg.private_chat(ann)
    async with polling(dp, bot, tg):
        tg.send_text(chat, ann, "first")
        await tg.wait_for_message(chat, contains="echo: first")
        tg.send_text(chat, ann, "second")
        await tg.wait_for_message(chat, contains="echo: second")

    assert [m.text for m in tg.messages(chat)] == ["echo: first", "echo: second"]
    assert tg.methods()[0] == "getMe"
    assert tg.polls[0].params["allowed_updates"] == ["message"]


async def test_get_updates_holds_the_request_confirms_with_offset_and_wakes_on_close() -> None:
    async with TelegramFake() as tg:
        bot = tg.make_bot()
        ann = tg.user()
        chat = tg.private_chat(ann)

        waiting = asyncio.create_task(bot.get_updates(timeout=30))
        await tg.wait_for(lambda: tg.polls)
        tg.send_text(chat, ann, "wake up")
        (update,) = await asyncio.wait_for(waiting, 5)
        assert update.message is not None
        assert update.message.text == "wake up"

        assert len(await bot.get_updates(timeout=0)) == 1  # not confirmed yet
        assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == []

        pending = asyncio.create_task(bot.get_updates(timeout=30))
        await tg.wait_for(lambda: len(tg.polls) == 4)
        await asyncio.wait_for(tg.close(), 5)
        assert await asyncio.wait_for(pending, 5) == []
        await bot.session.close()


# ---- sending and editing ---------------------------------------------------------------------


async def test_send_and_edit_keeps_the_current_text_and_the_edit_history(
    tg: TelegramFake, bot: Bot
) -> None:
    chat = tg.private_chat(tg.user())
    sent = await bot.send_message(chat.id, "⏳ step 1", reply_markup=keyboard(("Cancel", "c:1")))
    await bot.edit_message_text("⏳ step 2", chat_id=chat.id, message_id=sent.message_id)
    await bot.edit_message_text("✅ done", chat_id=chat.id, message_id=sent.message_id)

    (message,) = tg.messages(chat)
    assert message.text == "✅ done"
    assert message.reply_markup is None  # an edit without reply_markup removes the keyboard
    assert [v.text for v in tg.edits_of(message)] == ["⏳ step 2", "✅ done"]


async def test_identical_edit_is_not_modified_and_a_missing_message_is_not_found(
    tg: TelegramFake, bot: Bot
) -> None:
    chat = tg.private_chat(tg.user())
    markup = keyboard(("Cancel", "c:1"))
    sent = await bot.send_message(chat.id, "same", reply_markup=markup)

    with pytest.raises(TelegramBadRequest) as refused:
        await bot.edit_message_text(
            "same", chat_id=chat.id, message_id=sent.message_id, reply_markup=markup
        )
    assert refused.value.message == f"Bad Request: {NOT_MODIFIED}"

    # The same text with different markup is a real change.
    await bot.edit_message_text("same", chat_id=chat.id, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=chat.id, message_id=sent.message_id + 100)


async def test_text_length_is_counted_after_html_parsing(tg: TelegramFake, bot: Bot) -> None:
    chat = tg.private_chat(tg.user())
    sent = await bot.send_message(chat.id, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    assert plain(sent.entities) == [{"type": "bold", "offset": 0, "length": 4096}]
    escaped = await bot.send_message(chat.id, "&lt;" * 4096, parse_mode="HTML")
    assert escaped.text == "<" * 4096

    with pytest.raises(TelegramBadRequest) as refused:
        await bot.send_message(chat.id, "<b>" + "a" * 4097 + "</b>", parse_mode="HTML")
    assert refused.value.message == "Bad Request: message is too long"
    with pytest.raises(TelegramBadRequest) as empty:
        await bot.send_message(chat.id, "<b> </b>\n", parse_mode="HTML")
    assert empty.value.message == "Bad Request: text must be non-empty"


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<b>bold", "Can't find end tag corresponding to start tag b"),
        ("<x>y</x>", 'Unsupported start tag "x" at byte offset 0'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("ok</b>", "Unexpected end tag at byte offset 2"),
        ("é <table>", 'Unsupported start tag "table" at byte offset 3'),
        ('<span class="x">s</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ],
)
async def test_broken_html_is_refused_with_telegrams_description(
    tg: TelegramFake, bot: Bot, html: str, error: str
) -> None:
    chat = tg.private_chat(tg.user())
    with pytest.raises(TelegramBadRequest) as refused:
        await bot.send_message(chat.id, html, parse_mode="HTML")
    assert refused.value.message == f"Bad Request: can't parse entities: {error}"


async def test_valid_formatting_becomes_entities_in_utf16_units(tg: TelegramFake, bot: Bot) -> None:
    chat = tg.private_chat(tg.user())
    code = await bot.send_message(
        chat.id,
        '📊 <pre><code class="language-python">x = 1</code></pre>'
        "<blockquote expandable>log</blockquote>",
        parse_mode="HTML",
    )
    assert code.text == "📊 x = 1log"
    assert plain(code.entities) == [
        {"type": "pre", "offset": 3, "length": 5, "language": "python"},
        {"type": "expandable_blockquote", "offset": 8, "length": 3},
    ]

    md = await bot.send_message(chat.id, r"*Mean* is 3\.5", parse_mode="MarkdownV2")
    assert md.text == "Mean is 3.5"
    assert plain(md.entities) == [{"type": "bold", "offset": 0, "length": 4}]
    with pytest.raises(TelegramBadRequest) as reserved:
        await bot.send_message(chat.id, "Mean is 3.5", parse_mode="MarkdownV2")
    assert reserved.value.message == (
        "Bad Request: can't parse entities: Character '.' is reserved and must be escaped with "
        "the preceding '\\'"
    )

    given = await bot.send_message(
        chat.id, "📊 chart", entities=[MessageEntity(type="bold", offset=0, length=2)]
    )
    assert plain(given.entities) == [{"type": "bold", "offset": 0, "length": 2}]
    with pytest.raises(TelegramBadRequest) as outside:
        await bot.send_message(
            chat.id, "📊 chart", entities=[MessageEntity(type="italic", offset=3, length=6)]
        )
    assert outside.value.message == (
        "Bad Request: entity beginning at UTF-16 offset 3 ends after the end of the text at "
        "UTF-16 offset 9"
    )


async def test_more_than_100_entities_are_accepted_and_recorded(tg: TelegramFake, bot: Bot) -> None:
    chat = tg.private_chat(tg.user())
    await bot.send_message(chat.id, "<b>x</b> " * 101, parse_mode="HTML")
    (message,) = tg.messages(chat)
    assert len(message.entities) == 100
    assert [c.method for c in tg.entity_overflows] == ["sendMessage"]


async def test_caption_is_limited_to_1024_characters(tg: TelegramFake, bot: Bot) -> None:
    chat = tg.private_chat(tg.user())
    csv = BufferedInputFile(b"a,b\n1,2\n", filename="data.csv")
    await bot.send_document(chat.id, csv, caption="<i>" + "c" * 1024 + "</i>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest) as refused:
        await bot.send_document(chat.id, csv, caption="c" * 1025)
    assert refused.value.message == "Bad Request: message caption is too long"
    assert [d.filename for d in tg.sent_documents] == ["data.csv"]


async def test_callback_data_longer_than_64_bytes_is_refused(tg: TelegramFake, bot: Bot) -> None:
    chat = tg.private_chat(tg.user())
    await bot.send_message(chat.id, "ok", reply_markup=keyboard(("Go", "x" * 64)))
    for data in ("x" * 65, "д" * 33):  # 33 Cyrillic letters are 66 bytes
        with pytest.raises(TelegramBadRequest) as refused:
            await bot.send_message(chat.id, "no", reply_markup=keyboard(("Go", data)))
        assert refused.value.message == "Bad Request: BUTTON_DATA_INVALID"


# ---- flood control ---------------------------------------------------------------------------


async def test_flood_control_answers_429_and_counts_too_early_retries(
    tg: TelegramFake, bot: Bot
) -> None:
    tg.flood = FloodLimits.strict()
    chat = tg.private_chat(tg.user())
    await bot.send_message(chat.id, "one")

    with pytest.raises(TelegramRetryAfter) as limited:
        await bot.send_message(chat.id, "two")
    assert limited.value.retry_after == 1
    assert tg.calls[-1].response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }
    assert tg.flood_violations == []

    with pytest.raises(TelegramRetryAfter):
        await bot.edit_message_text("too early", chat_id=chat.id, message_id=1)
    assert [v.method for v in tg.flood_violations] == ["editMessageText"]

    await asyncio.sleep(limited.value.retry_after)  # honouring retry_after is what a bot must do
    await bot.send_message(chat.id, "two, later")
    assert [m.text for m in tg.messages(chat)] == ["one", "two, later"]


# ---- photos, documents, albums, files --------------------------------------------------------


async def test_photo_dimensions_are_checked_like_telegram(tg: TelegramFake, bot: Bot) -> None:
    chat = tg.private_chat(tg.user())
    for width, height in ((10001, 10), (2100, 100)):  # sides sum > 10000; ratio 21 > 20
        with pytest.raises(TelegramBadRequest) as refused:
            await bot.send_photo(chat.id, BufferedInputFile(png(width, height), "chart.png"))
        assert refused.value.message == "Bad Request: PHOTO_INVALID_DIMENSIONS"

    sent = await bot.send_photo(chat.id, BufferedInputFile(png(640, 480), "chart.png"))
    assert sent.photo is not None
    assert (sent.photo[-1].width, sent.photo[-1].height) == (640, 480)
    assert [(p.width, p.height, p.filename) for p in tg.sent_photos] == [(640, 480, "chart.png")]
    assert tg.calls_of("sendPhoto")[-1].params["photo"].startswith("attach://")


async def test_media_group_resolves_attach_and_checks_size_and_mixing(
    tg: TelegramFake, bot: Bot
) -> None:
    chat = tg.private_chat(tg.user())
    album = [
        InputMediaPhoto(media=BufferedInputFile(png(300, 200), "a.png"), caption="two charts"),
        InputMediaPhoto(media=BufferedInputFile(png(200, 300), "b.png")),
    ]
    sent = await bot.send_media_group(chat.id, album)
    assert len({m.media_group_id for m in sent}) == 1
    assert sent[0].media_group_id is not None
    assert [(p.width, p.height) for p in tg.sent_photos] == [(300, 200), (200, 300)]
    wire = tg.calls_of("sendMediaGroup")[-1]
    assert all(item["media"].startswith("attach://") for item in wire.params["media"])
    assert len(wire.files) == 2

    photo = InputMediaPhoto(media=BufferedInputFile(png(20, 20), "p.png"))
    with pytest.raises(TelegramBadRequest) as too_many:
        await bot.send_media_group(chat.id, [photo] * 11)
    assert too_many.value.message == "Bad Request: too many messages to send as an album"
    document = InputMediaDocument(media=BufferedInputFile(b"a,b\n", "d.csv"))
    with pytest.raises(TelegramBadRequest) as mixed:
        await bot.send_media_group(chat.id, [photo, document])
    assert mixed.value.message == "Bad Request: document can't be mixed with other media types"
    wide = InputMediaPhoto(media=BufferedInputFile(png(10001, 10), "wide.png"))
    with pytest.raises(TelegramBadRequest) as refused:
        await bot.send_media_group(chat.id, [photo, wide])
    assert refused.value.message == (
        'Bad Request: failed to send message #2 with the error message "PHOTO_INVALID_DIMENSIONS"'
    )
    # Telegram accepts a single item and sends it as a plain message.
    (single,) = await bot.send_media_group(chat.id, [photo])
    assert single.media_group_id is None
    assert single.photo is not None


async def test_get_file_over_20_mb_is_refused_unless_local_mode(tg: TelegramFake, bot: Bot) -> None:
    ann = tg.user()
    chat = tg.private_chat(ann)
    big = tg.send_document(chat, ann, "big.csv", b"a,b\n1,2\n", file_size_override=25 * MiB)
    assert big.media["document"]["file_size"] == 25 * MiB
    with pytest.raises(TelegramBadRequest) as refused:
        await bot.get_file(big.media["document"]["file_id"])
    assert refused.value.message == "Bad Request: file is too big"

    async with TelegramFake(local_mode=True) as local:
        local_bot = local.make_bot()
        ben = local.user("Ben")
        doc = local.send_document(
            local.private_chat(ben), ben, "big.csv", b"a,b\n1,2\n", file_size_override=25 * MiB
        )
        file = await local_bot.get_file(doc.media["document"]["file_id"])
        assert file.file_path is not None
        assert Path(file.file_path).is_absolute()
        downloaded = await local_bot.download(file)
        assert downloaded is not None
        assert downloaded.read() == b"a,b\n1,2\n"
        await local_bot.session.close()


async def test_uploaded_document_round_trips_through_download(tg: TelegramFake, bot: Bot) -> None:
    payload = b"city,sales\nOslo,10\nLima,20\n" * 1000
    dp = Dispatcher()

    @dp.message(F.document)
    async def analyse(message: Message, bot: Bot) -> None:
        assert message.document is not None
        data = await bot.download(message.document)
        assert data is not None
        content = data.read()
        digest = hashlib.sha256(content).hexdigest()[:12]
        await message.answer(f"{message.document.file_name}: {len(content)} bytes, {digest}")
        await message.answer_document(BufferedInputFile(content, "copy.csv"))

    ann = tg.user()
    chat = tg.private_chat(ann)
    async with polling(dp, bot, tg):
        tg.send_document(chat, ann, "sales.csv", payload, caption="what sells?")
        digest = hashlib.sha256(payload).hexdigest()[:12]
        await tg.wait_for_message(chat, contains=f"sales.csv: {len(payload)} bytes, {digest}")
        await tg.wait_for(lambda: tg.sent_documents)

    assert tg.sent_documents[0].data == payload
    assert tg.sent_documents[0].mime_type == "text/csv"


# ---- groups, forums, callbacks, commands -----------------------------------------------------


async def test_forum_general_thread_is_refused_and_replies_stay_in_their_topic(
    tg: TelegramFake, bot: Bot
) -> None:
    ann = tg.user("Ann")
    forum = tg.forum("Analysts", topics=("Sales",), members=[ann])
    sales = forum.topics["Sales"]

    with pytest.raises(TelegramBadRequest) as refused:
        await bot.send_message(forum.id, "hi", message_thread_id=1)
    assert refused.value.message == "Bad Request: message thread not found"
    assert len(tg.general_topic_attempts) == 1

    question = tg.send_text(forum, ann, "/analyze@DataLensBot top cities", thread_id=sales)
    assert question.delivered
    answer = await bot.send_message(
        forum.id, "Oslo", reply_parameters=ReplyParameters(message_id=question.message_id)
    )
    assert (answer.message_thread_id, answer.is_topic_message) == (sales, True)
    in_topic = await bot.send_message(forum.id, "chart follows", message_thread_id=sales)
    assert in_topic.message_thread_id == sales
    assert [m.thread_id for m in tg.messages(forum)] == [sales, sales]


async def test_group_privacy_mode_delivers_only_commands_and_replies(
    tg: TelegramFake, bot: Bot
) -> None:
    dp = Dispatcher()

    @dp.message(Command("analyze"))
    async def analyze(message: Message, command: CommandObject) -> None:
        await message.reply(f"analysing: {command.args}")

    ann = tg.user("Ann")
    group = tg.group("Data team", members=[ann], supergroup=True)
    chatter = tg.send_text(group, ann, "just chatting about @DataLensBot")
    assert not chatter.delivered
    command = tg.send_text(group, ann, "/analyze@DataLensBot sales by city")
    assert command.entities == [{"type": "bot_command", "offset": 0, "length": 20}]
    async with polling(dp, bot, tg):
        reply = await tg.wait_for_message(group, contains="analysing: sales by city")
    assert reply.reply_to is command


async def test_button_press_arrives_as_callback_query(tg: TelegramFake, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.callback_query(F.data.startswith("cancel:"))
    async def cancel(query: CallbackQuery) -> None:
        await query.answer("Cancelled")
        assert isinstance(query.message, Message)
        await query.message.edit_text("🛑 cancelled")

    ann = tg.user()
    chat = tg.private_chat(ann)
    sent = await bot.send_message(
        chat.id, "working…", reply_markup=keyboard(("Cancel", "cancel:7"))
    )
    async with polling(dp, bot, tg):
        press = tg.press(tg.messages(chat)[0], "Cancel")
        answer = await tg.wait_for(lambda: tg.callback_answers.get(press.id))
        await tg.wait_for_message(chat, contains="cancelled")
    assert answer.text == "Cancelled"
    assert press.data == "cancel:7"
    assert tg.polls[0].params["allowed_updates"] == ["callback_query"]
    assert tg.messages(chat)[0].message_id == sent.message_id


async def test_commands_are_recorded_per_scope_and_language(tg: TelegramFake, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand(command="analyze", description="Analyse data")])
    await bot.set_my_commands(
        [BotCommand(command="analyze", description="Анализ данных")],
        scope=BotCommandScopeAllGroupChats(),
        language_code="ru",
    )
    assert tg.commands[("default", "")][0]["command"] == "analyze"
    assert tg.commands[("all_group_chats", "ru")][0]["description"] == "Анализ данных"
    assert [c.command for c in await bot.get_my_commands()] == ["analyze"]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Analyze-Data", description="x")])


async def test_blocked_user_and_oversized_document_are_refused(tg: TelegramFake, bot: Bot) -> None:
    ann = tg.user()
    chat = tg.private_chat(ann)
    with pytest.raises(TelegramEntityTooLarge):
        await bot.send_document(chat.id, BufferedInputFile(b"\0" * (50 * MiB + 1), "big.bin"))
    tg.block(ann)
    with pytest.raises(Exception, match="bot was blocked by the user"):
        await bot.send_message(chat.id, "hello?")


# ---- webhooks --------------------------------------------------------------------------------


async def test_webhook_delivery_with_secret_token_and_reply_in_response(
    tg: TelegramFake, bot: Bot
) -> None:
    dp = Dispatcher()

    @dp.message(F.text)
    async def pong(message: Message) -> SendMessage:
        return message.answer(f"pong: {message.text}")

    app = web.Application()
    handler = SimpleRequestHandler(dp, bot, secret_token="s3cret", handle_in_background=False)
    handler.register(app, path="/hook")
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    ann = tg.user()
    chat = tg.private_chat(ann)
    try:
        await bot.set_webhook(url, secret_token="wrong-secret")
        tg.send_text(chat, ann, "ping")
        rejected = await tg.wait_for(lambda: tg.webhook_deliveries)
        assert rejected[0].status == 401
        info = await bot.get_webhook_info()
        assert info.last_error_message == "Wrong response from the webhook: 401 Unauthorized"
        assert info.pending_update_count == 1

        await bot.set_webhook(url, secret_token="s3cret")
        reply = await tg.wait_for_message(chat, contains="pong: ping")
        assert tg.calls_of("sendMessage")[-1].via_webhook_reply
        assert reply.text == "pong: ping"
        with pytest.raises(TelegramConflictError):
            await bot.get_updates()
    finally:
        await bot.delete_webhook()
        await runner.cleanup()


# ---- drafts and rich messages ----------------------------------------------------------------


async def test_drafts_are_private_only_limited_and_removed_by_the_next_message(
    tg: TelegramFake, bot: Bot
) -> None:
    ann = tg.user("Ann")
    chat = tg.private_chat(ann)
    group = tg.group(members=[ann])

    assert await bot.send_message_draft(chat.id, 7, text="", can_stop=True)  # "Thinking…"
    assert await bot.send_message_draft(chat.id, 7, text="<b>Half</b> an answer", parse_mode="HTML")
    shown = tg.live_draft(chat)
    assert shown is not None
    assert (shown.draft_id, shown.text, shown.can_stop) == (7, "Half an answer", False)
    assert shown.entities == [{"type": "bold", "offset": 0, "length": 4}]

    with pytest.raises(TelegramBadRequest, match="TEXTDRAFT_PEER_INVALID"):
        await bot.send_message_draft(group.id, 7, text="in a group")
    with pytest.raises(TelegramBadRequest, match="draft_id must be non-zero"):
        await bot.send_message_draft(chat.id, 0, text="zero")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message_draft(chat.id, 7, text="x" * 4097)

    await bot.send_message(chat.id, "The answer")
    assert tg.live_draft(chat) is None
    assert [d.text for d in tg.drafts] == ["", "Half an answer"]


async def test_the_stop_button_sends_stopped_message_generation_when_asked_for(
    tg: TelegramFake, bot: Bot
) -> None:
    ann = tg.user("Ann")
    chat = tg.private_chat(ann)
    stopped: list[tuple[int, int]] = []
    dp = Dispatcher()

    @dp.stopped_message_generation()
    async def on_stop(update: MessageGenerationStopped) -> None:
        stopped.append((update.chat.id, update.draft_id))

    await bot.send_message_draft(chat.id, 5, text="no button")
    with pytest.raises(LookupError, match="without can_stop"):
        tg.stop_generation(chat)
    await bot.send_message_draft(chat.id, 5, text="growing", can_stop=True)
    async with polling(dp, bot, tg):
        assert "stopped_message_generation" in tg.polls[0].params["allowed_updates"]
        assert tg.stop_generation(chat) == 5
        await tg.wait_for(lambda: stopped)
    assert stopped == [(chat.id, 5)]
    assert tg.live_draft(chat) is None
    with pytest.raises(LookupError, match="no draft"):
        tg.stop_generation(chat)
    await bot.send_message_draft(chat.id, 5, text="too late")
    assert [d.text for d in tg.drafts_after_stop] == ["too late"]


async def test_stopped_generation_is_not_delivered_unless_allowed(
    tg: TelegramFake, bot: Bot
) -> None:
    ann = tg.user("Ann")
    chat = tg.private_chat(ann)
    await bot.send_message_draft(chat.id, 9, text="x", can_stop=True)
    tg.stop_generation(chat)
    assert await bot.get_updates(timeout=0) == []
    assert [next(k for k in u if k != "update_id") for u in tg.dropped_updates] == [
        "stopped_message_generation"
    ]


async def test_a_draft_or_rich_send_can_be_made_to_fail(tg: TelegramFake, bot: Bot) -> None:
    chat = tg.private_chat(tg.user())
    tg.refuse_next("sendMessageDraft", "TEXTDRAFT_PEER_INVALID")
    tg.refuse_next("sendRichMessage", "RICH_MESSAGE_RICH_TEXT_INVALID")
    with pytest.raises(TelegramBadRequest, match="TEXTDRAFT_PEER_INVALID"):
        await bot.send_message_draft(chat.id, 1, text="a")
    with pytest.raises(TelegramBadRequest, match="RICH_MESSAGE_RICH_TEXT_INVALID"):
        await bot.send_rich_message(chat.id, InputRichMessage(markdown="# Hi"))
    assert await bot.send_message_draft(chat.id, 1, text="a")


RICH_ANSWER = """# Revenue by region

East leads; see **chart.png** below.

| Region | Revenue |
|:-------|--------:|
| East   | 2500    |
| West   | 1940    |

![](tg://photo?id=chart1 "chart.png")

$$\\sum_i r_i = 5260$$

<details><summary>Step 1 code</summary>

```python
print(df.revenue.sum())
```

</details>
"""


async def test_rich_markdown_becomes_blocks_with_the_attached_photos(
    tg: TelegramFake, bot: Bot
) -> None:
    chat = tg.private_chat(tg.user())
    picture = png(320, 240)
    sent = await bot.send_rich_message(
        chat.id,
        InputRichMessage(
            markdown=RICH_ANSWER,
            media=[
                InputRichMessageMedia(
                    id="chart1", media=InputMediaPhoto(media=BufferedInputFile(picture, "c.png"))
                )
            ],
        ),
    )
    assert sent.text is None
    assert sent.rich_message is not None
    kinds = [b.type for b in sent.rich_message.blocks]
    assert kinds == ["heading", "paragraph", "table", "photo", "mathematical_expression", "details"]
    table = sent.rich_message.blocks[2]
    assert [[c.text for c in row] for row in table.cells] == [
        ["Region", "Revenue"],
        ["East", "2500"],
        ["West", "1940"],
    ]
    assert table.cells[0][0].is_header
    assert table.cells[1][1].align == "right"
    details = sent.rich_message.blocks[5]
    assert details.summary == "Step 1 code"
    assert [(b.type, b.text, b.language) for b in details.blocks] == [
        ("pre", "print(df.revenue.sum())", "python")
    ]
    [stored] = tg.messages(chat)
    assert tg.rich_photos(stored) == [picture]
    assert "East | 2500" in stored.content


@pytest.mark.parametrize(
    ("markdown", "media", "error"),
    [
        ("", 0, "RICH_MESSAGE_CONTENT_REQUIRED"),
        ("#\n\ntext", 0, "RICH_MESSAGE_CONTENT_REQUIRED"),
        ("x" * 32769, 0, "RICH_MESSAGE_TEXT_TOO_LONG"),
        ("\n".join(f"- item {i}" for i in range(300)), 0, "RICH_MESSAGE_BLOCKS_TOO_MANY"),
        ("|" + "c|" * 21 + "\n|" + "-|" * 21 + "\n", 0, "RICH_MESSAGE_TABLE_TOO_WIDE"),
        ("![](tg://photo?id=missing)", 1, "RICH_MESSAGE_MEDIA_NOT_FOUND"),
        ("text", 51, "RICH_MESSAGE_MEDIA_TOO_MANY"),
    ],
)
async def test_rich_messages_keep_telegrams_limits(
    tg: TelegramFake, bot: Bot, markdown: str, media: int, error: str
) -> None:
    chat = tg.private_chat(tg.user())
    picture = png(10, 10)
    items = [
        InputRichMessageMedia(
            id=f"m{i}", media=InputMediaPhoto(media=BufferedInputFile(picture, f"{i}.png"))
        )
        for i in range(media)
    ]
    with pytest.raises(TelegramBadRequest, match=error):
        await bot.send_rich_message(
            chat.id, InputRichMessage(markdown=markdown, media=items or None)
        )
    assert tg.messages(chat) == []


async def test_rich_media_ids_must_be_well_formed(tg: TelegramFake, bot: Bot) -> None:
    chat = tg.private_chat(tg.user())
    photo = InputMediaPhoto(media=BufferedInputFile(png(10, 10), "a.png"))
    with pytest.raises(TelegramBadRequest, match="RICH_MESSAGE_MEDIA_ID_INVALID"):
        await bot.send_rich_message(
            chat.id,
            InputRichMessage(
                markdown="![](tg://photo?id=a.b)",
                media=[InputRichMessageMedia(id="a.b", media=photo)],
            ),
        )
