"""The outbound scheduler against the Telegram fake (which enforces per-chat and overall
limits and records every 429): who goes first when the budget is short, that progress edits
of one message collapse into the latest, and that Telegram's documented limits are kept.
The bot's own request middleware and scheduler on a real aiogram `Bot`; order and counts
are asserted, never durations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.telegram.middlewares import RetryAfterMiddleware
from bot.telegram.outbox import ChatLimits, Outbox, Priority, TokenBucket, sending_as
from bot.telegram.progress import PacedEditor
from tests.bot.harness import BOT_USERNAME
from tests.fakes.telegram_api import ApiCall, Chat, FloodLimits, TelegramFake


@asynccontextmanager
async def bot_on(
    tg: TelegramFake,
    per_second: float = 50,
    burst: float = 1,
    limits: ChatLimits | None = None,
    max_in_flight: int = 10,
) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url))
    outbox = Outbox(TokenBucket(per_second, burst), limits=limits, max_in_flight=max_in_flight)
    session.middleware(RetryAfterMiddleware(outbox=outbox))
    bot = Bot(tg.token, session=session)
    try:
        yield bot
    finally:
        await bot.session.close()


def private_chats(tg: TelegramFake, n: int, prefix: str) -> list[Chat]:
    return [tg.private_chat(tg.user(f"{prefix}{i}")) for i in range(n)]


async def progress_messages(tg: TelegramFake, bot: Bot, chats: list[Chat]) -> list[int]:
    ids = []
    for chat in chats:
        message = await bot.send_message(chat.id, "working…")
        ids.append(message.message_id)
    return ids


def sends(tg: TelegramFake, first: int) -> list[ApiCall]:
    """Requests to chats Telegram carried out, in the order it got them, from `first` on."""
    return [c for c in tg.calls[first:] if c.ok and "chat_id" in c.params]


async def queued(*makers: Callable[[], Awaitable[Any]]) -> None:
    """Start the requests in this order within one tick (so they queue in this order), and
    wait for all."""
    await asyncio.gather(*(make() for make in makers))


def edit(bot: Bot, chat: Chat, message_id: int, text: str) -> Callable[[], Awaitable[Any]]:
    async def go() -> Any:
        with sending_as(Priority.PROGRESS):
            return await bot.edit_message_text(text=text, chat_id=chat.id, message_id=message_id)

    return go


def send(
    bot: Bot, chat: Chat, text: str, priority: Priority | None = None
) -> Callable[[], Awaitable[Any]]:
    async def go() -> Any:
        if priority is None:  # what a handler answering an update does: nothing special
            return await bot.send_message(chat.id, text)
        with sending_as(priority):
            return await bot.send_message(chat.id, text)

    return go


async def test_a_command_goes_before_final_answers_and_both_before_progress_edits() -> None:
    async with TelegramFake(bot_username=BOT_USERNAME, flood=FloodLimits.off()) as tg:
        busy = private_chats(tg, 8, "busy")
        finished = private_chats(tg, 3, "done")
        idle = tg.private_chat(tg.user("Idle"))
        # 10 requests a second, no burst: the budget, not Telegram, sets the pace.
        async with bot_on(tg, per_second=10, burst=1) as bot:
            ids = await progress_messages(tg, bot, busy)
            start = len(tg.calls)
            await queued(
                *(edit(bot, c, m, "step 2") for c, m in zip(busy, ids, strict=True)),
                *(send(bot, c, "The answer", Priority.RESULT) for c in finished),
                send(bot, idle, "Welcome!"),
            )
    order = [(c.method, int(c.params["chat_id"])) for c in sends(tg, start)]
    assert len(order) == 8 + 3 + 1
    # Everything queued in the same tick; the budget then hands out turns one by one: first
    # the idle chat's command reply, then the final answers, then the progress edits.
    assert order[0] == ("sendMessage", idle.id)
    assert {chat for _, chat in order[1:4]} == {c.id for c in finished}
    assert [m for m, _ in order[4:]] == ["editMessageText"] * 8


async def test_a_command_does_not_wait_behind_other_chats_progress() -> None:
    async with TelegramFake(bot_username=BOT_USERNAME, flood=FloodLimits.off()) as tg:
        busy = private_chats(tg, 20, "busy")
        idle = tg.private_chat(tg.user("Idle"))
        async with bot_on(tg, per_second=20, burst=1) as bot:
            ids = await progress_messages(tg, bot, busy)
            start = len(tg.calls)
            edits = [
                asyncio.create_task(edit(bot, c, m, "step 2")())
                for c, m in zip(busy, ids, strict=True)
            ]
            await asyncio.sleep(0.12)  # the edits are going out, one per 50 ms
            await send(bot, idle, "Welcome!")()
            await asyncio.gather(*edits)
    order = [int(c.params["chat_id"]) for c in sends(tg, start)]
    before = order.index(idle.id)
    assert 1 <= before <= 5, order  # the edits sent so far, not the 20 queued
    assert len(order) == 21


async def test_edits_of_one_message_waiting_together_collapse_into_the_latest() -> None:
    async with TelegramFake(bot_username=BOT_USERNAME, flood=FloodLimits.off()) as tg:
        chat = tg.private_chat(tg.user("Ann"))
        async with bot_on(tg) as bot:
            [message_id] = await progress_messages(tg, bot, [chat])
            await queued(*(edit(bot, chat, message_id, f"step {n}") for n in range(1, 6)))
        [message] = tg.messages(chat)
    assert [v.text for v in tg.edits_of(message)] == ["step 5"]
    assert message.text == "step 5"


async def test_documented_limits_busy_private_chat_and_group_draw_no_429() -> None:
    # The fake's limits are Telegram's documented ones: about a message a second in a
    # private chat with a short burst, 20 a minute in a group, 30 a second overall.
    async with TelegramFake(bot_username=BOT_USERNAME, flood=FloodLimits()) as tg:
        ann = tg.user("Ann")
        private = tg.private_chat(ann)
        group = tg.group("Team", members=[ann])
        async with bot_on(tg, per_second=25, burst=5) as bot:
            [progress] = await progress_messages(tg, bot, [private])
            await queued(
                *(send(bot, private, f"part {n}", Priority.RESULT) for n in range(8)),
                *(edit(bot, private, progress, f"step {n}") for n in range(3)),
                *(send(bot, group, f"group part {n}", Priority.RESULT) for n in range(5)),
            )
        assert tg.flood_refusals == []
        texts = [m.text for m in tg.messages(private)]
        assert texts == ["step 2", *(f"part {n}" for n in range(8))]
        assert [m.text for m in tg.messages(group)] == [f"group part {n}" for n in range(5)]


async def test_a_429_from_a_stricter_telegram_is_waited_out_and_the_same_request_repeated() -> None:
    # Telegram stricter than documented: no burst at all in a private chat.
    async with TelegramFake(bot_username=BOT_USERNAME, flood=FloodLimits.strict()) as tg:
        chat = tg.private_chat(tg.user("Ann"))
        async with bot_on(tg) as bot:
            await queued(*(send(bot, chat, f"part {n}", Priority.RESULT) for n in range(3)))
        assert len(tg.flood_refusals) >= 1
        assert tg.flood_violations == []  # nothing was sent to the chat during the pause
        assert [m.text for m in tg.messages(chat)] == ["part 0", "part 1", "part 2"]


async def test_a_chat_waiting_out_a_429_does_not_hold_up_other_chats() -> None:
    # One request in flight at a time: the request under flood control must step aside.
    async with TelegramFake(bot_username=BOT_USERNAME, flood=FloodLimits.strict()) as tg:
        flooded, other = tg.private_chat(tg.user("Ann")), tg.private_chat(tg.user("Bob"))
        async with bot_on(tg, max_in_flight=1) as bot:
            first = len(tg.calls)
            parts = asyncio.ensure_future(
                queued(*(send(bot, flooded, f"part {n}", Priority.RESULT) for n in range(2)))
            )
            await tg.wait_for(lambda: tg.flood_refusals)  # "part 1" waits out its pause
            await send(bot, other, "hello")()
            await parts
        order = [c.params.get("text") for c in sends(tg, first)]
        assert order.index("hello") < order.index("part 1")
        assert [m.text for m in tg.messages(flooded)] == ["part 0", "part 1"]
        assert tg.flood_violations == []


async def test_chat_actions_only_from_spare_budget() -> None:
    async with TelegramFake(bot_username=BOT_USERNAME, flood=FloodLimits.off()) as tg:
        chats = private_chats(tg, 6, "c")
        async with bot_on(tg, per_second=10, burst=1) as bot:
            await bot.send_chat_action(chats[0].id, "typing")  # nothing waits: sent
            await queued(
                *(send(bot, c, "answer", Priority.RESULT) for c in chats),
                *(lambda c=c: bot.send_chat_action(c.id, "typing") for c in chats),
            )
    assert len(tg.chat_actions) == 1
    assert sum(len(tg.messages(c)) for c in chats) == 6


async def test_progress_text_is_rendered_only_for_edits_that_go_out() -> None:
    async with TelegramFake(bot_username=BOT_USERNAME, flood=FloodLimits.off()) as tg:
        chat = tg.private_chat(tg.user("Ann"))
        renders = 0

        def render() -> str:
            nonlocal renders
            renders += 1
            return f"step {renders}"

        async with bot_on(tg) as bot:
            editor = await PacedEditor.send(bot, chat.id, "working…", interval=0.05)
            for _ in range(30):  # a stream's deltas in 30 bursts of 10
                for _ in range(10):
                    editor.update(render, None)
                await asyncio.sleep(0.01)
            await editor.finish("done")
        [message] = tg.messages(chat)
        edits = [v.text for v in tg.edits_of(message)]
    assert edits[-1] == "done"
    assert renders == len(edits) - 1  # one render per edit sent (the last is the final text)
    assert renders <= 30  # at most one per burst of updates, never one per update


async def test_a_request_given_up_while_waiting_does_not_stop_the_others() -> None:
    outbox = Outbox(budget=None)
    assert await outbox.acquire(1, Priority.INTERACTIVE)  # chat 1 has a request in flight
    gives_up = asyncio.create_task(outbox.acquire(1, Priority.INTERACTIVE))
    waits = asyncio.create_task(outbox.acquire(1, Priority.RESULT))
    await asyncio.sleep(0)  # both are queued
    outbox.release(1)  # the scheduler wakes up first…
    gives_up.cancel()  # …and finds the first waiting request already given up
    assert await asyncio.wait_for(waits, timeout=5)
    assert gives_up.cancelled()
