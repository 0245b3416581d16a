"""Staff chat: create (direct or group), list one's chats, read one, manage a group's members.

Everything needs ``chats.use``; a chat is seen by its current members only (404 for anyone else, and
for a removed member at once). A group's title is sealed under its creator and opened (audited, purpose
``staff chat``) for members. Members are added and removed by the group's creator or a holder of
``messages.moderate``, who manages a group without reading it (answers to a non-member carry no title);
any member may leave. Added members must be active staff (identity's directory).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from upgestao_kernel.errors import invalid_field, not_found
from upgestao_kernel.events import new_id
from upgestao_kernel.eventstore import ConcurrencyError

from ..adapters.ports import ChatRecord, MessagingUnitOfWork
from ..domain.chats import DIRECT, Chat, clean_title, direct_chat_id, plan_members
from ..domain.errors import NotTheChatManager
from ..domain.visibility import MODERATE, USE_CHATS, Viewer, can_see_chat
from .access import Deps, chat_view, check_people, check_uuid, open_title, require, viewer_of, visible_chat

CREATE_FIELDS = ("kind", "member_ids", "title")
PURPOSE = "staff chat"


class ChatUseCases:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def _viewer(self, uow: MessagingUnitOfWork, action: str) -> Viewer:
        viewer = viewer_of(uow, self.deps.permissions_of)
        require(uow, viewer, USE_CHATS, action=action, resource_type="chat")
        return viewer

    def _view(self, uow: MessagingUnitOfWork, viewer: Viewer, record: ChatRecord) -> dict[str, Any]:
        if not can_see_chat(viewer, record.member_ids):  # a moderator managing a group they are not in
            return chat_view(record, title=None, unread=0)
        unread = uow.messages.unread_counts(viewer.user_id, [record.id])[record.id]
        return chat_view(record, title=open_title(uow, record, PURPOSE), unread=unread)

    def create_chat(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise invalid_field("data", "must be an object")
        unknown = sorted(set(data) - set(CREATE_FIELDS))
        if unknown:
            raise invalid_field(unknown[0], "unknown field")
        title = clean_title(data.get("title"))
        kind = data.get("kind")
        for attempt in range(2):
            try:
                with self.deps.unit_of_work() as uow:
                    viewer = self._viewer(uow, "create")
                    members = plan_members(kind, viewer.user_id, data.get("member_ids"))
                    if kind == DIRECT:
                        if title is not None:
                            raise invalid_field("title", "a direct chat has no title")
                        chat_id = direct_chat_id(members[0], members[1])
                        existing = uow.chats.get(chat_id)
                        if existing is not None:  # one direct chat per pair: the one there is, not a new one
                            return {**self._view(uow, viewer, existing), "created": False}
                    else:
                        chat_id = new_id()
                    check_people(self.deps.directory, members[1:], field="member_ids", want="staff")
                    sealed = None
                    if title is not None:
                        sealed = uow.personal.seal(subject_id=viewer.user_id, resource_type="chat", resource_id=chat_id,
                                                   values={"title": title}, purpose=PURPOSE)["title"]
                    chat = Chat.create(chat_id, kind=kind, creator_id=viewer.user_id, member_ids=members,
                                       sealed_title=sealed)
                    uow.save(chat)
                    record = uow.chats.get(chat_id)
                    return {**chat_view(record, title=title, unread=0), "created": True}
            except ConcurrencyError:
                if kind != DIRECT or attempt:  # the other side created the same direct chat at the same moment
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def chats(self) -> dict[str, Any]:
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow, "list")
            records = uow.chats.of_member(viewer.user_id)
            unread = uow.messages.unread_counts(viewer.user_id, [r.id for r in records])
            return {"items": [chat_view(r, title=open_title(uow, r, PURPOSE), unread=unread[r.id]) for r in records]}

    def chat(self, chat_id: Any) -> dict[str, Any]:
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow, "read")
            return self._view(uow, viewer, visible_chat(uow, viewer, chat_id))

    def add_chat_member(self, chat_id: Any, user_id: Any) -> dict[str, Any]:
        return self._membership(chat_id, user_id, add=True)

    def remove_chat_member(self, chat_id: Any, user_id: Any) -> dict[str, Any]:
        return self._membership(chat_id, user_id, add=False)

    def _membership(self, chat_id: Any, user_id: Any, *, add: bool) -> dict[str, Any]:
        uid = check_uuid("user_id", user_id)
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow, "update")
            moderator = viewer.can(MODERATE)
            cid = check_uuid("chat_id", chat_id, missing="chat")
            record = uow.chats.get(cid)
            if record is None or not (moderator or can_see_chat(viewer, record.member_ids)):
                if record is not None:
                    uow.deny(action="update", resource_type="chat", resource_id=cid, subject_id=None, fields=(),
                             purpose="visibility")
                raise not_found("chat")
            chat = uow.load(Chat, cid)
            try:
                if add:
                    if uid not in chat.member_ids:
                        check_people(self.deps.directory, [uid], field="user_id", want="staff")
                    chat.add_member(uid, by_id=viewer.user_id, moderator=moderator)
                else:
                    if uid not in chat.member_ids:
                        raise not_found("chat member")
                    chat.remove_member(uid, by_id=viewer.user_id, moderator=moderator)
            except NotTheChatManager:
                uow.deny(action="update", resource_type="chat", resource_id=cid, subject_id=None, fields=(),
                         purpose="authorization")
                raise
            uow.save(chat)
            return self._view(uow, viewer, uow.chats.get(cid))
