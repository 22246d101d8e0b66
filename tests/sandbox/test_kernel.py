"""Real kernels in real bubblewrap sandboxes: what a chat's analysis relies on."""

from __future__ import annotations

import asyncio
import csv
import io
import statistics
from pathlib import Path

import pytest
from PIL import Image

from bot.sandbox import KernelPool, SandboxLimits, SandboxUnavailable
from tests.sandbox.conftest import LIMITS

REPO = Path(__file__).resolve().parents[2]
GAPMINDER = REPO / "datasets" / "gapminder.csv"


async def test_computed_numbers_are_right(pool: KernelPool) -> None:
    with GAPMINDER.open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["year"] == "2000"]
    expected = statistics.fmean(float(r["life_expectancy"]) for r in rows if r["life_expectancy"])

    session = await pool.session("chat-1", [("gapminder.csv", GAPMINDER)])
    assert session.fresh
    out = await session.execute(
        "import pandas as pd\n"
        "df = pd.read_csv('/mnt/data/gapminder.csv')\n"
        "print(round(df[df.year == 2000].life_expectancy.mean(), 6))"
    )
    assert out.error is None, out.text
    assert float(out.text) == round(expected, 6)


async def test_a_chart_and_a_csv_come_back(pool: KernelPool) -> None:
    session = await pool.session("chat-1", [("gapminder.csv", GAPMINDER)])
    out = await session.execute(
        "import pandas as pd, matplotlib.pyplot as plt\n"
        "df = pd.read_csv('gapminder.csv')\n"
        "by_region = df[df.year == 2000].groupby('region').population.sum()\n"
        "by_region.plot.bar(); plt.title('Population'); plt.show()\n"
        "by_region.to_csv('/mnt/data/by_region.csv')\n"
    )
    assert out.error is None, out.text
    assert len(out.images) == 1
    image = Image.open(io.BytesIO(out.images[0]))
    assert image.format == "PNG"
    assert image.width > 100
    assert [f.name for f in out.files] == ["by_region.csv"]
    written = out.files[0].path.read_text().splitlines()
    assert written[0] == "region,population"
    assert len(written) > 3
    assert "/mnt/data/by_region.csv" in out.for_model()


async def test_savefig_is_a_file_and_the_input_is_not_reported(pool: KernelPool) -> None:
    session = await pool.session("chat-1", [("gapminder.csv", GAPMINDER)])
    out = await session.execute(
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 3, 2]); plt.savefig('/mnt/data/line.png'); plt.close()"
    )
    assert [f.name for f in out.files] == ["line.png"]
    assert out.files[0].path.read_bytes().startswith(b"\x89PNG")
    assert out.images == []


async def test_state_persists_across_steps_and_sessions(pool: KernelPool) -> None:
    session = await pool.session("chat-1", [])
    await session.execute("x = 41")
    out = await session.execute("x + 1")
    assert out.text.strip() == "42"
    again = await pool.session("chat-1", [])
    assert not again.fresh
    assert (await again.execute("print(x * 2)")).text.strip() == "82"


async def test_chats_do_not_share_variables(pool: KernelPool) -> None:
    first = await pool.session("chat-1", [])
    await first.execute("secret = 'first chat'")
    second = await pool.session("chat-2", [])
    out = await second.execute("secret")
    assert out.error == "NameError: name 'secret' is not defined"


async def test_a_long_step_is_interrupted_and_the_chat_keeps_working(pool: KernelPool) -> None:
    session = await pool.session("chat-1", [])
    await session.execute("kept = [1, 2, 3]")
    out = await session.execute("import time\nwhile True:\n    time.sleep(0.1)")
    assert out.timed_out
    assert not out.restarted
    assert "interrupted" in out.for_model()
    after = await session.execute("print(sum(kept))")
    assert after.text.strip() == "6"


async def test_a_step_that_ignores_the_interrupt_gets_a_fresh_kernel(pool: KernelPool) -> None:
    session = await pool.session("chat-1", [("gapminder.csv", GAPMINDER)])
    await session.execute("kept = 1")
    out = await session.execute(
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    )
    assert out.timed_out
    assert out.restarted
    assert "variables are lost" in out.for_model()
    after = await session.execute("import os\nprint(sorted(os.listdir('.')))\nkept")
    assert "fresh Python kernel" in after.for_model()
    assert "gapminder.csv" in after.text
    assert after.error == "NameError: name 'kept' is not defined"
    later = await pool.session("chat-1", [])
    assert not later.fresh


async def test_a_dead_kernel_is_restarted_with_a_note(pool: KernelPool) -> None:
    session = await pool.session("chat-1", [("gapminder.csv", GAPMINDER)])
    await session.execute("df = 1")
    out = await session.execute("import os\nos._exit(3)")
    assert out.restarted
    assert "died" in out.for_model()
    again = await pool.session("chat-1", [("gapminder.csv", GAPMINDER)])
    assert again.fresh
    out = await again.execute("import os\nprint('gapminder.csv' in os.listdir())\ndf")
    assert out.text.startswith("True")
    assert out.error == "NameError: name 'df' is not defined"


async def test_input_names_cannot_become_paths(pool: KernelPool, tmp_path: Path) -> None:
    source = tmp_path / "upload.bin"
    source.write_text("a,b\n1,2\n")
    session = await pool.session("chat-1", [("../../etc/evil.csv", source)])
    out = await session.execute("import os\nprint(os.listdir('/mnt/data'))")
    assert out.text.strip() == "['evil.csv']"
    assert not (tmp_path / "sandbox" / "etc").exists()


