"""Live push: what each connected viewer may be pushed of messaging's events (``push_view``).

The gateway reads messaging's published events from its push stream (ids and field names only) and, for
the events that arrived together and the sockets connected to it, asks once::

    push_view(items=[{"seq": 124, "event": <published envelope>}, ...], viewers=[<access token>, ...])
    -> {"items": [{"viewer": <index in viewers>, "seq": 124, "type": "message.created", "data": {...}}]}

Served to the gateway's broker user only (``uow.context.caller_service``, which RabbitMQ checked): anyone
else is refused (403, audited). Nothing the gateway says about a viewer is believed: each viewer is the
verified access token's user (identity's signature, expiry), with the permissions of its role and the teams
messaging knows, and the event is judged against the current read model by THE visibility rule
(:mod:`..domain.visibility`) -- a message goes to who may see its conversation (or is a member of its chat)
now, whatever the event said. An envelope is only a pointer: its ids are looked up, never its claims.

A pushed conversation is the list item (``subject`` null) with ``unread`` null: a count per viewer would be
a query per socket on every change, and a client keeps its counts from the events it receives
(``message.created`` by others, its own ``conversation.read``), as Zulip's clients do, or asks
``GET /v1/conversations/unread``.

Push types: ``message.created`` (``message_created``), ``message.updated`` (``message_edited``,
``message_deleted``), ``conversation.updated`` (``conversation_opened``, ``conversation_status_changed``,
``conversation_updated``), ``conversation.assigned`` (``conversation_assigned``; the previous assignee who
may no longer see the conversation is told ``{"id", "visible": false}`` so their list drops it) and
``conversation.read`` (``conversation_read``: receipts, staff only as everything here).

Pushing a body is a read (R5.3, D3): the body of a message is opened once per call (one audit record, the
first recipient's), and every other recipient's push is one more audit record naming them, the message and
its data subject, purpose ``live push`` (written together, in one statement, by the kernel's audit emitter
of the unit of work: a record per recipient, one round trip for all). A deleted or erased message is pushed
without a body, and without a content read to audit. A conversation's subject and a chat's title are never
pushed (null, as in lists).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from upgestao_kernel.access_tokens import AccessClaims
from upgestao_kernel.audit import AuditRecord
from upgestao_kernel.context import RequestContext
from upgestao_kernel.errors import ServiceError, field_error, validation_error

from ..adapters.ports import ChatRecord, ConversationRecord, MessageRecord, MessagingUnitOfWork
from ..domain.visibility import Viewer, can_see_chat, can_see_conversation
from .access import SYSTEM, Deps, conversation_view, message_view, open_body

PURPOSE = "live push"
SERVED = frozenset({"gateway"})
MAX_ITEMS = 500
MAX_VIEWERS = 1_000

MESSAGE_TYPES = {
    "messaging.message_created.v1": "message.created",
    "messaging.message_edited.v1": "message.updated",
    "messaging.message_deleted.v1": "message.updated",
}
CONVERSATION_TYPES = {
    "messaging.conversation_opened.v1": "conversation.updated",
    "messaging.conversation_status_changed.v1": "conversation.updated",
    "messaging.conversation_updated.v1": "conversation.updated",
    "messaging.conversation_assigned.v1": "conversation.assigned",
}
READ_TYPE = "messaging.conversation_read.v1"

TokenVerifier = Callable[[str], AccessClaims | None]
"""The claims of a valid access token, ``None`` otherwise (the kernel's ``Principals.claims``)."""


@dataclass(frozen=True)
class Recipient:
    """A viewer as verified, and the context its audit records name."""

    viewer: Viewer
    context: RequestContext


class PushViews:
    def __init__(self, deps: Deps, verify: TokenVerifier) -> None:
        self.deps = deps
        self.verify = verify

    def push_view(self, items: Any, viewers: Any) -> dict[str, list[dict[str, Any]]]:
        with self.deps.unit_of_work() as uow:
            if uow.context.caller_service not in SERVED:
                uow.deny(action="read", resource_type="message", resource_id=None, subject_id=None, fields=(),
                         purpose=PURPOSE)
                raise ServiceError("forbidden", "Live push is served to the gateway only.", 403)
            events = _checked_items(items)
            recipients = self._recipients(uow, _checked_viewers(viewers))
            if not events or not any(recipients):
                return {"items": []}
            batch = _Batch(uow, self.deps, recipients)
            pushes = list(batch.pushes(events))
            batch.audit_pushes()
            return {"items": pushes}

    def _recipients(self, uow: MessagingUnitOfWork, tokens: list[str]) -> list[Recipient | None]:
        """Each token's viewer (None: not a valid token of a staff user)."""
        verified = [self.verify(token) for token in tokens]
        users = {claims.subject for claims in verified if claims is not None}
        teams = uow.teams.ids_of_members(sorted(users))  # one query for every user of the call
        recipients: list[Recipient | None] = []
        for claims in verified:
            if claims is None or claims.subject == SYSTEM or claims.role == SYSTEM:
                recipients.append(None)
                continue
            viewer = Viewer(claims.subject, self.deps.permissions_of(claims.role), teams.get(claims.subject, _NONE))
            context = replace(uow.context, actor_id=claims.subject, actor_role=claims.role)
            recipients.append(Recipient(viewer, context))
        return recipients


_NONE: frozenset[str] = frozenset()


class _Batch:
    """One call: the records its events point to, read once; bodies opened once."""

    def __init__(self, uow: MessagingUnitOfWork, deps: Deps, recipients: list[Recipient | None]) -> None:
        self.uow = uow
        self.deps = deps
        self.recipients = recipients
        self._conversations: dict[str, ConversationRecord | None] = {}
        self._chats: dict[str, ChatRecord | None] = {}
        self._bodies: dict[str, str | None] = {}
        self._pushed: list[AuditRecord] = []  # the reads of bodies opened for another recipient

    def pushes(self, events: list[tuple[int, str, Mapping[str, Any], str | None]]) -> Iterator[dict[str, Any]]:
        message_ids = [_uuid(data.get("message_id")) for _, kind, data, _ in events if kind in MESSAGE_TYPES]
        messages = self.uow.messages.get_many([m for m in message_ids if m])
        for seq, kind, data, occurred_at in events:
            if kind in MESSAGE_TYPES:
                record = messages.get(_uuid(data.get("message_id")) or "")
                if record is not None:
                    yield from self._message(seq, MESSAGE_TYPES[kind], record)
            elif kind in CONVERSATION_TYPES:
                conversation = self._conversation(_uuid(data.get("conversation_id")))
                if conversation is not None:
                    yield from self._conversation_change(seq, CONVERSATION_TYPES[kind], conversation, data)
            elif kind == READ_TYPE:
                yield from self._read(seq, data, occurred_at)

    # -- who may see a container

    def _conversation(self, conversation_id: str | None) -> ConversationRecord | None:
        if conversation_id is None:
            return None
        if conversation_id not in self._conversations:
            self._conversations[conversation_id] = self.uow.conversations.get(conversation_id)
        return self._conversations[conversation_id]

    def _chat(self, chat_id: str | None) -> ChatRecord | None:
        if chat_id is None:
            return None
        if chat_id not in self._chats:
            self._chats[chat_id] = self.uow.chats.get(chat_id)
        return self._chats[chat_id]

    def _allowed(self, conversation: ConversationRecord | None, chat: ChatRecord | None
                 ) -> Iterator[tuple[int, Recipient]]:
        for index, recipient in enumerate(self.recipients):
            if recipient is None:
                continue
            viewer = recipient.viewer
            if conversation is not None and can_see_conversation(viewer, conversation.assignee_id,
                                                                 conversation.team_id):
                yield index, recipient
            elif chat is not None and can_see_chat(viewer, chat.member_ids):
                yield index, recipient

    # -- messages

    def _message(self, seq: int, push_type: str, record: MessageRecord) -> Iterator[dict[str, Any]]:
        conversation = self._conversation(record.conversation_id)
        chat = None if conversation is not None else self._chat(record.chat_id)
        allowed = list(self._allowed(conversation, chat))
        if not allowed:
            return
        attachments = self.deps.attachments.describe(self.uow, record.attachment_ids) if record.attachment_ids \
            else {}
        for index, recipient in allowed:
            body = self._body(record, recipient)
            yield {"viewer": index, "seq": seq, "type": push_type,
                   "data": message_view(record, body=body, attachments=attachments)}

    def _body(self, record: MessageRecord, recipient: Recipient) -> str | None:
        """The body pushed to ``recipient``: opened at its first push in this call (audited as that
        recipient's read), and its read by each later recipient audited by :meth:`audit_pushes`."""
        if record.deleted or record.erased or record.body_sealed is None:
            return None
        if record.id not in self._bodies:
            with _acting_as(self.uow, recipient.context):
                self._bodies[record.id] = open_body(self.uow, record, PURPOSE)
        else:
            self._pushed.append(self.uow.audit.build(
                recipient.context, action="read", resource_type="message", resource_id=record.id,
                subject_id=record.key_subject_id, fields=("body",), purpose=PURPOSE))
        return self._bodies[record.id]

    def audit_pushes(self) -> None:
        """Every later recipient's read, in one statement (fifty sockets: one round trip, not fifty), in the
        unit that answers: no push leaves without its record."""
        if self._pushed:
            self.uow.audit.emit_many(self.uow.conn, self.uow.context, self._pushed)

    # -- conversations and read cursors

    def _conversation_change(self, seq: int, push_type: str, conversation: ConversationRecord,
                             data: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        told: set[int] = set()
        view = {**conversation_view(conversation, subject=None, unread=0), "unread": None}
        for index, _ in self._allowed(conversation, None):
            told.add(index)
            yield {"viewer": index, "seq": seq, "type": push_type, "data": dict(view)}
        previous = data.get("previous_assignee_id") if push_type == "conversation.assigned" else None
        if isinstance(previous, str) and previous:
            for index, recipient in enumerate(self.recipients):
                if recipient is not None and index not in told and recipient.viewer.user_id == previous:
                    yield {"viewer": index, "seq": seq, "type": push_type,
                           "data": {"id": conversation.id, "visible": False}}

    def _read(self, seq: int, data: Mapping[str, Any], occurred_at: str | None) -> Iterator[dict[str, Any]]:
        conversation = self._conversation(_uuid(data.get("conversation_id")))
        chat = None if conversation is not None else self._chat(_uuid(data.get("chat_id")))
        user_id, message_id = data.get("user_id"), _uuid(data.get("message_id"))
        if (conversation is None and chat is None) or not isinstance(user_id, str) or message_id is None:
            return
        receipt = {"conversation_id": conversation.id if conversation else None, "chat_id": chat.id if chat else None,
                   "user_id": user_id, "message_id": message_id, "read_at": occurred_at}
        for index, _ in self._allowed(conversation, chat):
            yield {"viewer": index, "seq": seq, "type": "conversation.read", "data": dict(receipt)}


@contextmanager
def _acting_as(uow: MessagingUnitOfWork, context: RequestContext) -> Iterator[None]:
    """Audit records written inside name ``context``'s actor: the recipient of the push, not the gateway."""
    saved = uow.context
    uow.context = context
    try:
        yield
    finally:
        uow.context = saved


# -- what the gateway sends, checked (it is trusted to call, not to be right) --------------------------------


def _checked_items(items: Any) -> list[tuple[int, str, Mapping[str, Any], str | None]]:
    """``(seq, event type, data, occurred_at)`` of each item, by sequence; 422 for a malformed list, while an
    event of a type messaging does not push is skipped."""
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise validation_error([field_error("items", f"must be a list of at most {MAX_ITEMS} items")])
    events = []
    for item in items:
        event = item.get("event") if isinstance(item, Mapping) else None
        seq = item.get("seq") if isinstance(item, Mapping) else None
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or not isinstance(event, Mapping):
            raise validation_error([field_error("items", "each item is {seq: int, event: {...}}")])
        data, kind, occurred_at = event.get("data"), event.get("type"), event.get("occurred_at")
        if isinstance(kind, str) and isinstance(data, Mapping):
            events.append((seq, kind, data, occurred_at if isinstance(occurred_at, str) else None))
    events.sort(key=lambda event: event[0])
    return events


def _checked_viewers(viewers: Any) -> list[str]:
    if not isinstance(viewers, list) or len(viewers) > MAX_VIEWERS \
            or not all(isinstance(token, str) and 0 < len(token) <= 8192 for token in viewers):
        raise validation_error([field_error("viewers", f"must be a list of at most {MAX_VIEWERS} access tokens")])
    return viewers


def _uuid(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


__all__: Sequence[str] = ("PushViews", "PURPOSE", "TokenVerifier")
