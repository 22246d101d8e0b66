"""/settings, the follow-up buttons and the 📄 Report under answers, through the real bot
against the Telegram and Responses fakes (and a real headless Chromium for the report)."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest

from tests.bot.harness import (
    SALES_CSV,
    WAIT,
    answer,
    answered,
    ask,
    code_file,
    last_id,
    next_message,
    person_with_sales,
    png,
    reply_to,
    roomy_world,
    send_and_wait,
)
from tests.fakes.responses_api import Scenario, sandbox_link
from tests.fakes.telegram_api import Chat, StoredMessage, TelegramFake, User

FOLLOW_UPS = "\n\n```followups\n- Which month was best?\n- Как дела у West?\n```\n"


async def settings_message(
    tg: TelegramFake, chat: Chat, user: User, command: str = "/settings"
) -> StoredMessage:
    return await send_and_wait(tg, chat, user, command, predicate=lambda m: bool(m.buttons))


async def pressed(
    tg: TelegramFake, message: StoredMessage, button: str, user: User | None = None
) -> str | None:
    """Press a button and return the toast Telegram showed for it."""
    press = tg.press(message, button, user=user)
    shown = await tg.wait_for(lambda: tg.callback_answers.get(press.id), timeout=WAIT)
    return shown.text


async def finished(tg: TelegramFake, chat: Chat, progress: StoredMessage) -> None:
    """Wait until the progress message says the analysis is over."""
    await tg.wait_for(lambda: (progress.text or "").startswith(("✅", "❌")), timeout=WAIT)


def buttons(message: StoredMessage) -> list[str]:
    return [b["text"] for b in message.buttons]


async def test_settings_persist_across_a_restart_and_shape_the_delivery(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        menu = await settings_message(tg, chat, ann)
        assert "Settings of this chat" in menu.text
        assert "Telegram Web and the macOS app cannot show rich messages yet" in menu.text
        assert "Rich answers: off" in menu.text  # RICH_ANSWERS=off by default
        assert await pressed(tg, menu, "🧾 Code file: on") == "Saved"
        assert "Code file: off" in menu.text
        assert await pressed(tg, menu, "🧮 Code in progress: on") == "Saved"
        assert await pressed(tg, menu, "✨ Rich answers: off") == "Saved"
        assert "Code in progress: off" in menu.text
        assert "Rich answers: on" in menu.text

        await world.restart()
        menu = await settings_message(tg, chat, ann)
        assert "Code file: off" in menu.text
        assert "Code in progress: off" in menu.text
        assert "Rich answers: on" in menu.text
        prefs = await world.services.preferences.of(chat.id)
        assert (prefs.code_file, prefs.progress_code, prefs.rich_answers) == (False, False, True)

        # The model stops while the code is written: the progress message says so, without it.
        gate = asyncio.Event()
        code = "print(df.revenue.sum())"
        llm.enqueue(
            Scenario().code(code, logs="5260\n").text("East leads.").stall(after=7, gate=gate)
        )
        progress = await ask(tg, chat, ann, "Who leads?")
        await tg.wait_for(lambda: "Writing code (step 1)" in (progress.text or ""), timeout=WAIT)
        await asyncio.sleep(0.5)  # more than the edit interval: a code edit would have come
        gate.set()
        found = await tg.wait_for_message(
            chat, predicate=lambda m: m.content.startswith("East leads.")
        )
        await finished(tg, chat, progress)
        shown = [v.text or "" for v in tg.edits_of(progress)]
        assert not any(code in text for text in shown)
        assert found.text == "East leads."

        # The code file comes back when switched on again.
        assert await pressed(tg, menu, "🧾 Code file: off") == "Saved"
        llm.enqueue(answer("West second."))
        await ask(tg, chat, ann, "Who is second?")
        second = await answered(tg, chat, "West second.")  # waits for analysis_code.py
        # ...which is the only one: the first answer, long over, came without it.
        code_files = [d for d in tg.sent_documents if d.filename == "analysis_code.py"]
        assert len(code_files) == 1
        assert code_files[0].message_id > second.message_id


async def test_private_language_is_the_persons_language(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg = world.tg
        ann, chat = await person_with_sales(tg)
        menu = await settings_message(tg, chat, ann)
        assert buttons(menu)[:2] == ["🇷🇺 Русский", "✓ 🇬🇧 English"]
        assert await pressed(tg, menu, "🇷🇺 Русский") == "Сохранено"
        assert "Настройки этого чата" in menu.text
        assert await world.services.people.language(ann.id) == "ru"  # the same as /language
        reply = await send_and_wait(tg, chat, ann, "/usage")
        assert reply.text.startswith("Ваш расход за сегодня")


async def test_in_groups_only_admins_change_settings_and_the_group_language_applies(
    tmp_path: Path,
) -> None:
    async with roomy_world(tmp_path, edit_interval_group=0.1) as world:
        tg, llm = world.tg, world.llm
        ann, bob = tg.user("Ann"), tg.user("Bob")
        group = tg.group("Sales", members=[ann, bob])  # Ann created it; Bob is a member
        await reply_to(
            tg,
            group,
            tg.send_document(group, ann, "sales.csv", SALES_CSV, caption="/analyze@DataLensBot"),
        )

        menu = await settings_message(tg, group, bob, "/settings@DataLensBot")
        assert "only the group's admins" in menu.text
        assert buttons(menu)[0] == "✓ 👥 Each person's"
        before = menu.text
        assert await pressed(tg, menu, "🧾 Code file: on", user=bob) == (
            "Only the group's admins can change its settings."
        )
        assert await pressed(tg, menu, "🇷🇺 Русский", user=bob) == (
            "Only the group's admins can change its settings."
        )
        assert menu.text == before
        assert (await world.services.preferences.of(group.id)).code_file is True

        # The creator may; the group then gets Russian answers, whoever asks.
        assert await pressed(tg, menu, "🇷🇺 Русский", user=ann) == "Сохранено"
        assert "Язык ответов: 🇷🇺 Русский" in menu.text
        llm.enqueue(answer("Восток впереди."))
        question = tg.send_text(group, bob, "/analyze@DataLensBot who leads?")
        progress = await reply_to(tg, group, question)
        await answered(tg, group, "Восток впереди.")
        assert progress.text.startswith("✅ Готово")
        assert "Russian" in llm.response_requests()[-1].json["instructions"]

        # Promoted to admin, Bob may change them too (asked from Telegram at each press).
        group.members[bob.id] = "administrator"
        assert await pressed(tg, menu, "set:language:auto", user=bob) == "Saved"
        assert (await world.services.preferences.of(group.id)).language is None


async def test_follow_up_buttons_ask_in_the_same_conversation(tmp_path: Path) -> None:
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        llm.enqueue(answer("East leads." + FOLLOW_UPS))
        progress = await ask(tg, chat, ann, "Who leads?")
        first = await answered(tg, chat, "East leads.")
        # The block never shows: not in the answer, not in the progress message's preview.
        assert first.text == "East leads."
        seen = [first.text] + [v.text or "" for v in tg.edits_of(progress)]
        assert not any("followups" in s or "Which month" in s or "```" in s for s in seen)
        assert buttons(first) == ["Which month was best?", "Как дела у West?", "📄 Report"]
        assert all(len(b["callback_data"].encode()) <= 64 for b in first.buttons)
        first_response = next(iter(llm.responses))

        await world.restart()  # the buttons keep working: the questions are in the store
        llm.enqueue(answer("March was best."))
        mark = last_id(tg, chat)
        assert await pressed(tg, first, "Which month was best?") is None
        echo = await next_message(tg, chat, mark, lambda m: m.content.startswith("❓"))
        assert echo.text == "❓ Which month was best?"
        second = await answered(tg, chat, "March was best.")
        request = llm.response_requests()[-1].json
        assert request["input"] == "Which month was best?"
        assert request["previous_response_id"] == first_response
        assert buttons(second) == ["📄 Report"]  # the model offered none this time

        # After /reset the old answer's buttons are outdated; nothing is asked.
        confirm = await send_and_wait(tg, chat, ann, "/reset", predicate=lambda m: bool(m.buttons))
        await pressed(tg, confirm, "reset:1")
        await tg.wait_for(lambda: not confirm.buttons, timeout=WAIT)  # reset done
        asked = len(llm.response_requests())
        assert await pressed(tg, first, "Как дела у West?") == (
            "This button is outdated. Send the command again."
        )
        gone = await pressed(tg, first, "📄 Report")
        assert gone is not None
        assert gone.startswith("This report is no longer available")
        assert len(llm.response_requests()) == asked


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


async def run_chromium(*args: str) -> bytes:
    binary = chromium()
    assert binary is not None
    process = await asyncio.create_subprocess_exec(
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0
    return stdout


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium (.ci/run installs it)")
async def test_report_opens_in_a_browser_with_every_chart(tmp_path: Path) -> None:
    charts = {"revenue.png": png(640, 480, "steelblue"), "units.png": png(480, 640, "darkorange")}
    text = (
        "## East leads\n\n| region | revenue |\n|---|---:|\n| East | 2500 |\n| West | 1940 |\n\n"
        f"Charts: {sandbox_link('revenue.png')}, {sandbox_link('units.png')}.\n\n"
        "<script>document.title='pwned'</script> ![tracker](http://example.com/t.png)"
    )
    async with roomy_world(tmp_path) as world:
        tg, llm = world.tg, world.llm
        ann, chat = await person_with_sales(tg)
        llm.enqueue(
            Scenario()
            .code("df = pd.read_csv('/mnt/data/sales.csv')\nprint(df.shape)", logs="(6, 4)\n")
            .code("plot(df)", logs="", saves=charts)
            .text(text + FOLLOW_UPS)
            .usage(1234, 567)
        )
        await ask(tg, chat, ann, "Who leads & by how much? <b>")
        first = await tg.wait_for_message(chat, predicate=lambda m: "📄 Report" in buttons(m))
        assert "East leads" in first.text
        await code_file(tg, chat, first)
        await world.restart()  # the report survives a restart

        assert await pressed(tg, first, "📄 Report") is None
        sent = await tg.wait_for(
            lambda: next((d for d in tg.sent_documents if d.filename.endswith(".html")), None),
            timeout=WAIT,
        )
        assert re.fullmatch(r"report_[0-9a-f]+\.html", sent.filename)
        page = sent.data.decode("utf-8")
        assert "Who leads &amp; by how much? &lt;b&gt;" in page
        assert "<script>document.title" not in page  # the model's HTML is text
        assert 'src="http' not in page  # the model's web picture is not loaded
        assert '<a href="http://example.com/t.png">🖼 tracker</a>' in page
        assert page.count('<img src="data:image/png;base64,') == 2
        assert "followups" not in page
        assert "Which month" not in page
        assert "1\u00a0234 in, 567 out" in page
        assert "print(df.shape)" in page
        assert "(6, 4)" in page
        assert "sales.csv" in page
        assert "6 rows × 4 columns" in page

        path = tmp_path / "report.html"
        path.write_bytes(sent.data)
        common = [f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=412,915"]
        dom = (await run_chromium(*common, "--dump-dom", path.as_uri())).decode("utf-8")
        assert 'data-images="2"' in dom
        assert 'data-images-loaded="2"' in dom
        assert "<td>East</td>" in dom
        assert "<title>Analysis report: Who leads" in dom  # the model's script did not run
        assert "document.title='pwned'&lt;/script&gt;" in dom  # it shows as text
        shot = tmp_path / "report.png"
        await run_chromium(*common, f"--screenshot={shot}", path.as_uri())
        assert shot.stat().st_size > 10_000
        keep = Path("/tmp/extras_report_shot.png")  # for a look by eye while developing
        shutil.copy(shot, keep)