async def test_a_changed_input_is_copied_again(pool: KernelPool, tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    source.write_text("v\n1\n")
    session = await pool.session("chat-1", [("data.csv", source)])
    await session.execute("open('data.csv', 'a').write('999\\n')")
    source.write_text("v\n1\n2\n")
    session = await pool.session("chat-1", [("data.csv", source)])
    out = await session.execute("print(open('data.csv').read().split())")
    assert out.text.strip() == "['v', '1', '2']"
    assert source.read_text() == "v\n1\n2\n"


async def test_idle_kernels_stop_and_the_next_session_is_fresh(
    tmp_path: Path, sandbox_venv: Path
) -> None:
    limits = SandboxLimits(idle_minutes=0.02, step_seconds=10)  # 1.2 s
    pool = KernelPool(limits, root_dir=tmp_path / "sb", venv=sandbox_venv)
    await pool.start()
    try:
        session = await pool.session("chat-1", [])
        await session.execute("x = 1")
        assert pool.is_warm("chat-1")
        async with asyncio.timeout(30):  # the pool's own reaper stops it
            while pool.kernel_pids():  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        assert not pool.is_warm("chat-1")
        again = await pool.session("chat-1", [])
        assert again.fresh
        assert (await again.execute("x")).error == "NameError: name 'x' is not defined"
    finally:
        await pool.aclose()


async def test_past_the_cap_the_least_recently_used_idle_kernel_stops(
    tmp_path: Path, sandbox_venv: Path
) -> None:
    limits = SandboxLimits(max_idle_kernels=2, step_seconds=10)
    pool = KernelPool(limits, root_dir=tmp_path / "sb", venv=sandbox_venv)
    await pool.start()
    try:
        await pool.session("chat-1", [])
        await pool.session("chat-2", [])
        await (await pool.session("chat-1", [])).execute("y = 1")
        await pool.session("chat-3", [])
        assert sorted(pool.kernel_pids()) == ["chat-1", "chat-3"]
    finally:
        await pool.aclose()


async def test_the_self_check_explains_what_is_missing(tmp_path: Path, sandbox_venv: Path) -> None:
    no_bwrap = KernelPool(SandboxLimits(), tmp_path, sandbox_venv, bwrap="no-such-bwrap")
    with pytest.raises(SandboxUnavailable, match="bubblewrap is not installed"):
        await no_bwrap.start()
    await no_bwrap.aclose()
    no_venv = KernelPool(SandboxLimits(), tmp_path, tmp_path / "missing-venv")
    with pytest.raises(SandboxUnavailable, match=r"python -m bot\.sandbox\.build"):
        await no_venv.start()
    await no_venv.aclose()


async def test_a_file_the_chat_no_longer_has_disappears(pool: KernelPool, tmp_path: Path) -> None:
    kept, removed = tmp_path / "kept.csv", tmp_path / "removed.csv"
    kept.write_text("a\n1\n")
    removed.write_text("b\n2\n")
    await pool.session("chat-1", [("kept.csv", kept), ("removed.csv", removed)])
    session = await pool.session("chat-1", [("kept.csv", kept)])
    out = await session.execute("import os\nprint(sorted(os.listdir()))")
    assert out.text.strip() == "['kept.csv']"


async def test_a_session_arriving_while_its_idle_kernel_stops_gets_a_working_one(
    tmp_path: Path, sandbox_venv: Path
) -> None:
    limits = SandboxLimits(idle_minutes=1, step_seconds=20)
    pool = KernelPool(limits, root_dir=tmp_path / "sb", venv=sandbox_venv)
    await pool.start()
    try:
        first = await pool.session("chat-1", [("data.csv", GAPMINDER)])
        await first.execute("x = 1")
        pool._entries["chat-1"].last_used -= 3600  # idle for an hour
        _, again = await asyncio.gather(
            pool.reap(), pool.session("chat-1", [("data.csv", GAPMINDER)])
        )
        out = await again.execute("import os\nprint(os.listdir())")
        assert out.text.strip() == "['data.csv']"
        assert pool.is_warm("chat-1")
    finally:
        await pool.aclose()


async def test_a_kernel_too_slow_to_answer_its_start_up_code_is_a_sandbox_error(
    pool: KernelPool,
) -> None:
    import dataclasses

    from bot.sandbox import SandboxError

    session = await pool.session("chat-1", [])
    kernel = pool._entries["chat-1"].kernel
    assert kernel is not None
    kernel.limits = dataclasses.replace(kernel.limits, start_seconds=0.3)
    # What a slow or dying kernel start looks like: no reply within start_seconds.
    with pytest.raises(SandboxError, match="did not answer"):
        await kernel._run_quiet("import time; time.sleep(3)")
    out = await session.execute("print('still here')")
    assert "still here" in out.text


def _link_under(folder: Path, venv: Path) -> Path:
    folder.mkdir()
    link = folder / ".sandbox-venv"
    link.symlink_to(venv.resolve(), target_is_directory=True)
    return link


async def test_an_interpreter_under_tmp_is_still_seen_by_the_sandbox(
    tmp_path: Path, sandbox_venv: Path
) -> None:
    # A checkout under /tmp (CI clones anywhere): the sandbox's own /tmp must not hide it.
    under_tmp = _link_under(tmp_path / "checkout", sandbox_venv)
    if not str(under_tmp).startswith("/tmp/"):
        pytest.skip("pytest's temporary folder is not under /tmp here")
    kernels = KernelPool(LIMITS, root_dir=tmp_path / "sandbox", venv=under_tmp)
    try:
        await kernels.start()
        session = await kernels.session("chat-1", [])
        out = await session.execute("print(6 * 7)")
        assert out.text.strip() == "42"
    finally:
        await kernels.aclose()
