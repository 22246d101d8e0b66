"""Routers, one per concern. Order matters: specific handlers before catch-alls."""

from aiogram import Router

from bot.telegram.handlers import admin, common, datasets, files, questions


def get_routers() -> list[Router]:
    return [common.router, admin.router, datasets.router, files.router, questions.router]
