"""Conversations with the bot in a private chat, as the user sees them: /start, /help, the
command menu, languages, uploading tables, asking, follow-ups, /files, /reset, /cancel, a busy
chat, and two chats analysing at once."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from openpyxl import Workbook

from bot.catalog import load_catalog
from bot.telegram.i18n import translator
from tests.bot.harness import (
    SALES_CSV,
    answer,
    answered,
    ask,
    ask_until_answered,
    file_ids,
    files_listing,
    files_sent,
    person,
    person_with_sales,
    roomy_world,
    send_and_wait,
    upload,
)
from tests.fakes.responses_api import Scenario
from tests.fakes.telegram_api import StoredMessage

ASK_BUTTONS_EN = {
    "📊 Overview with charts",
    "🔗 Correlations and heat map",
    "🚨 Anomalies and outliers",
    "📈 Trends and a forecast",
}


def stalled(gate: asyncio.Event | None = None) -> Scenario:
    """A turn that stops after the first code chunk until the gate opens or the bot leaves."""
    return answer().stall(after=5, gate=gate or asyncio.Event())


def entity_text(message: StoredMessage, entity: dict[str, int]) -> str:
    """The part of the message an entity covers (offsets count UTF-16 code units)."""
    units = (message.text or "").encode("utf-16-le")
    start, end = 2 * entity["offset"], 2 * (entity["offset"] + entity["length"])
    return units[start:end].decode("utf-16-le")


# ---- /start, /help, the command menu, languages ------------------------------------------


async def test_start_welcomes_and_offers_the_datasets(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg = world.tg
        ann, chat = person(tg)
        tg.send_text(chat, ann, "/start")
        offer = await tg.wait_for_message(chat, contains="Sample datasets")
        welcome = tg.messages(chat)[0]
        assert "I analyse data" in welcome.text
        assert "CSV" in welcome.text
        assert "XLSX" in welcome.text
        catalog = load_catalog()
        titles = [b["text"] for b in offer.buttons]
        assert titles == [d.title("en") for d in catalog.all()]

        tg.press(offer, titles[0])
        added = await tg.wait_for_message(chat, contains="License:")
        assert added.buttons  # suggested questions for the dataset and the generic ones
        assert {b["text"] for b in added.buttons} >= ASK_BUTTONS_EN


async def test_help_tells_limits_group_usage_and_privacy_mode(tmp_path: Path) -> None:
    async with roomy_world(tmp_path, max_files_per_chat=7, daily_user_quota=12) as world:
        tg = world.tg
        ann, chat = person(tg)
        tg.send_text(chat, ann, "/help")
        help_ = await tg.wait_for_message(chat, contains="How it works")
        text = help_.text
        assert "Up to 7 files" in text
        assert "one file up to 20 MB" in text
        assert "12 analyses per person per day" in text
        assert "/analyze@DataLensBot question" in text
        assert "privacy mode" in text
        assert "reply to my message" in text


async def test_command_menu_is_registered_in_both_languages_for_private_and_groups(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path) as world:
        commands = world.tg.commands
        names = {
            key: {c["command"]: c["description"] for c in value} for key, value in commands.items()
        }
        # DEFAULT_LANGUAGE is Russian: the menu without a language code is the Russian one.
        assert set(names) == {
            ("all_private_chats", ""),
            ("all_group_chats", ""),
            ("all_private_chats", "en"),
            ("all_group_chats", "en"),
        }
        assert names[("all_private_chats", "")]["start"] == "Начать и коротко о боте"
        assert names[("all_private_chats", "en")]["start"] == "Start and short help"
        assert names[("all_group_chats", "")]["analyze"] == "Задать вопрос о данных"
        assert names[("all_group_chats", "en")]["analyze"] == "Ask a question about the data"
        assert "start" not in names[("all_group_chats", "en")]
        assert {"files", "reset", "cancel", "dataset"} <= names[("all_private_chats", "en")].keys()


async def test_language_follows_telegram_then_default_then_the_users_choice(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path, default_language="en") as world:
        tg = world.tg
        ivan = tg.user("Ivan", language_code="ru")
        hans = tg.user("Hans", language_code="de")
        ivan_chat, hans_chat = tg.private_chat(ivan), tg.private_chat(hans)

        tg.send_text(ivan_chat, ivan, "/start")
        tg.send_text(hans_chat, hans, "/start")
        await tg.wait_for_message(ivan_chat, contains="Я анализирую данные")
        await tg.wait_for_message(hans_chat, contains="I analyse data")  # DEFAULT_LANGUAGE

        tg.send_text(hans_chat, hans, "/language")
        menu = await tg.wait_for_message(hans_chat, contains="Choose the language")
        press = tg.press(menu, "🇷🇺 Русский")
        await tg.wait_for_message(hans_chat, contains="Язык")
        await tg.wait_for(lambda: press.id in tg.callback_answers)

        tg.send_text(hans_chat, hans, "/help")
        await tg.wait_for_message(hans_chat, contains="Как это работает")

        await world.restart(default_language="en")  # the choice is kept across restarts
        tg.send_text(hans_chat, hans, "/files")
        await tg.wait_for_message(hans_chat, contains="В этом чате пока нет файлов")


# ---- files --------------------------------------------------------------------------------


async def test_csv_preview_shows_name_shape_columns_rows_and_question_buttons(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path) as world:
        tg = world.tg
        ann, chat = person(tg)
        preview = await upload(tg, chat, ann, "sales.csv", SALES_CSV)
        text = preview.text
        assert "sales.csv" in text
        assert "6 × 4" in text
        pre = [e for e in preview.entities if e["type"] == "pre"]
        assert len(pre) == 1
        block = entity_text(preview, pre[0])
        lines = block.splitlines()
        assert [c.strip() for c in lines[0].split("│")] == ["region", "month", "revenue", "units"]
        assert [c.strip() for c in lines[1].split("│")] == ["text", "text", "int", "int"]
        assert "East" in lines[3]
        assert "1200" in lines[3]
        assert 3 <= len(lines) - 3 <= 5  # a few rows, not the whole table
        assert {b["text"] for b in preview.buttons} == ASK_BUTTONS_EN


async def test_tsv_xlsx_and_cp1251_files_are_read_and_the_model_gets_utf8(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = person(tg)

        tsv = b"city\tpopulation\nOslo\t700000\nBergen\t290000\nTromso\t77000\n"
        preview = await upload(tg, chat, ann, "cities.tsv", tsv)
        assert "3 × 2" in preview.text
        assert "population" in preview.text

        book = Workbook()
        sheet = book.active
        sheet.append(["product", "price", "sold"])
        for row in (["tea", 3.5, 10], ["coffee", 4.25, 7], ["cocoa", 2.0, 3], ["milk", 1.1, 8]):
            sheet.append(row)
        buffer = io.BytesIO()
        book.save(buffer)
        preview = await upload(tg, chat, ann, "shop.xlsx", buffer.getvalue())
        assert "shop.xlsx" in preview.text
        assert "4 × 3" in preview.text
        assert "coffee" in preview.text
        assert "float" in preview.text

        russian = "Регион;Выручка\nМосква;100\nКазань;80\nТверь;30\n".encode("cp1251")
        preview = await upload(tg, chat, ann, "отчёт.csv", russian)
        assert "3 × 2" in preview.text
        assert "Регион" in preview.text
        assert "Казань" in preview.text

        await ask_until_answered(
            world, chat, ann, "Where is revenue highest?", "Moscow earns most."
        )
        uploaded = {f.filename: f.data for f in llm.uploads}
        assert len(uploaded) == 3
        assert "cities.csv" in uploaded  # OpenAI takes tables as .csv, not .tsv
        cyrillic = next(
            data
            for name, data in uploaded.items()
            if name.endswith("csv") and not name.startswith("cities")
        )
        assert "Регион" in cyrillic.decode("utf-8")
        assert set(files_sent(llm)) == {f.id for f in llm.uploads}


async def test_caption_asks_about_the_document_and_example_buttons_ask_localized(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ivan, chat = person(tg, "Ivan", "ru")

        llm.enqueue(answer("Восток впереди."))
        preview = await upload(tg, chat, ivan, "sales.csv", SALES_CSV, caption="Кто лидер?")
        assert "sales.csv" in preview.text
        await answered(tg, chat, "Восток впереди.")
        assert llm.response_requests()[0].json["input"] == "Кто лидер?"

        llm.enqueue(answer("Обзор готов."))
        label = translator("ru").plain("ask-overview")
        tg.press(preview, label)
        asked = await tg.wait_for_message(chat, contains="❓")
        await answered(tg, chat, "Обзор готов.")
        question = translator("ru").plain("ask-overview-q")
        assert asked.text == f"❓ {question}"
        request = llm.response_requests()[1].json
        assert request["input"] == question
        assert request["previous_response_id"] == next(iter(llm.responses))


# ---- questions ----------------------------------------------------------------------------


async def test_question_without_files_explains_how_to_add_data(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = person(tg)
        reply = await ask(tg, chat, ann, "What is the average revenue?")
        assert "I need data first" in reply.text
        assert [b["text"] for b in reply.buttons] == [d.title("en") for d in load_catalog().all()]
        reply = await ask(tg, chat, ann, "/analyze average revenue?")
        assert "I need data first" in reply.text
        assert llm.response_requests() == []


async def test_analyze_command_and_follow_ups_carry_the_conversation(tmp_path: Path) -> None:
    async with roomy_world(tmp_path, provider="yandex") as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)

        await ask_until_answered(
            world, chat, ann, "/analyze Which region sells most?", "First answer."
        )
        first = llm.response_requests()[0].json
        assert first["input"] == "Which region sells most?"
        assert "previous_response_id" not in first
        assert first["model"].startswith("gpt://b1g/")

        await ask_until_answered(world, chat, ann, "And the least?", "Second answer.")
        second = llm.response_requests()[1].json
        assert second["input"] == "And the least?"
        assert second["previous_response_id"] == next(iter(llm.responses))
        assert files_sent(llm, 1) == files_sent(llm, 0)  # the upload is reused
        assert len(llm.uploads) == 1


async def test_question_while_an_analysis_runs_gets_a_busy_answer_with_cancel(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)

        llm.enqueue(stalled())
        progress = await ask(tg, chat, ann, "Slow question")
        await tg.wait_for(lambda: "Writing code" in (progress.text or ""))
        busy = await ask(tg, chat, ann, "Another question")
        assert "already running" in busy.text
        assert [b["text"] for b in busy.buttons] == ["⏹ Cancel"]
        assert len(llm.response_requests()) == 1

        confirm = await send_and_wait(tg, chat, ann, "/reset", "Forget all")
        tg.press(confirm, "Yes, forget everything")
        await tg.wait_for(lambda: "An analysis is running" in (confirm.text or ""))
        assert "sales.csv" in (await files_listing(tg, chat, ann)).text

        press = tg.press(busy, "⏹ Cancel")
        await tg.wait_for(lambda: (progress.text or "") == "⏹ Cancelled")
        assert await llm.wait_for_disconnect()
        assert tg.callback_answers[press.id].text == "⏹ Cancelling…"
        assert not progress.buttons

        await ask_until_answered(world, chat, ann, "Another question", "Now it works.")


async def test_cancel_command_and_cancel_button_stop_the_analysis(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)

        reply = await ask(tg, chat, ann, "/cancel")
        assert reply.text == "Nothing is running in this chat."

        llm.enqueue(stalled())
        progress = await ask(tg, chat, ann, "Slow question")
        await tg.wait_for(lambda: "Writing code" in (progress.text or ""))
        reply = await ask(tg, chat, ann, "/cancel")
        assert reply.text == "⏹ Cancelling…"
        await tg.wait_for(lambda: progress.text == "⏹ Cancelled")
        assert await llm.wait_for_disconnect()
        assert len(llm.disconnects) == 1

        llm.enqueue(stalled())
        progress = await ask(tg, chat, ann, "Slow again")
        await tg.wait_for(lambda: "Writing code" in (progress.text or ""))
        press = tg.press(progress, "⏹ Cancel")
        await tg.wait_for(lambda: progress.text == "⏹ Cancelled")
        await tg.wait_for(lambda: len(llm.disconnects) == 2)
        assert tg.callback_answers[press.id].text == "⏹ Cancelling…"
        # no failure message follows a cancel: the progress message says it all
        assert not any("failed" in (m.text or "") for m in tg.messages(chat))

        # cancelled while the data is still being uploaded
        llm.upload_gate = asyncio.Event()
        progress = await ask(tg, chat, ann, "Slow upload")
        await tg.wait_for(lambda: "Uploading the data" in (progress.text or ""))
        tg.press(progress, "⏹ Cancel")
        await tg.wait_for(lambda: progress.text == "⏹ Cancelled")
        assert len(llm.response_requests()) == 2  # the model was never asked
        llm.upload_gate.set()

        await ask_until_answered(world, chat, ann, "Quick question", "Done after cancels.")
        assert len(llm.response_requests()) == 3
        assert files_sent(llm) == [f.id for f in llm.uploads if f.filename == "sales.csv"][-1:]
        # an old Cancel button (a client still showing the first keyboard) does no harm
        progress.reply_markup = progress.versions[0].reply_markup
        stale = tg.press(progress, "⏹ Cancel")
        await tg.wait_for(lambda: stale.id in tg.callback_answers)
        assert tg.callback_answers[stale.id].text == "This analysis has already finished."


async def test_files_lists_with_remove_buttons_and_removal_deletes_the_remote_copy(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        await upload(tg, chat, ann, "cities.csv", b"city,pop\nOslo,7\nBergen,3\n")
        await ask_until_answered(world, chat, ann, "Compare", "Both seen.")
        remote = {f.filename: f.id for f in llm.uploads}
        assert set(remote) == {"sales.csv", "cities.csv"}

        listing = await send_and_wait(tg, chat, ann, "/files", "Files in this chat")
        assert "sales.csv" in listing.text
        assert "cities.csv" in listing.text
        assert "(2," in listing.text
        assert [b["text"] for b in listing.buttons] == ["🗑 sales.csv", "🗑 cities.csv"]

        tg.press(listing, "🗑 sales.csv")
        await tg.wait_for_message(chat, contains="sales.csv was removed")
        await tg.wait_for(lambda: [b["text"] for b in listing.buttons] == ["🗑 cities.csv"])
        await tg.wait_for(lambda: remote["sales.csv"] not in llm.files)
        assert ("DELETE", f"/v1/files/{remote['sales.csv']}") in [
            (r.method, r.path) for r in llm.requests
        ]
        assert remote["cities.csv"] in llm.files

        listing_text = (await files_listing(tg, chat, ann)).text
        assert "sales.csv" not in listing_text
        assert "cities.csv" in listing_text

        await ask_until_answered(world, chat, ann, "Again", "Only cities.")
        assert files_sent(llm) == [remote["cities.csv"]]


async def test_reset_asks_first_no_keeps_yes_forgets_files_and_conversation(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        await ask_until_answered(world, chat, ann, "Question", "Before reset.")
        remote_id = llm.uploads[0].id

        confirm = await send_and_wait(tg, chat, ann, "/reset", "Forget all")
        assert "Forget all 1 files" in confirm.text
        tg.press(confirm, "No, keep")
        await tg.wait_for(lambda: confirm.text == "OK, nothing was removed.")
        assert "sales.csv" in (await files_listing(tg, chat, ann)).text

        confirm = await send_and_wait(tg, chat, ann, "/reset", "Forget all")
        tg.press(confirm, "Yes, forget everything")
        await tg.wait_for(lambda: (confirm.text or "").startswith("🧹 Done"))
        assert "no files" in (await files_listing(tg, chat, ann)).text
        await tg.wait_for(lambda: remote_id not in llm.files)

        await upload(tg, chat, ann, "sales.csv", SALES_CSV)
        await ask_until_answered(world, chat, ann, "Question", "After reset.")
        assert "previous_response_id" not in llm.response_requests()[-1].json
        assert files_sent(llm) != [remote_id]


# ---- two chats at once --------------------------------------------------------------------


async def test_two_chats_analyse_at_once_each_with_only_its_own_files(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, bob = tg.user("Ann"), tg.user("Bob")
        ann_chat, bob_chat = tg.private_chat(ann), tg.private_chat(bob)
        ann_csv = b"fruit,kg\napple,3\npear,5\n"
        bob_csv = b"car,speed\nvolvo,180\nfiat,150\n"
        await upload(tg, ann_chat, ann, "fruit.csv", ann_csv)
        await upload(tg, bob_chat, bob, "cars.csv", bob_csv)

        gate = asyncio.Event()
        llm.enqueue(answer("Ann's answer.").stall(after=5, gate=gate))
        await ask(tg, ann_chat, ann, "About fruit")
        await tg.wait_for(lambda: len(llm.response_requests()) == 1)
        # while Ann's analysis still runs:
        await ask_until_answered(world, bob_chat, bob, "About cars", "Bob's answer.")
        assert not any("Ann's" in (m.text or "") for m in tg.messages(ann_chat))
        gate.set()
        await answered(tg, ann_chat, "Ann's answer.")

        owner = {f.id: f.data for f in llm.uploads}
        requests = {r.json["input"]: r.json for r in llm.response_requests()}
        ann_ids = file_ids(requests["About fruit"])
        bob_ids = file_ids(requests["About cars"])
        assert [owner[i] for i in ann_ids] == [ann_csv]
        assert [owner[i] for i in bob_ids] == [bob_csv]
        assert not any("Bob's" in (m.text or "") for m in tg.messages(ann_chat))
