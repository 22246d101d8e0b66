"""The `Store` contract, checked identically on SQLite and Redis."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from datetime import UTC, date, datetime, timedelta

from bot.storage import (
    DATASET_SCOPE,
    FOLLOW_UPS_KEPT,
    ActiveAnalysis,
    FollowUps,
    QuotaCheck,
    Store,
    StoredFile,
    UsageTotals,
    remote_scope,
)
from tests.storage.conftest import StoreFactory

_keys = itertools.count(1)


def now() -> datetime:
    return datetime.now(UTC)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_file(
    chat_id: int,
    name: str = "report.csv",
    *,
    content: str | None = None,
    added_at: datetime | None = None,
    dataset_id: str | None = None,
    key: str | None = None,
) -> StoredFile:
    return StoredFile(
        chat_id=chat_id,
        file_key=key or f"k{next(_keys)}",
        original_name=name,
        stored_name=name.replace(" ", "_"),
        size=123,
        sha256=sha(content if content is not None else f"{chat_id}/{name}"),
        rows=10,
        columns=(("Регион", "text"), ("sales", "float"), ("day", "date")),
        path=f"/data/files/{chat_id}/{name}",
        added_at=added_at or now(),
        dataset_id=dataset_id,
    )


def make_analysis(
    chat_id: int, analysis_id: str, *, lease: timedelta = timedelta(minutes=2), user_id: int = 7
) -> ActiveAnalysis:
    started = now()
    return ActiveAnalysis(
        chat_id=chat_id,
        analysis_id=analysis_id,
        user_id=user_id,
        question="Какой регион лучший?",
        started_at=started,
        lease_until=started + lease,
        thread_id=55,
        progress_message_id=None,
        language="en",
    )


# ---- files and remote copies --------------------------------------------------------------
async def test_files_round_trip_oldest_first(store: Store) -> None:
    t0 = now() - timedelta(hours=1)
    second = make_file(1, "Продажи 2024.csv", added_at=t0 + timedelta(minutes=5))
    first = make_file(1, "a.csv", added_at=t0)
    other_chat = make_file(2, "b.csv", added_at=t0)
    for record in (second, first, other_chat):
        await store.add_file(record)

    listed = await store.list_files(1)
    assert listed == [first, second]
    assert listed[1].columns == (("Регион", "text"), ("sales", "float"), ("day", "date"))
    assert listed[0].added_at == t0
    assert listed[0].added_at.tzinfo is not None
    assert await store.get_file(1, second.file_key) == second
    assert await store.get_file(2, second.file_key) is None
    assert await store.list_files(3) == []


async def test_remove_file_returns_it_once(store: Store) -> None:
    record = make_file(1)
    await store.add_file(record)
    await store.set_remote_file(remote_scope(1, None), record.sha256, "file-remote-1")

    removed = await store.remove_file(1, record.file_key)
    assert removed is not None
    assert removed.file_key == record.file_key
    assert removed.remote_id == "file-remote-1"
    assert await store.remove_file(1, record.file_key) is None
    assert await store.get_file(1, record.file_key) is None
    assert await store.list_files(1) == []


async def test_remote_ids_are_filled_per_scope(store: Store) -> None:
    # The same bytes uploaded by two chats, and a bundled dataset picked in both chats.
    own_a = make_file(1, "mine.csv", content="same bytes")
    own_b = make_file(2, "mine.csv", content="same bytes")
    ds_a = make_file(1, "titanic.csv", content="dataset bytes", dataset_id="titanic")
    ds_b = make_file(2, "titanic.csv", content="dataset bytes", dataset_id="titanic")
    for record in (own_a, own_b, ds_a, ds_b):
        await store.add_file(record)
    assert remote_scope(1, None) == "chat:1"
    assert remote_scope(1, "titanic") == DATASET_SCOPE

    before = now()
    await store.set_remote_file("chat:1", own_a.sha256, "file-a")
    await store.set_remote_file(DATASET_SCOPE, ds_a.sha256, "file-ds")
    after = now()

    chat1 = {f.stored_name: f for f in await store.list_files(1)}
    chat2 = {f.stored_name: f for f in await store.list_files(2)}
    assert chat1["mine.csv"].remote_id == "file-a"
    # chat 2's private copy is not chat 1's, even with identical bytes
    assert chat2["mine.csv"].remote_id is None
    assert chat2["mine.csv"].remote_uploaded_at is None
    # the dataset's remote copy is shared by every chat
    assert chat1["titanic.csv"].remote_id == "file-ds"
    assert chat2["titanic.csv"].remote_id == "file-ds"
    uploaded = chat1["titanic.csv"].remote_uploaded_at
    assert uploaded is not None
    assert before - timedelta(seconds=1) <= uploaded <= after + timedelta(seconds=1)
    assert (await store.get_file(1, own_a.file_key)).remote_id == "file-a"  # type: ignore[union-attr]

    assert await store.get_remote_file("chat:1", own_a.sha256) == "file-a"
    assert await store.get_remote_file("chat:2", own_a.sha256) is None
    await store.set_remote_file("chat:1", own_a.sha256, "file-a2")  # re-upload replaces
    assert await store.get_remote_file("chat:1", own_a.sha256) == "file-a2"
    await store.forget_remote_file(DATASET_SCOPE, ds_a.sha256)
    assert await store.get_remote_file(DATASET_SCOPE, ds_a.sha256) is None
    assert [f.remote_id for f in await store.list_files(2)] == [None, None]


# ---- conversation, reset, language --------------------------------------------------------
async def test_conversation_set_and_reset(store: Store) -> None:
    empty = await store.get_conversation(5)
    assert (empty.chat_id, empty.last_response_id, empty.last_used_at) == (5, None, None)

    before = now()
    await store.set_last_response(5, "resp_1")
    conv = await store.get_conversation(5)
    assert conv.last_response_id == "resp_1"
    assert conv.last_used_at is not None
    assert conv.last_used_at >= before - timedelta(seconds=1)

    await store.set_last_response(5, None)
    conv = await store.get_conversation(5)
    assert conv.last_response_id is None
    assert conv.last_used_at is not None
    assert (await store.get_conversation(6)).last_response_id is None


async def test_reset_chat_returns_files_and_forgets_conversation(store: Store) -> None:
    files = [make_file(1, f"f{i}.csv", added_at=now() + timedelta(seconds=i)) for i in range(3)]
    for record in files:
        await store.add_file(record)
    kept = make_file(2, "other.csv")
    await store.add_file(kept)
    await store.set_last_response(1, "resp_1")
    await store.set_last_response(2, "resp_2")
    await store.set_remote_file("chat:1", files[0].sha256, "file-0")

    removed = await store.reset_chat(1)
    assert [f.file_key for f in removed] == [f.file_key for f in files]
    assert removed[0].remote_id == "file-0"  # so the caller can delete the remote copy
    assert await store.list_files(1) == []
    assert (await store.get_conversation(1)).last_response_id is None
    assert await store.reset_chat(1) == []
    # other chats are untouched
    assert await store.list_files(2) == [kept]
    assert (await store.get_conversation(2)).last_response_id == "resp_2"


async def test_language(store: Store) -> None:
    assert await store.get_language(42) is None
    await store.set_language(42, "en")
    await store.set_language(43, "ru")
    await store.set_language(42, "ru")
    assert await store.get_language(42) == "ru"
    assert await store.get_language(43) == "ru"


async def test_chat_settings(open_new_store: StoreFactory) -> None:
    store = await open_new_store()
    assert await store.get_chat_settings(-100) == {}
    await store.set_chat_setting(-100, "language", "ru")
    await store.set_chat_setting(-100, "code_file", "off")
    await store.set_chat_setting(-100, "code_file", "on")
    await store.set_chat_setting(5, "rich", "on")
    assert await store.get_chat_settings(-100) == {"language": "ru", "code_file": "on"}
    await store.set_chat_setting(-100, "language", None)  # back to the default
    await store.set_chat_setting(-100, "missing", None)
    # another process sees them; a reset of the chat's data keeps them
    other = await open_new_store()
    await other.reset_chat(-100)
    assert await other.get_chat_settings(-100) == {"code_file": "on"}
    assert await other.get_chat_settings(5) == {"rich": "on"}


async def test_follow_ups(open_new_store: StoreFactory) -> None:
    store = await open_new_store()
    first = FollowUps(1, "a1", ("Как по месяцам?", "Which region grows fastest?"))
    await store.set_follow_ups(first)
    await store.set_follow_ups(FollowUps(2, "a1", ("Other chat?",)))
    assert await store.get_follow_ups(1, "a1") == first
    assert await store.get_follow_ups(1, "nope") is None
    assert (await store.get_follow_ups(2, "a1")).questions == ("Other chat?",)  # type: ignore[union-attr]
    await store.set_follow_ups(FollowUps(1, "a1", ("Replaced",)))
    other = await open_new_store()
    assert (await other.get_follow_ups(1, "a1")).questions == ("Replaced",)  # type: ignore[union-attr]
    # only the newest sets of a chat are kept
    for n in range(FOLLOW_UPS_KEPT):
        await store.set_follow_ups(FollowUps(1, f"b{n}", (f"q{n}",)))
    assert await store.get_follow_ups(1, "a1") is None
    assert await store.get_follow_ups(1, "b0") is not None
    assert await store.get_follow_ups(1, f"b{FOLLOW_UPS_KEPT - 1}") is not None
    # a reset forgets them, in that chat only
    await store.reset_chat(1)
    assert await store.get_follow_ups(1, "b0") is None
    assert await store.get_follow_ups(2, "a1") is not None


async def test_idle_chats(store: Store) -> None:
    old = now() - timedelta(days=40)
    cutoff = now() - timedelta(days=30)
    await store.add_file(make_file(1, added_at=old))  # idle
    await store.add_file(make_file(2, added_at=old))  # old file, but used just now
    await store.set_last_response(2, "resp")
    await store.add_file(make_file(3, added_at=now()))  # recent file
    await store.set_last_response(4, "resp")  # no files: nothing to clean up
    await store.add_file(make_file(5, added_at=old))
    await store.add_file(make_file(5, "new.csv", added_at=now(), key="new5"))
    await store.add_file(make_file(6, added_at=old))

    assert await store.idle_chats(cutoff) == [1, 6]
    await store.remove_file(5, "new5")  # only the old file is left
    await store.reset_chat(6)  # no files any more
    assert await store.idle_chats(cutoff) == [1, 5]
    assert await store.idle_chats(old - timedelta(seconds=1)) == []


async def test_state_survives_a_restart(open_new_store: StoreFactory) -> None:
    first = await open_new_store()
    record = make_file(1, "Продажи.csv")
    await first.add_file(record)
    await first.set_remote_file("chat:1", record.sha256, "file-1")
    await first.set_last_response(1, "resp_1")
    await first.set_language(7, "en")
    assert await first.try_begin_analysis(make_analysis(1, "a1"))
    await first.try_consume_quota(date(2025, 1, 1), 7, 1, None, None)
    await first.record_usage(date(2025, 1, 1), 7, 1, 100, 20)
    await first.close()

    second = await open_new_store()
    assert [f.file_key for f in await second.list_files(1)] == [record.file_key]
    assert (await second.list_files(1))[0].remote_id == "file-1"
    assert (await second.get_conversation(1)).last_response_id == "resp_1"
    assert await second.get_language(7) == "en"
    running = await second.get_analysis(1)
    assert running is not None
    assert running.analysis_id == "a1"
    assert not await second.try_begin_analysis(make_analysis(1, "a2"))
    assert await second.user_usage(date(2025, 1, 1), 7) == UsageTotals(1, 100, 20)


# ---- one analysis per chat ----------------------------------------------------------------
async def test_analysis_fields_round_trip(store: Store) -> None:
    analysis = make_analysis(9, "a1")
    assert await store.try_begin_analysis(analysis)
    assert await store.get_analysis(9) == analysis
    await store.update_analysis(9, "a1", progress_message_id=777)
    assert (await store.get_analysis(9)).progress_message_id == 777  # type: ignore[union-attr]
    await store.update_analysis(9, "other", progress_message_id=1)  # not the holder: ignored
    assert (await store.get_analysis(9)).progress_message_id == 777  # type: ignore[union-attr]
    await store.update_analysis(9, "a1", progress_message_id=None)
    assert (await store.get_analysis(9)).progress_message_id is None  # type: ignore[union-attr]
    assert await store.get_analysis(10) is None

    later = now() + timedelta(minutes=10)
    assert await store.renew_analysis(9, "a1", later)
    assert (await store.get_analysis(9)).lease_until == later  # type: ignore[union-attr]
    assert not await store.renew_analysis(9, "other", later)

    await store.end_analysis(9, "other")  # not the holder: the claim stays
    assert await store.get_analysis(9) is not None
    await store.end_analysis(9, "a1")
    assert await store.get_analysis(9) is None
    assert not await store.renew_analysis(9, "a1", later)
    assert await store.try_begin_analysis(make_analysis(9, "a2"))


async def test_one_claim_wins_among_concurrent_callers(store: Store) -> None:
    results = await asyncio.gather(
        *(store.try_begin_analysis(make_analysis(1, f"a{i}")) for i in range(20))
    )
    assert results.count(True) == 1
    winner = f"a{results.index(True)}"
    assert (await store.get_analysis(1)).analysis_id == winner  # type: ignore[union-attr]


async def test_one_claim_wins_across_two_instances(open_new_store: StoreFactory) -> None:
    one, two = await open_new_store(), await open_new_store()
    for chat_id in range(1, 4):  # a few rounds, each on a fresh chat
        calls = [
            (one if i % 2 else two).try_begin_analysis(make_analysis(chat_id, f"a{i}"))
            for i in range(20)
        ]
        results = await asyncio.gather(*calls)
        assert results.count(True) == 1
        winner = f"a{results.index(True)}"
        assert (await one.get_analysis(chat_id)).analysis_id == winner  # type: ignore[union-attr]
        assert (await two.get_analysis(chat_id)).analysis_id == winner  # type: ignore[union-attr]


async def test_expired_lease_lets_a_new_claim_in(store: Store) -> None:
    assert await store.try_begin_analysis(make_analysis(1, "dead", lease=-timedelta(seconds=5)))
    assert await store.try_begin_analysis(make_analysis(1, "new"))
    assert (await store.get_analysis(1)).analysis_id == "new"  # type: ignore[union-attr]
    # the dead run can neither renew nor release the new claim
    assert not await store.renew_analysis(1, "dead", now() + timedelta(minutes=5))
    await store.end_analysis(1, "dead")
    assert (await store.get_analysis(1)).analysis_id == "new"  # type: ignore[union-attr]
    # a live lease is respected
    assert not await store.try_begin_analysis(make_analysis(1, "third"))


async def test_stale_analyses_go_to_exactly_one_instance(open_new_store: StoreFactory) -> None:
    one, two = await open_new_store(), await open_new_store()
    for chat_id in range(1, 11):
        assert await one.try_begin_analysis(
            make_analysis(chat_id, f"stale{chat_id}", lease=-timedelta(seconds=chat_id))
        )
    assert await one.try_begin_analysis(make_analysis(99, "alive"))

    claim_time = now()
    rounds = await asyncio.gather(
        *(s.claim_stale_analyses(claim_time) for s in (one, two, one, two, one, two))
    )
    claimed = [a.chat_id for batch in rounds for a in batch]
    assert sorted(claimed) == list(range(1, 11))  # each exactly once
    by_chat = {a.chat_id: a for batch in rounds for a in batch}
    assert by_chat[3].analysis_id == "stale3"
    assert by_chat[3].question == "Какой регион лучший?"
    assert by_chat[3].thread_id == 55
    assert by_chat[3].language == "en"
    assert await one.get_analysis(3) is None
    assert (await two.get_analysis(99)).analysis_id == "alive"  # type: ignore[union-attr]
    assert await two.claim_stale_analyses(now()) == []


# ---- quotas and usage ---------------------------------------------------------------------
DAY = date(2025, 3, 10)


async def test_user_quota(store: Store) -> None:
    checks = [await store.try_consume_quota(DAY, 7, 1, 3, None) for _ in range(3)]
    assert [c.user_count for c in checks] == [1, 2, 3]
    assert all(c.allowed for c in checks)
    refused = await store.try_consume_quota(DAY, 7, 2, 3, None)  # any chat counts
    assert refused == QuotaCheck(False, 3, 0, limited_by="user")
    # another user, and the same user on another day, are not limited
    assert (await store.try_consume_quota(DAY, 8, 1, 3, None)).allowed
    assert (await store.try_consume_quota(DAY + timedelta(days=1), 7, 1, 3, None)).allowed


async def test_chat_quota(store: Store) -> None:
    for user in (1, 2):
        assert (await store.try_consume_quota(DAY, user, 100, None, 2)).allowed
    refused = await store.try_consume_quota(DAY, 3, 100, None, 2)
    assert refused == QuotaCheck(False, 0, 2, limited_by="chat")
    ok = await store.try_consume_quota(DAY, 3, 101, None, 2)
    assert ok == QuotaCheck(True, 1, 1)


async def test_no_limit_and_zero_limit(store: Store) -> None:
    for _ in range(50):
        assert (await store.try_consume_quota(DAY, 7, 1, None, None)).allowed
    assert (await store.user_usage(DAY, 7)).analyses == 50
    zero = await store.try_consume_quota(DAY, 8, 1, 0, None)
    assert zero == QuotaCheck(False, 0, 50, limited_by="user")


async def test_refund_gives_the_analysis_back(store: Store) -> None:
    assert (await store.try_consume_quota(DAY, 7, 1, 1, None)).allowed
    assert not (await store.try_consume_quota(DAY, 7, 1, 1, None)).allowed
    await store.refund_quota(DAY, 7, 1)
    assert (await store.user_usage(DAY, 7)).analyses == 0
    assert await store.try_consume_quota(DAY, 7, 1, 1, None) == QuotaCheck(True, 1, 1)
    # refunding what was never counted changes nothing
    await store.refund_quota(DAY, 7, 2)
    await store.refund_quota(DAY, 9, 1)
    assert (await store.user_usage(DAY, 7)).analyses == 1
    assert (await store.try_consume_quota(DAY, 10, 1, None, None)).chat_count == 2


async def test_concurrent_consumption_never_exceeds_limits(open_new_store: StoreFactory) -> None:
    one, two = await open_new_store(), await open_new_store()
    results = await asyncio.gather(
        *((one if i % 2 else two).try_consume_quota(DAY, 7, 1, 5, None) for i in range(30)),
        *((one if i % 2 else two).try_consume_quota(DAY, 100 + i, 2, None, 4) for i in range(30)),
    )
    user_limited, chat_limited = results[:30], results[30:]
    assert sum(r.allowed for r in user_limited) == 5
    assert sorted(r.user_count for r in user_limited if r.allowed) == [1, 2, 3, 4, 5]
    assert sum(r.allowed for r in chat_limited) == 4
    assert (await one.user_usage(DAY, 7)).analyses == 5
    assert (await two.total_usage(DAY, DAY)).analyses == 9


async def test_usage_totals_over_a_week(store: Store) -> None:
    first = date(2025, 3, 1)
    week = [first + timedelta(days=i) for i in range(7)]
    for day in week:
        await store.try_consume_quota(day, 7, 1, None, None)
        await store.record_usage(day, 7, 1, 1000, 100)
    await store.try_consume_quota(week[2], 8, 2, None, None)
    await store.record_usage(week[2], 8, 2, 500, 50)
    await store.record_usage(week[2], 8, 2, 500, 50)  # usage adds up
    # outside the range
    await store.try_consume_quota(first - timedelta(days=1), 9, 3, None, None)
    await store.record_usage(first + timedelta(days=7), 9, 3, 1, 1)
    # counted, then refunded: no activity left
    await store.try_consume_quota(week[4], 10, 4, None, None)
    await store.refund_quota(week[4], 10, 4)

    assert await store.user_usage(week[2], 8) == UsageTotals(1, 1000, 100)
    assert await store.user_usage(week[2], 7) == UsageTotals(1, 1000, 100)
    assert await store.user_usage(week[2], 10) == UsageTotals()
    total = await store.total_usage(week[0], week[-1])
    assert total == UsageTotals(analyses=8, input_tokens=8000, output_tokens=800, users=2, chats=2)
    assert await store.total_usage(week[-1], week[0]) == UsageTotals()
    assert (await store.total_usage(week[2], week[2])).users == 2


async def test_ping(store: Store) -> None:
    assert await store.ping()


async def test_cancelled_callers_leave_the_store_consistent(store: Store) -> None:
    tasks = [asyncio.create_task(store.try_consume_quota(DAY, 7, 1, None, None)) for _ in range(10)]
    await asyncio.sleep(0)
    for task in tasks[::2]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # whatever ran was committed whole; the store keeps working and the counts agree
    check = await store.try_consume_quota(DAY, 7, 1, None, None)
    assert check.allowed
    assert (await store.user_usage(DAY, 7)).analyses == check.user_count
    assert check.user_count == check.chat_count
    assert await store.try_begin_analysis(make_analysis(1, "after"))


async def test_a_burst_of_callers_is_served(store: Store) -> None:
    # more concurrent callers than the Redis pool has connections: they wait, none fail
    results = await asyncio.gather(
        *(store.try_consume_quota(DAY, i, i % 3, 1, None) for i in range(300))
    )
    assert all(r.allowed for r in results)
    assert (await store.total_usage(DAY, DAY)).users == 300
