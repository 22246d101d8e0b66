"""Use cases of the bot, independent of Telegram: chat files, analyses, access, housekeeping.

Telegram handlers call these; they call the engine and the store.
"""
