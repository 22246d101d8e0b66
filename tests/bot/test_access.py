"""Who may use the bot (allowlists, admins) and how much (daily quotas, /usage, /stats)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from tests.bot.harness import BOT_USERNAME, SALES_CSV, World, bot_world, send_and_wait, upload
from tests.fakes.responses_api import Scenario
from tests.fakes.telegram_api import Chat, StoredMessage, TelegramFake, User

ANALYZE = f"/analyze@{BOT_USERNAME}"


@contextlib.asynccontextmanager
async def world_of(
    data_dir: Path, *names: str, settings: Callable[[TelegramFake, list[User]], dict[str, Any]]
) -> AsyncIterator[tuple[World, list[User]]]:
    """The bot against the fakes, with users that exist before it starts: `settings(tg,
    users)` returns the settings overrides (it may also build chats, whose ids it needs)."""
    users: list[User] = []

    def before_start(tg: TelegramFake) -> dict[str, Any]:
        users.extend(tg.user(name) for name in names)
        return settings(tg, users)

    async with bot_world(data_dir, before_start=before_start) as world:
        yield world, users


def was_progress(message: StoredMessage) -> bool:
    """The live progress message of an analysis (it had a Cancel button at first)."""
    markup = message.versions[0].reply_markup or {}
    rows = markup.get("inline_keyboard", [])
    return any("Cancel" in button["text"] for row in rows for button in row)


async def ask(world: World, chat: Chat, user: User, question: str) -> StoredMessage:
    """Send a question and return the bot's first new message that is not progress."""
    return await send_and_wait(
        world.tg, chat, user, question, predicate=lambda m: not was_progress(m)
    )


async def command(world: World, chat: Chat, user: User, text: str) -> str:
    """Send `text` and return the text of the bot's next message."""
    return (await send_and_wait(world.tg, chat, user, text)).text


# ---- quotas ---------------------------------------------------------------------------------


async def test_daily_user_quota_refuses_without_calling_the_model_admins_exempt(
    tmp_path: Path,
) -> None:
    async with world_of(
        tmp_path,
        "Ann",
        "Boss",
        settings=lambda _tg, u: {"daily_user_quota": 1, "admin_user_ids": str(u[1].id)},
    ) as (world, (ann, boss)):
        tg, llm = world.tg, world.llm
        chat = tg.private_chat(ann)
        await upload(tg, chat, ann, "sales.csv", SALES_CSV)
        llm.enqueue(Scenario().text("First answer.").usage(300, 40))
        assert (await ask(world, chat, ann, "Revenue?")).text == "First answer."

        refusal = await ask(world, chat, ann, "And units?")
        assert "today's limit of 1 analyses" in refusal.text
        assert "midnight UTC" in refusal.text
        assert len(llm.response_requests()) == 1

        usage = await command(world, chat, ann, "/usage")
        assert "Analyses: 1 of 1" in usage
        assert "Tokens: 300 in, 40 out" in usage

        boss_chat = tg.private_chat(boss)
        await upload(tg, boss_chat, boss, "sales.csv", SALES_CSV)
        for n in (1, 2):
            llm.enqueue(Scenario().text(f"Answer {n} for the boss.").usage(10, 5))
            assert (await ask(world, boss_chat, boss, f"Question {n}")).text.startswith("Answer")
        assert "Analyses: 2 (no limit)" in await command(world, boss_chat, boss, "/usage")
        assert len(llm.response_requests()) == 3


async def test_daily_chat_quota_counts_every_member_of_a_group(tmp_path: Path) -> None:
    async with world_of(
        tmp_path, "Ann", "Bob", settings=lambda _tg, _u: {"daily_chat_quota": 1}
    ) as (
        world,
        (ann, bob),
    ):
        tg, llm = world.tg, world.llm
        group = tg.group("Team", members=[ann, bob])
        tg.send_document(group, ann, "sales.csv", SALES_CSV, caption=f"{ANALYZE} Revenue?")
        llm.enqueue(Scenario().text("Group answer.").usage(20, 5))
        await tg.wait_for_message(group, contains="Group answer.")

        refusal = await ask(world, group, bob, f"{ANALYZE} Units?")
        assert "This chat has used today's limit of 1 analyses" in refusal.text
        assert len(llm.response_requests()) == 1


async def test_analysis_that_never_reached_the_model_does_not_use_the_quota(
    tmp_path: Path,
) -> None:
    async with world_of(tmp_path, "Ann", settings=lambda _tg, _u: {"daily_user_quota": 1}) as (
        world,
        (ann,),
    ):
        tg, llm = world.tg, world.llm
        chat = tg.private_chat(ann)
        await upload(tg, chat, ann, "sales.csv", SALES_CSV)
        # The first request gets 503 (no retries configured); the next one the answer.
        llm.enqueue(Scenario().http_error(503).text("Worked this time.").usage(30, 3))
        failed = await ask(world, chat, ann, "Revenue?")
        assert "unavailable" in failed.text
        assert "Analyses: 0 of 1" in await command(world, chat, ann, "/usage")

        assert (await ask(world, chat, ann, "Revenue?")).text == "Worked this time."
        assert "Analyses: 1 of 1" in await command(world, chat, ann, "/usage")


