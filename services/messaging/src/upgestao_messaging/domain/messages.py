"""Messages of a conversation or a chat: created once, edited (every version kept), deleted.

Idempotent sending: a message sent with a ``client_message_id`` gets the id
``uuid5(NAMESPACE, f"{container id}:{author id}:{client_message_id}")``, so the same author repeating the
same id in the same container names the same stream, whose version-0 append only one sender wins.

Edits and deletions: the author within the edit window (``MESSAGING_EDIT_WINDOW_S``), a moderator any
time; a deleted message is neither edited nor deleted again (its history stays readable).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from upgestao_kernel.events import Aggregate

from .errors import EditWindowClosed, InvalidValue, MessageIsDeleted, NotTheAuthor
from .events import MessageCreated, MessageDeleted, MessageEdited

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://upgestao.com.br/messaging/messages")
INCOMING, OUTGOING, INTERNAL = "incoming", "outgoing", "internal"
DIRECTIONS = (INCOMING, OUTGOING)
MAX_BODY = 20_000
MAX_CLIENT_ID = 100
MAX_ATTACHMENTS = 10


def message_id_for(container_id: str, author_id: str, client_message_id: str | None) -> str:
    """Deterministic for a client's id (a repeat names the same message), random otherwise."""
    if client_message_id is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(NAMESPACE, f"{container_id}:{author_id}:{client_message_id}"))


def clean_body(body: object) -> str:
    if not isinstance(body, str) or not body.strip():
        raise InvalidValue("body", "must be a non-empty string")
    if len(body) > MAX_BODY:
        raise InvalidValue("body", f"at most {MAX_BODY} characters")
    return body


def clean_client_message_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_CLIENT_ID:
        raise InvalidValue("client_message_id", f"must be 1 to {MAX_CLIENT_ID} characters")
    return value


def check_change_allowed(*, author_id: str, created_at: datetime, editor_id: str, moderator: bool,
                         now: datetime, window_s: int) -> None:
    """The edit/delete policy: a moderator any time, the author within the window, nobody else."""
    if moderator:
        return
    if editor_id != author_id:
        raise NotTheAuthor()
    if now - created_at > timedelta(seconds=window_s):
        raise EditWindowClosed(window_s)


class Message(Aggregate):
    stream_type = "message"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.conversation_id: str | None = None
        self.chat_id: str | None = None
        self.author_id = ""
        self.key_subject_id = ""
        self.body_version = 0
        self.deleted = False

    @classmethod
    def create(cls, id: str, *, conversation_id: str | None, chat_id: str | None, customer_id: str | None,
               author_id: str, direction: str, private: bool, key_subject_id: str, sealed_body: str | None,
               attachment_ids: list[str], client_message_id: str | None) -> Message:
        if (conversation_id is None) == (chat_id is None):
            raise ValueError("a message belongs to exactly one conversation or chat")
        if direction not in (*DIRECTIONS, INTERNAL):
            raise InvalidValue("direction", f"must be one of {', '.join(DIRECTIONS)}")
        if private and direction != OUTGOING:
            raise InvalidValue("private", "only outgoing messages are private notes")
        if len(attachment_ids) > MAX_ATTACHMENTS:
            raise InvalidValue("attachment_ids", f"at most {MAX_ATTACHMENTS} attachments")
        message = cls(id)
        message.trigger(MessageCreated(
            conversation_id=conversation_id, chat_id=chat_id, customer_id=customer_id, author_id=author_id,
            direction=direction, private=bool(private), key_subject_id=key_subject_id,
            attachment_ids=list(attachment_ids), attachment_count=len(attachment_ids),
            client_message_id=client_message_id, sealed={"body": sealed_body}))
        return message

    def edit(self, *, editor_id: str, sealed_body: str | None) -> int:
        """Record the next version (the policy was checked by :func:`check_change_allowed`)."""
        if self.deleted:
            raise MessageIsDeleted()
        version = self.body_version + 1
        self.trigger(MessageEdited(conversation_id=self.conversation_id, chat_id=self.chat_id, editor_id=editor_id,
                                   body_version=version, key_subject_id=self.key_subject_id,
                                   sealed={"body": sealed_body}))
        return version

    def delete(self, *, editor_id: str) -> None:
        if self.deleted:
            raise MessageIsDeleted()
        self.trigger(MessageDeleted(conversation_id=self.conversation_id, chat_id=self.chat_id, editor_id=editor_id))

    def when_message_created(self, conversation_id, chat_id, customer_id, author_id, direction, private,
                             key_subject_id, attachment_ids, attachment_count, client_message_id, sealed) -> None:
        self.conversation_id, self.chat_id = conversation_id, chat_id
        self.author_id, self.key_subject_id = author_id, key_subject_id
        self.body_version = 1

    def when_message_edited(self, conversation_id, chat_id, editor_id, body_version, key_subject_id,
                            sealed) -> None:
        self.body_version = body_version

    def when_message_deleted(self, conversation_id, chat_id, editor_id) -> None:
        self.deleted = True
