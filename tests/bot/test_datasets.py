"""/dataset end to end: the catalog, adding a bundled dataset like an upload, its suggested
questions, combining datasets, one shared remote copy per dataset, forged buttons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.catalog import Dataset, load_catalog
from tests.bot.harness import (
    SALES_CSV,
    World,
    bot_world,
    file_ids,
    files_listing,
    last_id,
    next_message,
    person,
    send_and_wait,
    text_answer,
    upload,
)
from tests.fakes.telegram_api import Chat, FloodLimits, StoredMessage, TelegramFake, User

CATALOG = load_catalog()


def catalog_entry(dataset_id: str) -> Dataset:
    found = CATALOG.get(dataset_id)
    assert found is not None, dataset_id
    return found


GAPMINDER = catalog_entry("gapminder")
FLIGHTS = catalog_entry("flights")
WEATHER = catalog_entry("weather")


def has_dataset_buttons(message: StoredMessage) -> bool:
    return any(str(b.get("callback_data", "")).startswith("ds:") for b in message.buttons)


async def open_catalog(tg: TelegramFake, chat: Chat, user: User) -> StoredMessage:
    return await send_and_wait(tg, chat, user, "/dataset", predicate=has_dataset_buttons)


async def choose(
    tg: TelegramFake, chat: Chat, menu: StoredMessage, dataset: Dataset, user: User | None = None
) -> StoredMessage:
    """Press the dataset's button; the bot's reply naming the dataset's file (or title)."""
    before = last_id(tg, chat)
    press = tg.press(menu, f"ds:{dataset.id}", user=user)
    reply = await next_message(
        tg,
        chat,
        before,
        lambda m: dataset.filename in m.content or "already in this chat" in m.content,
        timeout=20,
    )
    assert press.id in tg.callback_answers  # the button's spinner stops
    return reply


async def ask(tg: TelegramFake, chat: Chat, user: User, question: str, answer: str) -> None:
    """Ask `question` and wait for the bot's answer starting with `answer`."""
    await send_and_wait(
        tg, chat, user, question, predicate=lambda m: (m.text or "").startswith(answer), timeout=20
    )


def question_text(request: dict[str, Any]) -> str:
    return json.dumps(request["input"], ensure_ascii=False)


def requests_of(world: World) -> list[dict[str, Any]]:
    return [r.json for r in world.llm.response_requests()]


def uploads_named(world: World, name: str) -> list[str]:
    return [u.id for u in world.llm.uploads if u.filename == name]


def reply_line(dataset: Dataset) -> str:
    return f"Source: {dataset.attribution}. License: {dataset.license}."


async def test_catalog_lists_every_dataset_in_the_users_language(tmp_path: Path) -> None:
    async with bot_world(tmp_path) as world:
        tg = world.tg
        for language, header in (("en", "Sample datasets"), ("ru", "Примеры данных")):
            user, chat = person(tg, f"User-{language}", language)
            menu = await open_catalog(tg, chat, user)
            assert menu.text.startswith(header)
            for dataset in CATALOG:
                assert dataset.title(language) in menu.text
                assert dataset.description(language) in menu.text
            assert [(b["text"], b["callback_data"]) for b in menu.buttons] == [
                (d.title(language), f"ds:{d.id}") for d in CATALOG
            ]
        movies = catalog_entry("movies")
        assert movies.title("ru") != movies.title("en")  # the two menus really differ
        assert tg.flood_violations == []


async def test_a_chosen_dataset_looks_like_the_same_file_uploaded(tmp_path: Path) -> None:
    async with bot_world(tmp_path) as world:
        tg = world.tg
        ann, ann_chat = person(tg, "Ann")
        bob, bob_chat = person(tg, "Bob")

        menu = await open_catalog(tg, ann_chat, ann)
        added = await choose(tg, ann_chat, menu, GAPMINDER)

        uploaded = await upload(tg, bob_chat, bob, "gapminder.csv", GAPMINDER.path.read_bytes())

        # The same header, preview block and prompt, plus the credit line.
        assert "12,200 × 7" in uploaded.text
        assert added.text == uploaded.text + "\n" + reply_line(GAPMINDER)
        assert [e for e in added.entities if e["type"] == "pre"] == [
            e for e in uploaded.entities if e["type"] == "pre"
        ]
        # The same example-question buttons, after the dataset's own three questions.
        questions = GAPMINDER.questions_for("en")
        assert len(questions) == 3
        own, shared = added.buttons[:3], added.buttons[3:]
        assert shared == uploaded.buttons
        for button, question in zip(own, questions, strict=True):
            label = button["text"].removesuffix("…")
            assert question.startswith(label)
            assert len(button["text"]) <= 60
            assert len(label) > 20


