"""Routers, one per concern. Order matters: specific handlers before catch-alls."""

from aiogram import Router

from bot.telegram.handlers import admin, answers, common, datasets, files, questions, settings


def get_routers() -> list[Router]:
    """Fresh routers for one dispatcher (aiogram attaches a router to one parent only, and a
    process may build several dispatchers: a restart, tests running two instances)."""
    return [
        m.create_router() for m in (common, admin, datasets, files, settings, answers, questions)
    ]