async def test_stats_shows_totals_to_admins_only(tmp_path: Path) -> None:
    async with world_of(
        tmp_path, "Ann", "Bob", "Boss", settings=lambda _tg, u: {"admin_user_ids": str(u[2].id)}
    ) as (world, (ann, bob, boss)):
        tg, llm = world.tg, world.llm
        for user, tokens in ((ann, (100, 10)), (bob, (200, 20))):
            chat = tg.private_chat(user)
            await upload(tg, chat, user, "sales.csv", SALES_CSV)
            llm.enqueue(Scenario().text(f"Hi {user.first_name}.").usage(*tokens))
            await ask(world, chat, user, "Revenue?")

        denied = await command(world, tg.private_chat(ann), ann, "/stats")
        assert denied == "This command is for the bot's admins."

        stats = await command(world, tg.private_chat(boss), boss, "/stats")
        assert "Today: 2 analyses by 2 users in 2 chats; tokens 300 in, 30 out." in stats
        assert "Last 7 days: 2 analyses by 2 users in 2 chats; tokens 300 in, 30 out." in stats
        assert "Running now: 0." in stats


# ---- allowlists -----------------------------------------------------------------------------


async def test_private_bot_refuses_a_stranger_once_and_stores_nothing(tmp_path: Path) -> None:
    async with world_of(
        tmp_path, "Ann", "Bob", settings=lambda _tg, u: {"allowed_user_ids": str(u[0].id)}
    ) as (world, (ann, bob)):
        tg, llm = world.tg, world.llm
        bob_chat = tg.private_chat(bob)
        tg.send_document(bob_chat, bob, "sales.csv", SALES_CSV, caption="Revenue?")
        refusal = await tg.wait_for_message(bob_chat, contains="private bot")
        assert str(bob.id) in refusal.text
        tg.send_text(bob_chat, bob, "Please?")

        ann_chat = tg.private_chat(ann)
        # The allowed user works; also a barrier.
        await upload(tg, ann_chat, ann, "sales.csv", SALES_CSV)
        llm.enqueue(Scenario().text("For Ann."))
        assert (await ask(world, ann_chat, ann, "Revenue?")).text == "For Ann."
        assert len(tg.messages(bob_chat)) == 1  # one refusal, not one per message
        assert len(llm.response_requests()) == 1
        assert len(tg.calls_of("getFile")) == 1  # Ann's file only
        assert not (tmp_path / "files" / str(bob_chat.id)).exists()


async def test_allowed_group_lets_every_member_in(tmp_path: Path) -> None:
    def allow_team(tg: TelegramFake, users: list[User]) -> dict[str, Any]:
        team.append(tg.group("Allowed team", members=users))
        return {"allowed_chat_ids": str(team[0].id), "allowed_user_ids": str(users[0].id)}

    team: list[Chat] = []
    async with world_of(tmp_path, "Ann", "Carl", settings=allow_team) as (world, (_, carl)):
        tg, llm = world.tg, world.llm
        [group] = team
        tg.send_document(group, carl, "sales.csv", SALES_CSV, caption=f"{ANALYZE} Revenue?")
        llm.enqueue(Scenario().text("Carl may ask."))
        await tg.wait_for_message(group, contains="Carl may ask.")


async def test_allowed_member_may_use_the_bot_in_any_group(tmp_path: Path) -> None:
    async with world_of(
        tmp_path, "Ann", "Bob", settings=lambda _tg, u: {"allowed_user_ids": str(u[0].id)}
    ) as (world, (ann, bob)):
        tg, llm = world.tg, world.llm
        group = tg.group("Other team", members=[bob, ann])
        tg.send_document(group, ann, "sales.csv", SALES_CSV, caption=f"{ANALYZE} Revenue?")
        llm.enqueue(Scenario().text("Ann may ask anywhere."))
        await tg.wait_for_message(group, contains="Ann may ask anywhere.")


async def test_stranger_in_a_group_nobody_allowed_gets_refused_on_commands_only(
    tmp_path: Path,
) -> None:
    async with world_of(
        tmp_path, "Ann", "Bob", settings=lambda _tg, u: {"allowed_user_ids": str(u[0].id)}
    ) as (world, (ann, bob)):
        tg, llm = world.tg, world.llm
        group = tg.group("Open chatter", members=[bob], privacy_mode=False)
        tg.send_text(group, bob, "hello everyone, nice weather")
        asked = tg.send_text(group, bob, f"{ANALYZE} Revenue?")
        refusal = await tg.wait_for_message(group, contains="not enabled for this group")
        assert str(group.id) in refusal.text
        assert refusal.reply_to is not None
        assert refusal.reply_to.message_id == asked.message_id

        tg.send_text(group, bob, "more chatter")
        ann_chat = tg.private_chat(ann)
        await command(world, ann_chat, ann, "/help")  # a barrier: later updates are handled
        assert len(tg.messages(group)) == 1
        assert llm.response_requests() == []


async def test_strangers_button_press_gets_an_alert(tmp_path: Path) -> None:
    async with world_of(
        tmp_path, "Ann", "Bob", settings=lambda _tg, u: {"allowed_user_ids": str(u[0].id)}
    ) as (world, (ann, bob)):
        tg = world.tg
        group = tg.group("Mixed", members=[ann, bob])
        tg.send_text(group, ann, f"/dataset@{BOT_USERNAME}")
        catalog = await tg.wait_for_message(group, contains="Sample datasets")
        press = tg.press(catalog, catalog.buttons[0]["callback_data"], user=bob)
        answer = await tg.wait_for(lambda: tg.callback_answers.get(press.id))
        assert answer.show_alert
        assert answer.text == "Sorry, this is a private bot."
        assert len(tg.messages(group)) == 1  # nothing was added for the stranger