async def test_a_suggested_question_is_asked_with_the_datasets_file(tmp_path: Path) -> None:
    async with bot_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        for language in ("en", "ru"):
            user, chat = person(tg, f"Reader-{language}", language)
            menu = await open_catalog(tg, chat, user)
            added = await choose(tg, chat, menu, GAPMINDER)
            question = GAPMINDER.questions_for(language)[1]

            llm.enqueue(text_answer(f"Answer in {language}."))
            before = last_id(tg, chat)
            tg.press(added, f"dq:{GAPMINDER.id}:1")
            echo = await next_message(
                tg, chat, before, lambda m, q=question: m.content == f"❓ {q}"
            )
            answer = f"Answer in {language}."
            await next_message(tg, chat, echo.message_id, lambda m, a=answer: m.content == a)

            request = llm.response_requests()[-1].json
            assert question in question_text(request)
            [file_id] = file_ids(request)
            assert llm.files[file_id].data == GAPMINDER.path.read_bytes()
            assert "gapminder.csv" in request["instructions"]
        assert tg.flood_violations == []


async def test_choosing_a_dataset_twice_keeps_one_copy(tmp_path: Path) -> None:
    async with bot_world(tmp_path) as world:
        tg = world.tg
        ann, chat = person(tg, "Ann")
        menu = await open_catalog(tg, chat, ann)
        await choose(tg, chat, menu, GAPMINDER)
        again = await choose(tg, chat, menu, GAPMINDER)
        assert "already in this chat" in again.text
        assert GAPMINDER.title("en") in again.text

        listing = await files_listing(tg, chat, ann)
        assert listing.text.count("gapminder.csv") == 1
        assert "(sample dataset)" in listing.text
        assert len(listing.buttons) == 1


async def test_two_datasets_combined_go_to_the_model_together(tmp_path: Path) -> None:
    async with bot_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = person(tg, "Ann")
        menu = await open_catalog(tg, chat, ann)
        await choose(tg, chat, menu, FLIGHTS)
        second = await choose(tg, chat, menu, WEATHER)
        assert "Files in this chat: 2" in second.text

        llm.enqueue(text_answer("Rain delays flights."))
        await ask(tg, chat, ann, "Do rainy hours delay flights?", "Rain delays flights.")

        request = llm.response_requests()[-1].json
        ids = file_ids(request)
        assert len(ids) == 2
        assert sorted(llm.files[i].data for i in ids) == sorted(
            [FLIGHTS.path.read_bytes(), WEATHER.path.read_bytes()]
        )
        instructions = request["instructions"]
        for dataset in (FLIGHTS, WEATHER):
            header = f"`{dataset.filename}`: {dataset.rows} rows × {dataset.cols} columns"
            assert header in instructions
        assert "`dep_delay`" in instructions
        assert "`precip`" in instructions


async def test_a_dataset_is_uploaded_once_for_all_chats(tmp_path: Path) -> None:
    async with bot_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        llm.default_scenario = text_answer("Life expectancy rose.")
        people = [person(tg, name) for name in ("Ann", "Bob", "Cat")]
        for user, chat in people:
            await choose(tg, chat, await open_catalog(tg, chat, user), GAPMINDER)
        before = {chat.id: last_id(tg, chat) for _, chat in people}
        for user, chat in people:  # all at once
            tg.send_text(chat, user, "How did life expectancy change?")
        for _, chat in people:
            await next_message(
                tg,
                chat,
                before[chat.id],
                lambda m: (m.text or "") == "Life expectancy rose.",
                timeout=20,
            )

        shared = uploads_named(world, "gapminder.csv")
        assert len(shared) == 1
        assert [file_ids(r) for r in requests_of(world)] == [shared] * 3

        # A user's own file with the dataset's exact bytes is that chat's own copy.
        dan, dan_chat = person(tg, "Dan")
        await upload(tg, dan_chat, dan, "gapminder.csv", GAPMINDER.path.read_bytes())
        await ask(tg, dan_chat, dan, "How did life expectancy change?", "Life expectancy rose.")
        [own] = file_ids(requests_of(world)[-1])
        assert own != shared[0]
        assert len(uploads_named(world, "gapminder.csv")) == 2


async def test_a_users_identical_files_are_uploaded_per_chat(tmp_path: Path) -> None:
    async with bot_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        llm.default_scenario = text_answer("East leads.")
        seen = []
        for name in ("Ann", "Bob"):
            user, chat = person(tg, name)
            await upload(tg, chat, user, "sales.csv", SALES_CSV)
            await ask(tg, chat, user, "Which region leads?", "East leads.")
            [file_id] = file_ids(requests_of(world)[-1])
            assert llm.files[file_id].data == SALES_CSV
            seen.append(file_id)
        assert seen[0] != seen[1]
        assert len(uploads_named(world, "sales.csv")) == 2


