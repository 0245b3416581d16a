"""Every use case of messaging behind one object, by the contract's method names: what the nameko
service's RPC methods call and what the unit tests drive (so both go through the same doors)."""

from __future__ import annotations

from typing import Any

from .access import Deps
from .chats import ChatUseCases
from .conversations import ConversationUseCases
from .messages import MessageUseCases
from .subjects import SubjectUseCases
from .teams import TeamUseCases
from .uploads import UploadUseCases

METHODS: dict[str, tuple[str, ...]] = {
    "teams": ("create_team", "update_team", "teams", "team"),
    "conversations": ("open_conversation", "conversation", "update_conversation", "conversations",
                      "wake_snoozed"),
    "messages": ("send_message", "messages", "message", "edit_message", "delete_message", "message_history",
                 "search", "mark_read", "unread", "read_receipts", "send_chat_message", "chat_messages",
                 "mark_chat_read"),
    "chats": ("create_chat", "chats", "chat", "add_chat_member", "remove_chat_member"),
    "subjects": ("export_subject", "erase_subject", "erasure_requested", "customer_ids", "data_map",
                 "purge_erased"),
    "uploads": ("upload_attachment", "attachment", "purge_unsent"),
}


class MessagingApi:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        groups = {"teams": TeamUseCases(deps), "conversations": ConversationUseCases(deps),
                  "messages": MessageUseCases(deps), "chats": ChatUseCases(deps), "subjects": SubjectUseCases(deps),
                  "uploads": UploadUseCases(deps)}
        self._by_method = {method: groups[group] for group, methods in METHODS.items() for method in methods}

    def __getattr__(self, name: str) -> Any:
        # the use case of that name (``api.send_message``); the groups' names are methods too (``api.teams()``)
        if name.startswith("_") or name not in self.__dict__.get("_by_method", {}):
            raise AttributeError(name)
        return getattr(self._by_method[name], name)
