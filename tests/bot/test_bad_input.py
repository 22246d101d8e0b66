"""What a user sees when they send something the bot cannot use: a specific explanation for
each case, and the chat's files and conversation untouched."""

from __future__ import annotations

from pathlib import Path

from bot.services.answers import REPORTS_DIR
from tests.bot.harness import (
    SALES_CSV,
    World,
    ask,
    ask_until_answered,
    files_listing,
    person,
    person_with_sales,
    png,
    roomy_world,
    upload,
)
from tests.fakes.telegram_api import Chat

MiB = 1024 * 1024
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504


def chat_dir(world: World, chat: Chat) -> Path:
    return world.data_dir / "files" / str(chat.id)


async def test_unusable_files_get_specific_messages_and_the_chat_stays_intact(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        await ask_until_answered(world, chat, ann, "How many rows?", "Six rows.")

        readme = (
            b"# My project\n\nThis tool converts data. Install it with pip, then run it.\n"
            b"It reads your files and writes a report. See the docs for details.\n"
        )
        cases = [
            ("README.md", readme, "I can't read <b>README.md</b>"),
            ("notes.csv", readme, "does not look like a table"),
            ("data.csv", png(), "is not a table (it looks like a binary file"),
            ("empty.csv", b"", "is empty"),
            ("header.csv", b"region,month,revenue\n", "has a header but no data rows"),
            (
                "jp.csv",
                "名前,都市,金額\n田中,東京,100\n鈴木,大阪,200\n山田,名古屋,300\n".encode(
                    "shift_jis"
                ),
                "I could not read the text",
            ),
            ("old.xls", OLE2, "as an Excel 97–2003 workbook"),
        ]
        cases.append(("sales-copy.csv", SALES_CSV, "is already in this chat"))
        for name, data, expected in cases:
            reply = await upload(tg, chat, ann, name, data)
            assert expected.replace("<b>", "").replace("</b>", "") in reply.text, name
            assert reply.text.startswith(("⚠️", "📄")), name
            assert not reply.buttons, name

        listing = await files_listing(tg, chat, ann)
        assert "(1," in listing.text
        assert "sales.csv" in listing.text
        stored = sorted(p.name for p in chat_dir(world, chat).iterdir() if p.name != REPORTS_DIR)
        assert stored == ["sales.csv"]  # besides the answers' reports, nothing was left

        await ask_until_answered(world, chat, ann, "And now?", "Still here.")
        assert llm.response_requests()[-1].json["previous_response_id"] == next(iter(llm.responses))
        assert len(llm.uploads) == 1


async def test_a_document_over_20_mb_is_refused_before_downloading(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg = world.tg
        ann, chat = person(tg)
        reply = await upload(tg, chat, ann, "big.csv", SALES_CSV, file_size_override=25 * MiB)
        assert "big.csv" in reply.text
        assert "is 25 MB" in reply.text
        assert "only up to 20 MB" in reply.text
        assert tg.calls_of("getFile") == []
        assert "no files" in (await files_listing(tg, chat, ann)).text


async def test_a_local_bot_api_server_takes_documents_over_20_mb(tmp_path: Path) -> None:
    async with roomy_world(tmp_path, local_mode=True) as world:
        tg = world.tg
        assert world.app.settings.telegram_api_local
        ann, chat = person(tg)
        reply = await upload(tg, chat, ann, "big.csv", SALES_CSV, file_size_override=25 * MiB)
        assert "big.csv" in reply.text
        assert "6 × 4" in reply.text
        assert len(tg.calls_of("getFile")) == 1

        tg.send_text(chat, ann, "/help")
        help_ = await tg.wait_for_message(chat, contains="How it works")
        assert "one file up to 200 MB" in help_.text


async def test_more_files_than_the_cap_are_refused(tmp_path: Path) -> None:
    async with roomy_world(tmp_path, max_files_per_chat=2) as world:
        tg = world.tg
        ann, chat = person(tg)
        await upload(tg, chat, ann, "a.csv", b"x,y\n1,2\n3,4\n")
        await upload(tg, chat, ann, "b.csv", b"x,z\n1,2\n3,5\n")
        reply = await upload(tg, chat, ann, "c.csv", b"x,w\n1,2\n3,6\n")
        assert "already has 2 files, the maximum" in reply.text
        assert "/files" in reply.text
        listing = await files_listing(tg, chat, ann)
        assert "(2," in listing.text
        assert "c.csv" not in listing.text
        assert sorted(p.name for p in chat_dir(world, chat).iterdir()) == ["a.csv", "b.csv"]


async def test_file_names_with_paths_are_stored_and_shown_to_the_model_safely(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = person(tg)
        first = await upload(tg, chat, ann, "../../etc/passwd.csv", SALES_CSV)
        second = await upload(tg, chat, ann, "..\\..\\x\\..data.csv", b"k,v\na,1\nb,2\n")
        third = await upload(tg, chat, ann, "/tmp/../.hidden.csv", b"k,w\na,1\nb,3\n")
        for reply in (first, second, third):
            assert "Saved as" in reply.text
        stored = sorted(p.name for p in chat_dir(world, chat).iterdir())
        assert len(stored) == 3
        for name in stored:
            assert "/" not in name
            assert "\\" not in name
            assert ".." not in name
            assert not name.startswith(".")
        everything = sorted(p for p in (world.data_dir / "files").rglob("*") if p.is_file())
        assert all(p.parent == chat_dir(world, chat) for p in everything)
        assert not (tmp_path.parent / "etc").exists()

        await ask_until_answered(world, chat, ann, "What is there?", "Three files.")
        assert sorted(f.filename for f in llm.uploads) == stored
        instructions = llm.response_requests()[-1].json["instructions"]
        for name in stored:
            assert name in instructions
        assert "../" not in instructions
        assert "..\\" not in instructions


async def test_old_and_forged_buttons_get_an_outdated_answer_and_break_nothing(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        await upload(tg, chat, ann, "cities.csv", b"city,pop\nOslo,7\nBergen,3\n")

        listing = await files_listing(tg, chat, ann)
        old_markup = listing.reply_markup
        tg.press(listing, "🗑 sales.csv")
        await tg.wait_for_message(chat, contains="sales.csv was removed")
        await tg.wait_for(lambda: len(listing.buttons) == 1)
        listing.reply_markup = old_markup  # a client still showing the old keyboard
        again = tg.press(listing, "🗑 sales.csv")
        await tg.wait_for(lambda: again.id in tg.callback_answers)
        assert tg.callback_answers[again.id].text == "This file is already gone."

        forged = {
            "bogus:payload": "This button is outdated. Send the command again.",
            "ask:nonsense": "This button is outdated. Send the command again.",
            "dq:nosuch:0": "This button is outdated. Send the command again.",
            "dq:sales:x": "This button is outdated. Send the command again.",
            "lang:xx": "This button is outdated. Send the command again.",
            "reset:maybe": "This button is outdated. Send the command again.",
            "cancel:deadbeef": "This analysis has already finished.",
            "rm:00000000": "This file is already gone.",
            "ds:nosuch": "This dataset is no longer available. Open /dataset again.",
        }
        presses = {}
        for data in forged:
            listing.reply_markup = {"inline_keyboard": [[{"text": "x", "callback_data": data}]]}
            presses[data] = tg.press(listing, data)
        await tg.wait_for(lambda: all(p.id in tg.callback_answers for p in presses.values()))
        seen = {data: tg.callback_answers[p.id].text for data, p in presses.items()}
        assert seen == forged

        listing = await files_listing(tg, chat, ann)
        assert "(1," in listing.text
        assert "cities.csv" in listing.text
        await ask_until_answered(world, chat, ann, "What is left?", "Cities only.")
        assert [f.filename for f in llm.uploads] == ["cities.csv"]


async def test_analyze_without_a_question_shows_how_to_ask(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        for text in ("/analyze", "/analyze   ", "/analyze@DataLensBot"):
            reply = await ask(tg, chat, ann, text)
            assert "Write the question after the command" in reply.text
            assert "/analyze@DataLensBot which region has the highest sales?" in reply.text
        assert llm.response_requests() == []
