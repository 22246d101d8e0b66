"""Who may use the bot: allowlists of users and chats, and admins."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Settings


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    allowed_users: frozenset[int]
    allowed_chats: frozenset[int]
    admins: frozenset[int]

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        return cls(settings.allowed_user_ids, settings.allowed_chat_ids, settings.admin_user_ids)

    @property
    def open_to_everyone(self) -> bool:
        return not self.allowed_users and not self.allowed_chats

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.admins

    def is_allowed(self, user_id: int, chat_id: int) -> bool:
        """A user may use the bot in a chat when the bot is open to everyone, the user is an
        admin or on the user list, or the chat (a group, or a private chat) is on the chat
        list. In a group, an allowed group lets every member in."""
        if self.open_to_everyone:
            return True
        return (
            user_id in self.admins or user_id in self.allowed_users or chat_id in self.allowed_chats
        )
