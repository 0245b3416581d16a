"""Who is asking, what they may do, and the answers' shapes: shared by every use case of messaging.

The actor is the verified token's (``uow.context.actor_id``/``actor_role``), never an argument. A
:class:`~..domain.visibility.Viewer` is built from it in the request's unit of work: permissions from
identity's roles (``permissions_of``), teams from messaging's own read model. A missing permission is a
403 audited as denied; a conversation or chat the viewer may not see is a 404 ``not-found``, exactly as
one that does not exist (the attempt on one that exists is audited as denied: investigators see it, the
caller does not).

Sealed values are opened here only (:func:`open_body`, :func:`open_subject`, :func:`open_title`): each
open is one audit record naming the data subject, the resource and the field.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from upgestao_kernel.errors import ServiceError, forbidden, invalid_field, not_found
from upgestao_kernel.unit_of_work import is_erased  # what an opened value of a shredded subject is

from ..adapters.ports import (
    ChatRecord,
    ConversationRecord,
    Directory,
    MessageRecord,
    MessagingUnitOfWork,
    Person,
)
from ..domain.search import TermHasher
from ..domain.visibility import READ, READ_ALL, Teams, Viewer, can_see_chat, can_see_conversation

SYSTEM = "system"
PermissionsOf = Callable[[str | None], frozenset[str]]


class Attachments:
    """H4's attachments as the message use cases need them (linking on send, metadata on read, purge on
    erasure). The default knows no attachment: any ``attachment_ids`` given are refused (422)."""

    def link(self, uow: MessagingUnitOfWork, attachment_ids: Sequence[str], *, container_kind: str,
             container_id: str, message_id: str, actor_id: str) -> None:
        if attachment_ids:
            raise invalid_field("attachment_ids", "no such attachment")

    def describe(self, uow: MessagingUnitOfWork, attachment_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {}

    def purge_subject(self, uow: MessagingUnitOfWork, subject_id: str) -> int:
        return 0


@dataclass
class Deps:
    """What every use case of messaging is built with."""

    unit_of_work: Callable[[], MessagingUnitOfWork]
    permissions_of: PermissionsOf
    directory: Directory
    hasher: TermHasher
    edit_window_s: int = 900
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    attachments: Attachments = field(default_factory=Attachments)


def viewer_of(uow: MessagingUnitOfWork, permissions_of: PermissionsOf) -> Viewer:
    """The staff user asking (403 for no verified actor, or the system, which reads nothing here)."""
    ctx = uow.context
    if not ctx.actor_id or ctx.actor_id == SYSTEM or ctx.actor_role == SYSTEM:
        uow.deny(action="read", resource_type="messaging", resource_id=None, subject_id=None, fields=(),
                 purpose="authorization")
        raise forbidden("Sign in first.")
    permissions = permissions_of(ctx.actor_role)
    # the rule reads teams only between conversations.read and conversations.read_all, and then only when
    # it gets to them (not for a conversation assigned to the viewer): no query otherwise
    needs_teams = READ in permissions and READ_ALL not in permissions
    actor_id = ctx.actor_id
    return Viewer(user_id=actor_id, permissions=permissions,
                  team_ids=Teams(lambda: uow.teams.ids_of_member(actor_id)) if needs_teams else frozenset())


def require(uow: MessagingUnitOfWork, viewer: Viewer, permission: str, *, action: str, resource_type: str,
            resource_id: str | None = None) -> None:
    if not viewer.can(permission):
        uow.deny(action=action, resource_type=resource_type, resource_id=resource_id, subject_id=None, fields=(),
                 purpose="authorization")
        raise forbidden(f"Your role does not grant {permission}.", permission=permission)


def require_any(uow: MessagingUnitOfWork, viewer: Viewer, permissions: Sequence[str], *, action: str,
                resource_type: str) -> None:
    if not any(viewer.can(p) for p in permissions):
        uow.deny(action=action, resource_type=resource_type, resource_id=None, subject_id=None, fields=(),
                 purpose="authorization")
        raise forbidden(f"Your role grants none of {', '.join(permissions)}.", permission=permissions[0])


def check_uuid(name: str, value: object, *, missing: str | None = None) -> str:
    """A UUID in canonical form; anything else is 422 naming ``name`` (or 404 ``missing``: an id in a path
    that cannot name anything is answered as absent)."""
    try:
        if isinstance(value, str):
            return str(uuid.UUID(value))
    except ValueError:
        pass
    if missing is not None:
        raise not_found(missing)
    raise invalid_field(name, "must be a UUID")


def visible_conversation(uow: MessagingUnitOfWork, viewer: Viewer, conversation_id: object) -> ConversationRecord:
    cid = check_uuid("conversation_id", conversation_id, missing="conversation")
    record = uow.conversations.get(cid)
    if record is not None and can_see_conversation(viewer, record.assignee_id, record.team_id):
        return record
    if record is not None:
        uow.deny(action="read", resource_type="conversation", resource_id=cid, subject_id=None, fields=(),
                 purpose="visibility")
    raise not_found("conversation")


def visible_chat(uow: MessagingUnitOfWork, viewer: Viewer, chat_id: object) -> ChatRecord:
    cid = check_uuid("chat_id", chat_id, missing="chat")
    record = uow.chats.get(cid)
    if record is not None and can_see_chat(viewer, record.member_ids):
        return record
    if record is not None:
        uow.deny(action="read", resource_type="chat", resource_id=cid, subject_id=None, fields=(),
                 purpose="visibility")
    raise not_found("chat")


def visible_message(uow: MessagingUnitOfWork, viewer: Viewer, message_id: object
                    ) -> tuple[MessageRecord, ConversationRecord | None, ChatRecord | None]:
    """The message and its container, if the viewer may see the container (else 404 ``message``)."""
    mid = check_uuid("message_id", message_id, missing="message")
    record = uow.messages.get(mid)
    if record is None:
        raise not_found("message")
    try:
        if record.conversation_id is not None:
            return record, visible_conversation(uow, viewer, record.conversation_id), None
        return record, None, visible_chat(uow, viewer, record.chat_id)
    except ServiceError:
        raise not_found("message") from None


def check_people(directory: Directory, ids: Sequence[str], *, field: str, want: str) -> dict[str, Person]:
    """Every id an active staff user (``want="staff"``) or customer; 422 naming ``field`` otherwise."""
    if not ids:
        return {}
    people = directory.lookup(list(ids))
    for person_id in ids:
        person = people.get(person_id)
        ok = person is not None and (person.active_staff if want == "staff" else person.active_customer)
        if not ok:
            raise invalid_field(field, f"not an active {'staff user' if want == 'staff' else 'customer'}: {person_id}")
    return people


# -- opening sealed values (audited) ----------------------------------------------------------------------


def clear(value: Any) -> str | None:
    """An opened value as an answer shows it: None for none, and for a shredded subject's."""
    return None if value is None or is_erased(value) else value


