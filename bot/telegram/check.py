"""The Telegram rows of `python -m bot check`: the token (getMe) and the webhook state
(getWebhookInfo against WEBHOOK_URL). No secrets in the rows."""

from __future__ import annotations

from aiogram.exceptions import TelegramAPIError, TelegramUnauthorizedError

from bot.config import Settings
from bot.services.selfcheck import CheckRow
from bot.telegram.factory import create_bot
from bot.telegram.runners.common import telegram_unreachable

API_TIMEOUT = 15


async def check_telegram(settings: Settings) -> list[CheckRow]:
    bot = create_bot(settings)
    where = settings.telegram_api_base or "api.telegram.org"
    try:
        try:
            me = await bot.get_me(request_timeout=API_TIMEOUT)
        except TelegramUnauthorizedError:
            return [
                CheckRow.fail(
                    "Telegram token",
                    "Telegram refuses the token (401 Unauthorized)",
                    "copy TELEGRAM_BOT_TOKEN again from @BotFather (after /revoke, the new one)",
                ),
                CheckRow.skip("Telegram webhook", "needs a valid token"),
            ]
        except Exception as error:
            fix = (
                f"check the network to {where}, TELEGRAM_API_BASE or a proxy"
                if telegram_unreachable(error)
                else "see the error; check TELEGRAM_API_BASE"
            )
            return [
                CheckRow.fail("Telegram token", f"no answer from Telegram: {_brief(error)}", fix),
                CheckRow.skip("Telegram webhook", "Telegram not reachable"),
            ]
        rows = [CheckRow.ok("Telegram token", f"@{me.username} (id {me.id})")]
        try:
            info = await bot.get_webhook_info(request_timeout=API_TIMEOUT)
        except TelegramAPIError as error:
            rows.append(CheckRow.fail("Telegram webhook", _brief(error), "try again"))
            return rows
        rows.append(_webhook_row(settings, info.url, info.pending_update_count, info))
        return rows
    finally:
        await bot.session.close()


def _webhook_row(settings: Settings, url: str, pending: int, info: object) -> CheckRow:
    name = "Telegram webhook"
    last_error = getattr(info, "last_error_message", None)
    if not settings.use_webhook:
        if not url:
            return CheckRow.ok(name, f"none: long polling ({pending} updates waiting)")
        return CheckRow.warn(
            name,
            f"Telegram delivers to {url}, but WEBHOOK_URL is empty (long polling)",
            "the bot removes that webhook when it starts; if another deployment uses this "
            "token, stop it first (two bots on one token take each other's updates)",
        )
    if not url:
        return CheckRow.warn(
            name, "not registered yet", "the bot registers WEBHOOK_URL when it starts"
        )
    if url != settings.webhook_url:
        return CheckRow.fail(
            name,
            f"registered to {url}, WEBHOOK_URL is {settings.webhook_url}",
            "another deployment or an old URL holds the webhook: stop it, then start this bot "
            "(it registers WEBHOOK_URL)",
        )
    if last_error:
        return CheckRow.warn(
            name,
            f"{url}; Telegram's last delivery error: {last_error}",
            "check that the HTTPS proxy forwards to WEBHOOK_PORT and the bot is running",
        )
    return CheckRow.ok(name, f"{url} ({pending} updates waiting)")


def _brief(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:160]}"
