"""Messages of conversations and chats: send, page, read one, edit, delete, history, search, read cursors.

Sealing: a conversation's messages (the customer's and staff's replies and notes alike) are sealed under
the customer's key, a chat message under its author's: erasing a person shreds exactly their messages.
Bodies come out only through ``uow.personal.open`` (one audit record per message and purpose:
``conversation``, ``staff chat``, ``history``, ``search``). The audit API records one resource per
record, so a page of 50 is 50 records: batching them would need an audit record naming several
resources, which the kernel does not have.

Sending is one transaction: seal, append ``message_created`` (the projection writes the row, the
conversation's last activity and the outbox copy), reopen the conversation on an incoming message,
index the words' keyed hashes. With a ``client_message_id`` the message id is derived (see
``domain/messages.py``): a repeat finds the message and answers ``created: false``; two concurrent
first sends race on the stream's version-0 append, the loser's whole unit rolls back (its seal audit
too) and it answers the winner's message.

Paging is by the messages' global positions; a read cursor is a position too, and never moves back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from upgestao_kernel.errors import conflict, invalid_field, not_found
from upgestao_kernel.events import EventEnvelope
from upgestao_kernel.eventstore import ConcurrencyError

from ..adapters.ports import CHAT, CONVERSATION, ChatRecord, ConversationRecord, MessageRecord, MessagingUnitOfWork
from ..domain.conversations import OPEN, Conversation
from ..domain.errors import EditWindowClosed, NotTheAuthor
from ..domain.events import ConversationRead, MessageCreated
from ..domain.messages import (
    INCOMING,
    INTERNAL,
    OUTGOING,
    Message,
    check_change_allowed,
    clean_body,
    clean_client_message_id,
    message_id_for,
)
from ..domain.search import MAX_QUERY_WORDS
from ..domain.visibility import (
    MODERATE,
    READ,
    RECORD_INCOMING,
    USE_CHATS,
    WRITE,
    Viewer,
    conversation_scope,
)
from .access import (
    Deps,
    check_uuid,
    clear,
    iso,
    message_view,
    open_bodies,
    require,
    require_any,
    viewer_of,
    visible_chat,
    visible_conversation,
    visible_message,
)
from .conversations import check_limit

SEND_FIELDS = ("body", "direction", "private", "client_message_id", "attachment_ids")
CHAT_SEND_FIELDS = ("body", "client_message_id", "attachment_ids")
MAX_PAGE = 200
MAX_SEARCH = 100
MAX_QUERY = 500
SEND_ATTEMPTS = 3  # a send that lost a race on its conversation's stream (a concurrent reopening) runs again
PURPOSE = {CONVERSATION: "conversation", CHAT: "staff chat"}


@dataclass(frozen=True)
class Container:
    kind: str
    id: str
    key_subject_id: str | None  # the customer of a conversation; a chat message's is its author
    customer_id: str | None = None
    status: str | None = None
    erased: bool = False

    @classmethod
    def of_conversation(cls, r: ConversationRecord) -> Container:
        return cls(CONVERSATION, r.id, r.customer_id, r.customer_id, r.status, r.erased)

    @classmethod
    def of_chat(cls, r: ChatRecord) -> Container:
        return cls(CHAT, r.id, None)


def created_record(envelope: EventEnvelope, kind: str, container_id: str, sealed: str | None) -> MessageRecord:
    """The row ``message_created`` just wrote, from the event itself (no read back)."""
    event = MessageCreated.from_envelope(envelope)
    return MessageRecord(
        id=envelope.stream_id.removeprefix(f"{Message.stream_type}-"), position=envelope.position,
        container_kind=kind, container_id=container_id, conversation_id=event.conversation_id, chat_id=event.chat_id,
        customer_id=event.customer_id, author_id=event.author_id, direction=event.direction, private=event.private,
        key_subject_id=event.key_subject_id, body_sealed=sealed, attachment_ids=list(event.attachment_ids), version=1,
        deleted=False, erased=False, created_at=envelope.occurred_at, edited_at=None)


def _fields(value: Any, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise invalid_field("data", "must be an object")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise invalid_field(unknown[0], "unknown field")
    return value


def _attachment_ids(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_field("attachment_ids", "must be a list of attachment ids")
    return list(dict.fromkeys(check_uuid("attachment_ids", a) for a in value))


class MessageUseCases:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    # -- helpers ---------------------------------------------------------------------------------------------
    def _viewer(self, uow: MessagingUnitOfWork) -> Viewer:
        return viewer_of(uow, self.deps.permissions_of)

    def _views(self, uow: MessagingUnitOfWork, records: Sequence[MessageRecord], purpose: str) -> list[dict]:
        attachments = self.deps.attachments.describe(uow, [a for r in records for a in r.attachment_ids])
        bodies = open_bodies(uow, records, purpose)
        return [message_view(r, body=bodies[r.id], attachments=attachments) for r in records]

    def container_for(self, uow: MessagingUnitOfWork, viewer: Viewer, kind: str, container_id: Any,
                      permission: str, action: str) -> Container:
        """The conversation or chat ``viewer`` may reach with ``permission`` (403 without it; 404 when the
        rule hides it, as when it does not exist); a chat needs ``chats.use`` and membership."""
        if kind == CONVERSATION:
            require(uow, viewer, permission, action=action, resource_type="message")
            return Container.of_conversation(visible_conversation(uow, viewer, container_id))
        require(uow, viewer, USE_CHATS, action=action, resource_type="message")
        return Container.of_chat(visible_chat(uow, viewer, container_id))

    # -- sending ---------------------------------------------------------------------------------------------
    def send_message(self, conversation_id: Any, data: Any) -> dict[str, Any]:
        data = _fields(data, SEND_FIELDS)
        direction = data.get("direction")
        if direction not in (INCOMING, OUTGOING):
            raise invalid_field("direction", "must be one of incoming, outgoing")
        private = data.get("private", False)
        if not isinstance(private, bool):
            raise invalid_field("private", "must be true or false")
        if private and direction != OUTGOING:
            raise invalid_field("private", "only outgoing messages are private notes")
        permission = RECORD_INCOMING if direction == INCOMING else WRITE
        return self._send(CONVERSATION, conversation_id, data, direction=direction, private=private,
                          permission=permission)

    def send_chat_message(self, chat_id: Any, data: Any) -> dict[str, Any]:
        data = _fields(data, CHAT_SEND_FIELDS)
        return self._send(CHAT, chat_id, data, direction=INTERNAL, private=False, permission=USE_CHATS)

    def _send(self, kind: str, container_id: Any, data: Mapping[str, Any], *, direction: str, private: bool,
              permission: str) -> dict[str, Any]:
        body = clean_body(data.get("body"))
        client_id = clean_client_message_id(data.get("client_message_id"))
        attachment_ids = _attachment_ids(data.get("attachment_ids"))
        terms = self.deps.hasher.hashes(body)
        for attempt in range(SEND_ATTEMPTS):
            try:
                return self._send_once(kind, container_id, body, terms, client_id, attachment_ids,
                                       direction=direction, private=private, permission=permission)
            except ConcurrencyError as exc:
                if client_id is not None and exc.stream_id.startswith(f"{Message.stream_type}-"):
                    # another request sent the same client_message_id first and won the version-0 append
                    return self._sent_before(kind, container_id, permission,
                                             exc.stream_id.removeprefix(f"{Message.stream_type}-"))
                if not exc.stream_id.startswith(f"{Conversation.stream_type}-") or attempt == SEND_ATTEMPTS - 1:
                    raise
                # two incoming messages reopened the conversation at once: this one again, on its new state
        raise AssertionError("unreachable")  # pragma: no cover

    def _send_once(self, kind: str, container_id: Any, body: str, terms: list[str], client_id: str | None,
                   attachment_ids: list[str], *, direction: str, private: bool, permission: str) -> dict[str, Any]:
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow)
            container = self.container_for(uow, viewer, kind, container_id, permission, "create")
            message_id = message_id_for(container.id, viewer.user_id, client_id)
            if client_id is not None:
                existing = uow.messages.get(message_id)
                if existing is not None:
                    return {"created": False, "message": self._views(uow, [existing], PURPOSE[kind])[0]}
            if container.erased:
                raise conflict("The customer's data was erased: this conversation takes no new messages.")
            key_subject = container.key_subject_id or viewer.user_id
            sealed = uow.personal.seal(subject_id=key_subject, resource_type="message", resource_id=message_id,
                                       values={"body": body}, purpose=PURPOSE[kind])["body"]
            message = Message.create(
                message_id, conversation_id=container.id if kind == CONVERSATION else None,
                chat_id=container.id if kind == CHAT else None, customer_id=container.customer_id,
                author_id=viewer.user_id, direction=direction, private=private, key_subject_id=key_subject,
                sealed_body=sealed, attachment_ids=attachment_ids, client_message_id=client_id)
            self.deps.attachments.link(uow, attachment_ids, container_kind=kind, container_id=container.id,
                                       message_id=message_id, actor_id=viewer.user_id)
            created = uow.save(message)[0]
            if direction == INCOMING and container.status != OPEN:
                conversation = uow.load(Conversation, container.id)
                if conversation.receive_incoming():
                    uow.save(conversation)
            uow.search_index.add(message_id=message_id, position=created.position, container_kind=kind,
                                 container_id=container.id, subject_id=key_subject, terms=terms)
            attachments = self.deps.attachments.describe(uow, attachment_ids)
            view = message_view(created_record(created, kind, container.id, sealed), body=body,
                                attachments=attachments)
            return {"created": True, "message": view}

    def _sent_before(self, kind: str, container_id: Any, permission: str, message_id: str) -> dict[str, Any]:
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow)
            self.container_for(uow, viewer, kind, container_id, permission, "read")
            existing = uow.messages.get(message_id)
            if existing is None:  # pragma: no cover - the winner's append is committed when ours fails
                raise not_found("message")
            return {"created": False, "message": self._views(uow, [existing], PURPOSE[kind])[0]}

    # -- reading ---------------------------------------------------------------------------------------------
    def messages(self, conversation_id: Any, before: Any = None, after: Any = None, limit: Any = 50) -> dict:
        return self._page(CONVERSATION, conversation_id, before, after, limit)

    def chat_messages(self, chat_id: Any, before: Any = None, after: Any = None, limit: Any = 50) -> dict:
        return self._page(CHAT, chat_id, before, after, limit)

    def _page(self, kind: str, container_id: Any, before: Any, after: Any, limit: Any) -> dict[str, Any]:
        limit = check_limit(limit, MAX_PAGE)
        if before is not None and after is not None:
            raise invalid_field("after", "give before or after, not both")
        anchor_id = check_uuid("before" if before is not None else "after", before or after) if (
            before is not None or after is not None) else None
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow)
            container = self.container_for(uow, viewer, kind, container_id, READ, "read")
            # the anchor is found by the page's own query (no page from a message of another container); an
            # empty page is the one case where it is looked up, to tell "nothing there" from "not ours"
            if after is not None:
                rows = uow.messages.after(kind, container.id, anchor_id, limit + 1)
                more_before, more_after = True, len(rows) > limit
                rows = rows[:limit]
            else:
                rows = uow.messages.before(kind, container.id, anchor_id, limit + 1)
                more_before, more_after = len(rows) > limit, anchor_id is not None
                rows = list(reversed(rows[:limit]))
            if anchor_id is not None and not rows:
                anchor = uow.messages.get(anchor_id)
                if anchor is None or (anchor.container_kind, anchor.container_id) != (kind, container.id):
                    raise invalid_field("before" if before is not None else "after",
                                        f"not a message of this {kind}")
            return {"items": self._views(uow, rows, PURPOSE[kind]), "has_more_before": more_before,
                    "has_more_after": more_after}

    def message(self, message_id: Any) -> dict[str, Any]:
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow)
            record = self._readable(uow, viewer, message_id)
            return self._views(uow, [record], PURPOSE[record.container_kind])[0]

    def _readable(self, uow: MessagingUnitOfWork, viewer: Viewer, message_id: Any) -> MessageRecord:
        require_any(uow, viewer, (READ, USE_CHATS), action="read", resource_type="message")
        record, _, _ = visible_message(uow, viewer, message_id)
        needed = READ if record.container_kind == CONVERSATION else USE_CHATS
        if not viewer.can(needed):
            raise not_found("message")
        return record

    def message_history(self, message_id: Any) -> dict[str, Any]:
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow)
            record = self._readable(uow, viewer, message_id)
            versions = uow.messages.versions(record.id)
            sealed = [v for v in versions if v.body_sealed is not None]  # every version is sealed under one subject
            opened = uow.personal.open_many(subject_id=record.key_subject_id, resource_type="message",
                                            items=[(record.id, {"body": v.body_sealed}) for v in sealed],
                                            purpose="history")
            bodies = {v.version: o["body"] for v, o in zip(sealed, opened, strict=True)}
            return {"items": [{"version": v.version, "editor_id": v.editor_id, "edited_at": iso(v.edited_at),
                               "body": clear(bodies.get(v.version))} for v in versions]}

    # -- changing ----------------------------------------------------------------------------------------------
    def edit_message(self, message_id: Any, body: Any) -> dict[str, Any]:
        body = clean_body(body)
        terms = self.deps.hasher.hashes(body)
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow)
            record = self._changeable(uow, viewer, message_id, "update")
            sealed = uow.personal.seal(subject_id=record.key_subject_id, resource_type="message",
                                       resource_id=record.id, values={"body": body}, purpose="edit",
                                       action="update")["body"]
            message = uow.load(Message, record.id)
            message.edit(editor_id=viewer.user_id, sealed_body=sealed)
            uow.save(message)
            uow.search_index.replace(message_id=record.id, position=record.position,
                                     container_kind=record.container_kind, container_id=record.container_id,
                                     subject_id=record.key_subject_id, terms=terms)
            updated = uow.messages.get(record.id)
            attachments = self.deps.attachments.describe(uow, updated.attachment_ids)
            return message_view(updated, body=body, attachments=attachments)

    def delete_message(self, message_id: Any) -> dict[str, Any]:
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow)
            record = self._changeable(uow, viewer, message_id, "delete")
            message = uow.load(Message, record.id)
            message.delete(editor_id=viewer.user_id)
            uow.save(message)
            # the body leaves every answer (its versions stay for history): a change to personal data, audited
            uow.audit_access(action="delete", resource_type="message", resource_id=record.id,
                             subject_id=record.key_subject_id, fields=("body",), purpose="delete")
            uow.search_index.remove(record.id)
            updated = uow.messages.get(record.id)
            attachments = self.deps.attachments.describe(uow, updated.attachment_ids)
            return message_view(updated, body=None, attachments=attachments)

    def _changeable(self, uow: MessagingUnitOfWork, viewer: Viewer, message_id: Any, action: str) -> MessageRecord:
        record = self._readable(uow, viewer, message_id)
        write = WRITE if record.container_kind == CONVERSATION else USE_CHATS
        moderator = viewer.can(MODERATE)
        if not moderator:
            require(uow, viewer, write, action=action, resource_type="message", resource_id=record.id)
        try:
            check_change_allowed(author_id=record.author_id, created_at=record.created_at, editor_id=viewer.user_id,
                                 moderator=moderator, now=self.deps.now(), window_s=self.deps.edit_window_s)
        except (NotTheAuthor, EditWindowClosed) as exc:
            uow.deny(action=action, resource_type="message", resource_id=record.id, subject_id=None, fields=(),
                     purpose="edit window" if isinstance(exc, EditWindowClosed) else "authorization")
            raise
        return record

    # -- search ------------------------------------------------------------------------------------------------
    def search(self, q: Any, conversation_id: Any = None, chat_id: Any = None, limit: Any = 20,
               cursor: Any = None) -> dict[str, Any]:
        if not isinstance(q, str) or not q.strip() or len(q) > MAX_QUERY:
            raise invalid_field("q", f"must be 1 to {MAX_QUERY} characters")
        terms = self.deps.hasher.hashes(q)
        if not terms:
            raise invalid_field("q", "has no words to search for")
        if len(terms) > MAX_QUERY_WORDS:
            raise invalid_field("q", f"at most {MAX_QUERY_WORDS} different words")
        limit = check_limit(limit, MAX_SEARCH)
        if conversation_id is not None and chat_id is not None:
            raise invalid_field("chat_id", "give conversation_id or chat_id, not both")
        before = None
        if cursor is not None:
            if not isinstance(cursor, str) or not cursor.isdigit() or len(cursor) > 20:
                raise invalid_field("cursor", "not a cursor this API gave")
            before = int(cursor)
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow)
            require_any(uow, viewer, (READ, USE_CHATS), action="read", resource_type="message")
            container = None
            if conversation_id is not None:
                container = self.container_for(uow, viewer, CONVERSATION, conversation_id, READ, "read")
            elif chat_id is not None:
                container = self.container_for(uow, viewer, CHAT, chat_id, USE_CHATS, "read")
            visible = uow.search_visibility(viewer.user_id, conversation_scope(viewer), viewer.can(USE_CHATS))
            hits = uow.search_index.find(terms, visible=visible,
                                         container=(container.kind, container.id) if container else None,
                                         limit=limit + 1, before_position=before)
            # a next page: hits beyond this one, or the index's work for one call ran out first (then the page
            # may be short, even empty, and the cursor says where the search goes on)
            if len(hits) > limit:
                next_cursor: str | None = str(hits[limit - 1][0])
            else:
                resume = getattr(hits, "resume_before", None)
                next_cursor = str(resume) if resume is not None else None
            shown = hits[:limit]
            records = uow.messages.get_many([message_id for _, message_id in shown])
            found = [records[message_id] for _, message_id in shown if message_id in records]
            # a hit whose body cannot be opened is left out: its data subject was erased and the sweep has not
            # purged their entries yet (a deleted message's entries go with it)
            items = [view for view in self._views(uow, found, "search") if view["body"] is not None]
            return {"items": items, "next_cursor": next_cursor}

    # -- read cursors, unread, receipts --------------------------------------------------------------------------
    def mark_read(self, conversation_id: Any, message_id: Any) -> dict[str, Any]:
        return self._mark(CONVERSATION, conversation_id, message_id)

    def mark_chat_read(self, chat_id: Any, message_id: Any) -> dict[str, Any]:
        return self._mark(CHAT, chat_id, message_id)

    def _mark(self, kind: str, container_id: Any, message_id: Any) -> dict[str, Any]:
        mid = check_uuid("message_id", message_id)
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow)
            container = self.container_for(uow, viewer, kind, container_id, WRITE, "update")
            message = uow.messages.get(mid)
            if message is None or message.container_id != container.id:
                raise invalid_field("message_id", f"not a message of this {kind}")
            cursor = uow.reads.get(viewer.user_id, container.id)
            if cursor is None or cursor.position < message.position:
                uow.record(f"read-{container.id}-{viewer.user_id}", None, [ConversationRead(
                    conversation_id=container.id if kind == CONVERSATION else None,
                    chat_id=container.id if kind == CHAT else None, user_id=viewer.user_id, message_id=mid,
                    position=message.position).new_event(viewer.user_id)])
                cursor = uow.reads.get(viewer.user_id, container.id)
            return {f"{kind}_id": container.id, "user_id": viewer.user_id, "message_id": cursor.message_id,
                    "read_at": iso(cursor.read_at)}

    def unread(self) -> dict[str, Any]:
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow)
            require_any(uow, viewer, (READ, USE_CHATS), action="read", resource_type="message")
            counts = uow.messages.unread(viewer.user_id, conversation_scope(viewer))
        items = [{f"{kind}_id": cid, "unread": n} for kind, cid, n in counts
                 if kind == CONVERSATION or viewer.can(USE_CHATS)]
        return {"total": sum(i["unread"] for i in items), "items": items}

    def read_receipts(self, conversation_id: Any) -> dict[str, Any]:
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow)
            container = self.container_for(uow, viewer, CONVERSATION, conversation_id, READ, "read")
            cursors = uow.reads.of_container(container.id)
            return {"items": [{"user_id": r.user_id, "message_id": r.message_id, "read_at": iso(r.read_at)}
                              for r in cursors]}