async def test_removing_a_dataset_keeps_the_shared_remote_copy(tmp_path: Path) -> None:
    # Many messages in one chat: pacing is not the point here.
    async with bot_world(tmp_path, flood=FloodLimits.off()) as world:
        tg, llm = world.tg, world.llm
        llm.default_scenario = text_answer("Here you go.")
        ann, ann_chat = person(tg, "Ann")
        bob, bob_chat = person(tg, "Bob")
        for user, chat in ((ann, ann_chat), (bob, bob_chat)):
            await choose(tg, chat, await open_catalog(tg, chat, user), GAPMINDER)
        tg.send_document(ann_chat, ann, "sales.csv", SALES_CSV)
        await tg.wait_for_message(ann_chat, contains="Files in this chat: 2")
        await ask(tg, ann_chat, ann, "Compare the two files", "Here you go.")
        [shared] = uploads_named(world, "gapminder.csv")
        [own] = uploads_named(world, "sales.csv")

        listing = await files_listing(tg, ann_chat, ann)
        for name in ("gapminder.csv", "sales.csv"):
            before = last_id(tg, ann_chat)
            tg.press(listing, f"🗑 {name}")
            await next_message(tg, ann_chat, before, lambda m, n=name: f"{n} was removed" in m.text)
        # The user's own copy is deleted remotely, the dataset's shared copy is not.
        await tg.wait_for(lambda: f"/v1/files/{own}" in llm.paths("DELETE"))
        assert llm.paths("DELETE") == [f"/v1/files/{own}"]
        assert shared in llm.files

        # Bob still uses the same remote copy, and Ann gets it back when she re-adds it.
        await ask(tg, bob_chat, bob, "Population by region?", "Here you go.")
        assert file_ids(requests_of(world)[-1]) == [shared]
        await choose(tg, ann_chat, await open_catalog(tg, ann_chat, ann), GAPMINDER)
        await ask(tg, ann_chat, ann, "Fertility by region?", "Here you go.")
        assert file_ids(requests_of(world)[-1]) == [shared]

        # /reset does not delete it either.
        before = last_id(tg, ann_chat)
        tg.send_text(ann_chat, ann, "/reset")
        confirm = await next_message(tg, ann_chat, before, lambda m: bool(m.buttons))
        tg.press(confirm, "reset:1")
        await tg.wait_for(lambda: confirm.versions[-1].text != confirm.versions[0].text)
        await ask(tg, bob_chat, bob, "And the fertility?", "Here you go.")
        assert file_ids(requests_of(world)[-1]) == [shared]
        assert llm.paths("DELETE") == [f"/v1/files/{own}"]
        assert uploads_named(world, "gapminder.csv") == [shared]


async def test_forged_dataset_buttons_get_a_clear_answer(tmp_path: Path) -> None:
    async with bot_world(tmp_path) as world:
        tg = world.tg
        ann, chat = person(tg, "Ann")
        menu = await open_catalog(tg, chat, ann)
        before = last_id(tg, chat)
        forged = {
            "ds:bitcoin": "This dataset is no longer available. Open /dataset again.",
            "ds:../catalog": "This dataset is no longer available. Open /dataset again.",
            "dq:bitcoin:0": "This button is outdated. Send the command again.",
            "dq:gapminder:7": "This button is outdated. Send the command again.",
            "dq:gapminder:-1": "This button is outdated. Send the command again.",
            "ds": "This button is outdated. Send the command again.",
        }
        for data, expected in forged.items():
            menu.reply_markup = {"inline_keyboard": [[{"text": "forged", "callback_data": data}]]}
            press = tg.press(menu, data)
            answer = await tg.wait_for(lambda p=press: tg.callback_answers.get(p.id))
            assert (answer.text, answer.show_alert) == (expected, True), data
        tg.send_text(chat, ann, "/files")
        reply = await next_message(tg, chat, before, lambda m: True)
        assert "no files in this chat" in reply.text


async def test_start_offers_the_datasets_as_buttons(tmp_path: Path) -> None:
    async with bot_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = person(tg, "Ann", "ru")
        tg.send_text(chat, ann, "/start")
        menu = await next_message(tg, chat, 0, has_dataset_buttons)
        assert menu.text.startswith("Примеры данных")
        added = await choose(tg, chat, menu, WEATHER)
        assert "nyc_weather_2013.csv" in added.text
        assert f"Источник: {WEATHER.attribution}" in added.text

        llm.enqueue(text_answer("Январь самый холодный."))
        question = WEATHER.questions_for("ru")[0]
        before = last_id(tg, chat)
        tg.press(added, f"dq:{WEATHER.id}:0")
        await next_message(tg, chat, before, lambda m: m.content == "Январь самый холодный.")
        request = llm.response_requests()[-1].json
        assert question in question_text(request)
        [file_id] = file_ids(request)
        assert llm.files[file_id].filename == "nyc_weather_2013.csv"
