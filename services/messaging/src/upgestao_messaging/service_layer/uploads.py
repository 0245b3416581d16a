"""The attachment RPCs on H4's attachment use cases (``service_layer/attachments.py``): who may upload into
which container, and who may download, by the one visibility rule.

Upload: into a conversation one may write in (``conversations.write``, visible) or a chat one is a member
of; the bytes are sealed under the conversation's customer (in a chat: the uploader). Download: the
uploader while the attachment is unsent, then whoever sees its container; anyone else gets 404, as for
one that does not exist.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from upgestao_kernel.errors import conflict, invalid_field

from ..adapters.ports import CHAT, CONVERSATION, MessagingUnitOfWork
from ..domain.attachments import MAX_SIZE
from ..domain.visibility import READ, USE_CHATS, WRITE, Viewer, can_see_chat, can_see_conversation
from . import attachments
from .access import Deps, require_any, viewer_of
from .messages import MessageUseCases

UPLOAD_FIELDS = ("name", "content_b64", "conversation_id", "chat_id")


def _content(value: Any) -> bytes:
    if not isinstance(value, str) or len(value) > (MAX_SIZE // 3 + 1) * 4 + 4:
        raise invalid_field("content_b64", "must be base64 of at most 10 MiB")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_field("content_b64", "must be base64") from None


class UploadUseCases:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._messages = MessageUseCases(deps)

    def purge_unsent(self) -> int:
        """Remove uploads never sent within :data:`attachments.UNLINKED_TTL` (as the system, on the sweep): an
        abandoned upload is sealed personal data nobody can reach but its uploader, kept for nothing."""
        with self.deps.unit_of_work() as uow:
            return attachments.purge_unlinked(uow, now=self.deps.now())

    def upload_attachment(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise invalid_field("data", "must be an object")
        unknown = sorted(set(data) - set(UPLOAD_FIELDS))
        if unknown:
            raise invalid_field(unknown[0], "unknown field")
        has_conversation, has_chat = data.get("conversation_id") is not None, data.get("chat_id") is not None
        if has_conversation == has_chat:
            raise invalid_field("conversation_id", "give conversation_id or chat_id (one of them)")
        content = _content(data.get("content_b64"))
        kind = CONVERSATION if has_conversation else CHAT
        with self.deps.unit_of_work() as uow:
            viewer = viewer_of(uow, self.deps.permissions_of)
            container = self._messages.container_for(uow, viewer, kind, data.get(f"{kind}_id"), WRITE, "create")
            if container.erased:
                raise conflict("The customer's data was erased: this conversation takes no new attachments.")
            return attachments.upload(uow, viewer, name=data.get("name"), content=content, container_kind=kind,
                                      container_id=container.id, subject_id=container.key_subject_id or viewer.user_id,
                                      now=self.deps.now())

    def attachment(self, attachment_id: Any) -> dict[str, Any]:
        with self.deps.unit_of_work() as uow:
            viewer = viewer_of(uow, self.deps.permissions_of)
            require_any(uow, viewer, (READ, USE_CHATS), action="read", resource_type="attachment")
            return attachments.download(uow, viewer, attachment_id, may_see=self._may_see(uow, viewer))

    @staticmethod
    def _may_see(uow: MessagingUnitOfWork, viewer: Viewer):
        def may_see(kind: str, container_id: str) -> bool:
            if kind == CONVERSATION:
                record = uow.conversations.get(container_id)
                return record is not None and can_see_conversation(viewer, record.assignee_id, record.team_id)
            chat = uow.chats.get(container_id)
            return chat is not None and can_see_chat(viewer, chat.member_ids)

        return may_see
