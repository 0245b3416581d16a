"""Data subjects (LGPD arts. 18): everything messaging holds about a person, and its erasure.

Served to privacy's broker user only (``uow.context.caller_service == "privacy"``, which RabbitMQ
vouched for; never a header): anyone else gets 403, audited as denied.

Export (audited, purpose ``data subject access``): as a customer, their conversations with every
message (private notes included: they are data about the person), subjects opened; as staff, the
messages they wrote (a chat message's body, sealed under them; a reply in a customer's conversation is
sealed under that customer, so only its ids and times are theirs to receive), their chats (a title only
where they created the chat), read cursors and teams.

Erasure: the subject's key is shredded (every body, subject and title sealed under it is unreadable for
good, in the read models and in the event log alike), the read models drop them (``subject_erased``),
their search entries and attachments' contents go, and ``messaging.subject_erased.v1`` is emitted once:
a repeated request answers the first one's count and emits nothing.
"""

from __future__ import annotations

from typing import Any

from upgestao_kernel.errors import forbidden

from ..adapters.ports import MessagingUnitOfWork
from ..domain.subjects import Erasure
from . import attachments as attachment_cases
from .access import (
    Deps,
    chat_view,
    check_uuid,
    conversation_view,
    iso,
    message_view,
    open_bodies,
    open_subject,
    open_title,
)

PRIVACY = "privacy"
PURPOSE = "data subject access"


class SubjectUseCases:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @staticmethod
    def _only_privacy(uow: MessagingUnitOfWork, action: str, subject_id: str | None) -> None:
        if uow.context.caller_service != PRIVACY:
            uow.deny(action=action, resource_type="data_subject", resource_id=subject_id, subject_id=subject_id,
                     fields=(), purpose="authorization")
            raise forbidden("Only the privacy service asks this.")

    def export_subject(self, subject_id: Any) -> dict[str, Any]:
        with self.deps.unit_of_work() as uow:
            self._only_privacy(uow, "export", subject_id if isinstance(subject_id, str) else None)
            sid = check_uuid("subject_id", subject_id)
            conversations = uow.conversations.of_customer(sid)
            in_conversations = uow.messages.in_containers([c.id for c in conversations])
            attachments = self.deps.attachments.describe(uow, [a for m in in_conversations for a in m.attachment_ids])
            bodies = open_bodies(uow, in_conversations, PURPOSE)
            by_conversation: dict[str, list[dict]] = {c.id: [] for c in conversations}
            for m in in_conversations:
                by_conversation[m.container_id].append(message_view(m, body=bodies[m.id], attachments=attachments))
            exported_conversations = [
                {**conversation_view(c, subject=open_subject(uow, c, PURPOSE), unread=0),
                 "messages": by_conversation[c.id]} for c in conversations]
            written = uow.messages.authored_by(sid)
            own = open_bodies(uow, [m for m in written if m.key_subject_id == sid], PURPOSE)
            authored = [{**message_view(m, body=own.get(m.id), attachments={}),
                         "body_withheld": m.key_subject_id != sid and not m.deleted} for m in written]
            chats = [chat_view(r, title=open_title(uow, r, PURPOSE) if r.creator_id == sid else None, unread=0)
                     for r in uow.chats.of_member(sid)]
            cursors = [{"container_kind": r.container_kind, "container_id": r.container_id,
                        "message_id": r.message_id, "read_at": iso(r.read_at)} for r in uow.reads.of_user(sid)]
            teams = [{"id": t.id, "name": t.name} for t in uow.teams.all() if sid in t.member_ids]
            files = attachment_cases.export_subject(uow, sid)
            uow.audit_access(action="export", resource_type="data_subject", resource_id=sid, subject_id=sid,
                             fields=("conversations", "messages", "chats", "read_cursors", "teams", "attachments"),
                             purpose=PURPOSE)
        return {"service": "messaging", "subject_id": sid, "conversations": exported_conversations,
                "messages_authored": authored, "chats": chats, "read_cursors": cursors, "teams": teams,
                "attachments": files}

    def erase_subject(self, subject_id: Any) -> dict[str, Any]:
        with self.deps.unit_of_work() as uow:
            self._only_privacy(uow, "erase", subject_id if isinstance(subject_id, str) else None)
            sid = check_uuid("subject_id", subject_id)
            done = uow.load(Erasure, sid)
            if done is not None:
                return {"subject_id": sid, "erased": True, "messages": done.messages}
            count = uow.messages.count_sealed_under(sid)
            uow.personal.shred(subject_id=sid, resource_type="data_subject", purpose="erasure")
            uow.search_index.purge_subject(sid)
            self.deps.attachments.purge_subject(uow, sid)
            uow.save(Erasure.record(sid, count))
        return {"subject_id": sid, "erased": True, "messages": count}
