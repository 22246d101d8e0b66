"""CODE_EXECUTION=local through the whole bot: a CSV sent in Telegram is analysed by code running
in the local sandbox (a scripted function-calling model decides the code), and the chart and the
table come back as in cloud mode. Nothing is uploaded to the model's server."""

from __future__ import annotations

from pathlib import Path

from bot.config import load_settings
from tests.bot.harness import (
    BOT_USERNAME,
    ROOMY,
    SALES_CSV,
    ask,
    code_file,
    start_app,
    upload,
)
from tests.fakes.telegram_api import TelegramFake
from tests.fakes.tool_model import Answer, Call, Conversation, running_tool_model

CODE = (
    "import pandas as pd, matplotlib.pyplot as plt\n"
    "df = pd.read_csv('/mnt/data/sales.csv')\n"
    "by_region = df.groupby('region').revenue.sum().sort_values(ascending=False)\n"
    "print(df.revenue.sum(), by_region.index[0], by_region.iloc[0])\n"
    "by_region.plot.bar(title='Revenue by region')\n"
    "plt.savefig('/mnt/data/revenue_by_region.png', dpi=80, bbox_inches='tight'); plt.close()\n"
    "by_region.to_csv('/mnt/data/revenue_by_region.csv')\n"
)


def analyst(chat: Conversation) -> list[Call | Answer]:
    if not chat.turn_outputs:
        return [Call(CODE)]
    total, leader, amount = chat.turn_outputs[-1].split()[:3]
    return [Answer(f"Total revenue is {total}; {leader} leads with {amount}.")]


async def test_a_csv_is_analysed_end_to_end_in_the_local_sandbox(
    tmp_path: Path, sandbox_venv: Path
) -> None:
    async with (
        TelegramFake(bot_username=BOT_USERNAME, flood=ROOMY) as tg,
        running_tool_model(analyst) as model,
    ):
        settings = load_settings(
            _env_file=None,
            telegram_bot_token=tg.token,
            telegram_api_base=tg.base_url,
            data_dir=tmp_path / "data",
            edit_interval_private=0.2,
            shutdown_grace_seconds=5,
            llm_max_retries=0,
            llm_provider="openai",
            openai_model="local-model",
            llm_base_url=model.base_url,
            code_execution="local",
            sandbox_venv=sandbox_venv,
        )
        app = await start_app(tg, settings)
        try:
            ann = tg.user("Ann", language_code="en")
            chat = tg.private_chat(ann)
            await upload(tg, chat, ann, "sales.csv", SALES_CSV)
            await ask(tg, chat, ann, "Which region earns most?")
            answer = await tg.wait_for_message(
                chat, predicate=lambda m: (m.text or "").startswith("Total revenue"), timeout=60
            )
            await code_file(tg, chat, answer, timeout=30)
        finally:
            await app.stop()

    assert answer.text is not None
    assert answer.text.startswith("Total revenue is 5260; East leads with 2500.")
    photos = [p for p in tg.sent_photos if p.chat_id == chat.id]
    assert [p.filename for p in photos] == ["revenue_by_region.png"]
    assert photos[0].data.startswith(b"\x89PNG")
    documents = {d.filename: d for d in tg.sent_documents if d.chat_id == chat.id}
    assert documents["revenue_by_region.csv"].data.decode().splitlines() == [
        "region,revenue",
        "East,2500",
        "West,1940",
        "North,820",
    ]
    assert "pd.read_csv('/mnt/data/sales.csv')" in documents["analysis_code.py"].data.decode()
    # Only model requests reached the server: the file itself never left the machine.
    assert {path for path, _ in model.requests} == {"/responses"}
    assert all(SALES_CSV.decode() not in str(body) for _, body in model.requests)
