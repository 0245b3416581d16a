"""Staff chat: direct (the creator and exactly one other) and group chats, members only.

A direct chat between two people is one chat: its id is derived from the pair, so creating it again
(from either side) names the same stream and returns the chat that exists. A group's members are added
and removed by its creator or a moderator; any member may leave. A direct chat's members never change.
"""

from __future__ import annotations

import uuid

from upgestao_kernel.events import Aggregate

from .errors import InvalidValue, NotAGroupChat, NotTheChatManager
from .events import ChatCreated, ChatMemberAdded, ChatMemberRemoved
from .teams import clean_member_ids

DIRECT, GROUP = "direct", "group"
KINDS = (DIRECT, GROUP)
MAX_TITLE = 200
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://upgestao.com.br/messaging/direct-chats")


def direct_chat_id(a: str, b: str) -> str:
    first, second = sorted((a, b))
    return str(uuid.uuid5(NAMESPACE, f"{first}:{second}"))


def clean_title(title: object) -> str | None:
    if title is None:
        return None
    if not isinstance(title, str) or not title.strip() or len(title.strip()) > MAX_TITLE:
        raise InvalidValue("title", f"must be 1 to {MAX_TITLE} characters")
    return title.strip()


def plan_members(kind: object, creator_id: str, member_ids: object) -> list[str]:
    """The chat's members (the creator first), by the kind's rule; raises :class:`InvalidValue`."""
    if kind not in KINDS:
        raise InvalidValue("kind", f"must be one of {', '.join(KINDS)}")
    others = [m for m in clean_member_ids(member_ids) if m != creator_id]
    if kind == DIRECT and len(others) != 1:
        raise InvalidValue("member_ids", "a direct chat names exactly one other member")
    return [creator_id, *others]


class Chat(Aggregate):
    stream_type = "chat"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.kind = GROUP
        self.creator_id = ""
        self.member_ids: list[str] = []

    @classmethod
    def create(cls, id: str, *, kind: str, creator_id: str, member_ids: list[str],
               sealed_title: str | None) -> Chat:
        if kind == DIRECT and sealed_title is not None:
            raise InvalidValue("title", "a direct chat has no title")
        chat = cls(id)
        chat.trigger(ChatCreated(kind=kind, creator_id=creator_id, member_ids=plan_members(kind, creator_id,
                                                                                         member_ids),
                                 sealed={"title": sealed_title} if sealed_title is not None else {}))
        return chat

    def _manage(self, by_id: str, moderator: bool) -> None:
        if self.kind != GROUP:
            raise NotAGroupChat()
        if not moderator and by_id != self.creator_id:
            raise NotTheChatManager()

    def add_member(self, user_id: str, *, by_id: str, moderator: bool) -> bool:
        self._manage(by_id, moderator)
        if user_id in self.member_ids:
            return False
        self.trigger(ChatMemberAdded(user_id=user_id, by_id=by_id))
        return True

    def remove_member(self, user_id: str, *, by_id: str, moderator: bool) -> bool:
        if self.kind != GROUP:
            raise NotAGroupChat()
        if user_id != by_id:  # leaving is anyone's right; removing another is the manager's
            self._manage(by_id, moderator)
        if user_id not in self.member_ids:
            return False
        self.trigger(ChatMemberRemoved(user_id=user_id, by_id=by_id))
        return True

    def when_chat_created(self, kind, creator_id, member_ids, sealed) -> None:
        self.kind, self.creator_id, self.member_ids = kind, creator_id, list(member_ids)

    def when_chat_member_added(self, user_id, by_id) -> None:
        self.member_ids.append(user_id)

    def when_chat_member_removed(self, user_id, by_id) -> None:
        self.member_ids.remove(user_id)
