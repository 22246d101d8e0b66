"""Routers, one per concern. Order matters: specific handlers before catch-alls."""

from aiogram import Router

from bot.telegram.handlers import admin, common, datasets, files, questions


def _fresh_copy(router: Router) -> Router:
    """A new router with the same handlers. aiogram attaches a router to one parent only,
    so every dispatcher (a restart in the same process, tests running two instances) needs
    its own copies of the module-level routers."""
    fresh = Router(name=router.name)
    for name, observer in router.observers.items():
        target = fresh.observers[name]
        target.handlers.extend(observer.handlers)
        if observer._handler.filters:
            target.filter(*(f.callback for f in observer._handler.filters))
        for middleware in observer.outer_middleware:
            target.outer_middleware(middleware)
        for middleware in observer.middleware:
            target.middleware(middleware)
    return fresh


def get_routers() -> list[Router]:
    modules = (common, admin, datasets, files, questions)
    return [_fresh_copy(module.router) for module in modules]