def open_body(uow: MessagingUnitOfWork, record: MessageRecord, purpose: str) -> str | None:
    """The message's body (None once deleted or erased); one audit record per open."""
    if record.deleted or record.body_sealed is None:
        return None
    opened = uow.personal.open(subject_id=record.key_subject_id, resource_type="message", resource_id=record.id,
                               sealed={"body": record.body_sealed}, purpose=purpose)
    return clear(opened["body"])


def open_bodies(uow: MessagingUnitOfWork, records: Sequence[MessageRecord], purpose: str) -> dict[str, str | None]:
    """The bodies of several messages by id: one audit record per message as :func:`open_body` writes, but all
    in one statement, and one statement for the keys of every data subject (a page of a conversation is one
    subject; a search's hits are of many)."""
    bodies: dict[str, str | None] = {r.id: None for r in records}
    sealed = [r for r in records if not r.deleted and r.body_sealed is not None]
    if sealed:
        opened = uow.personal.open_each(resource_type="message", purpose=purpose,
                                        items=[(r.key_subject_id, r.id, {"body": r.body_sealed}) for r in sealed])
        bodies.update({r.id: clear(o["body"]) for r, o in zip(sealed, opened, strict=True)})
    return bodies


def _open_field(uow: MessagingUnitOfWork, subject_id: str, resource_type: str, resource_id: str, field: str,
                sealed: str | None, purpose: str) -> str | None:
    """One sealed field opened (audited by the vault, ``purpose``); None when nothing was sealed."""
    if sealed is None:
        return None
    opened = uow.personal.open(subject_id=subject_id, resource_type=resource_type, resource_id=resource_id,
                               sealed={field: sealed}, purpose=purpose)
    return clear(opened[field])


def open_subject(uow: MessagingUnitOfWork, record: ConversationRecord, purpose: str) -> str | None:
    return _open_field(uow, record.customer_id, "conversation", record.id, "subject", record.subject_sealed, purpose)


def open_title(uow: MessagingUnitOfWork, record: ChatRecord, purpose: str) -> str | None:
    return _open_field(uow, record.creator_id, "chat", record.id, "title", record.title_sealed, purpose)


# -- the answers' shapes -----------------------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def conversation_view(r: ConversationRecord, *, subject: str | None, unread: int) -> dict[str, Any]:
    return {"id": r.id, "customer_id": r.customer_id, "channel": r.channel, "status": r.status,
            "snoozed_until": iso(r.snoozed_until), "priority": r.priority, "assignee_id": r.assignee_id,
            "team_id": r.team_id, "labels": list(r.labels), "subject": subject, "created_at": iso(r.created_at),
            "updated_at": iso(r.updated_at), "last_message_at": iso(r.last_message_at), "unread": unread}


def message_view(r: MessageRecord, *, body: str | None, attachments: Mapping[str, Mapping[str, Any]]
                 ) -> dict[str, Any]:
    # (iso() inlined and no comprehension for a message without attachments: a page makes 50 of these)
    edited_at = r.edited_at
    return {"id": r.id, "conversation_id": r.conversation_id, "chat_id": r.chat_id, "author_id": r.author_id,
            "direction": r.direction, "private": r.private, "body": None if r.deleted else body,
            "created_at": r.created_at.isoformat(), "edited_at": None if edited_at is None else edited_at.isoformat(),
            "deleted": r.deleted,
            "attachments": [dict(attachments[a]) for a in r.attachment_ids if a in attachments]
            if r.attachment_ids else []}


def chat_view(r: ChatRecord, *, title: str | None, unread: int) -> dict[str, Any]:
    return {"id": r.id, "kind": r.kind, "title": title, "creator_id": r.creator_id, "member_ids": list(r.member_ids),
            "created_at": iso(r.created_at), "updated_at": iso(r.updated_at),
            "last_message_at": iso(r.last_message_at), "unread": unread}
