"""Data subjects (LGPD art. 18): everything messaging holds about a person, its erasure, and who they are.

Served to privacy's broker user only (``uow.context.caller_service == "privacy"``, which RabbitMQ
vouched for; never a header): anyone else gets 403, audited as denied. ``data_map`` alone is public (it
holds no personal value; the gateway asks ``datamap.read``), as identity's is.

Export (audited, purpose ``data subject access``): as a customer, their conversations with every
message (private notes included: they are data about the person), subjects opened; as staff, the
messages they wrote (a chat message's body, sealed under them; a reply in a customer's conversation is
sealed under that customer, so only its ids and times are theirs to receive), their chats (a title only
where they created the chat), read cursors and teams.

Erasure, asked by privacy's ``privacy.erasure_requested.v1`` (``request_id``, ``subject_id``, ``mode``) or by
the ``erase_subject`` RPC, confirmed by ``messaging.subject_erased.v1`` carrying ``request_id`` and ``mode``:

* ``deletion`` and ``anonymisation`` end alike here: the subject's key is shredded (every body, subject, title
  and attachment sealed under it is unreadable for good, in the read models and in the event log alike), their
  conversations and chats are marked and their read cursors go, and the answer is given: a constant amount of
  work, whatever the person's number of messages (``bench/erasure.py``). Then the sweep (every
  ``MESSAGING_SNOOZE_SWEEP_INTERVAL_S``) purges, in set-based statements, the read models' ciphertexts of their
  messages and versions, their search entries (keyed hashes of their words: the key's shredding does not reach
  them) and their attachments' sealed values, and records ``messaging.subject_purged.v1``. Meanwhile nothing of
  theirs can be read: every door opens through the vault (erased), and a search leaves out a hit whose body
  cannot be opened.
  What stays is ids, times and states (a conversation's channel, status, who answered): pseudonymous records
  that identity's erasure of the profile leaves pointing to nobody, kept for the help desk's figures. The two
  modes differ in identity (a deleted profile vs a profile emptied to an anonymous record).
* ``blocking`` (LGPD art. 18 IV: processing suspended, the data kept) is confirmed without change
  (``shredded: false``): identity blocks the person (no sign-in, their profile's reads refused; its directory,
  which messaging asks before opening a conversation or adding a member, says whether they are active: a blocked
  staff user is not) and messaging keeps their messages unaltered. Why not withhold them too: a block is lifted
  by the DPO in identity (``unblock_subject``, ``identity.subject_unblocked.v1``), and messaging consumes
  privacy's events only (the broker's permissions): it would never hear the lifting, so a withholding here
  could not be undone without a new event of privacy's. A stronger request afterwards (deletion) still erases.
* The answer's (and ``subject_erased``'s) ``messages``: None when it shreds (counted by the purge, in
  ``subject_purged``), the purge's count in a repeat after it.
* Idempotent: the first deletion or anonymisation shreds; a repeated request (the same or another request id)
  is confirmed again and erases nothing twice; the same event delivered twice is
  handled once (``self.db.handling``).
"""

from __future__ import annotations

from typing import Any

from upgestao_kernel.errors import forbidden, invalid_field
from upgestao_kernel.eventstore import ConcurrencyError

from ..adapters.ports import MessagingUnitOfWork
from ..domain.conversations import CHANNELS
from ..domain.datamap import data_map_document
from ..domain.subjects import MODES, SHREDDING, Erasure
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
PURGES_PER_SWEEP = 20  # erased subjects purged per sweep, at most (each in its own unit of work)
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

    def erase_subject(self, subject_id: Any, mode: Any = "deletion", request_id: Any = None) -> dict[str, Any]:
        with self.deps.unit_of_work() as uow:
            self._only_privacy(uow, "erase", subject_id if isinstance(subject_id, str) else None)
            sid, mode, request_id = _erasure_arguments(subject_id, mode, request_id)
            return erase(uow, sid, mode=mode, request_id=request_id)

    def erasure_requested(self, uow: MessagingUnitOfWork, data: dict[str, Any]) -> dict[str, Any]:
        """Privacy's ``privacy.erasure_requested.v1`` (in the handler's unit of work: the event is claimed in
        the same transaction). Bad data raises ValueError: the event is parked, never half done."""
        try:
            sid, mode, request_id = _erasure_arguments(data.get("subject_id"), data.get("mode", "deletion"),
                                                       data.get("request_id"))
        except Exception as exc:  # a ServiceError (422) here is a malformed event
            raise ValueError("privacy.erasure_requested.v1: malformed subject_id, mode or request_id") from exc
        return erase(uow, sid, mode=mode, request_id=request_id)

    def customer_ids(self, channel: Any = None, limit: Any = 500, cursor: Any = None) -> dict[str, Any]:
        """The customers of every conversation (of one channel): a breach's affected people, ids only, by id;
        ``next`` is the cursor of the next page (None: the last)."""
        with self.deps.unit_of_work() as uow:
            self._only_privacy(uow, "list", None)
            if channel is not None and channel not in CHANNELS:
                raise invalid_field("channel", f"must be one of {', '.join(CHANNELS)}")
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_IDS:
                raise invalid_field("limit", f"must be an integer from 1 to {MAX_IDS}")
            after = None if cursor is None else check_uuid("cursor", cursor)
            ids = uow.conversations.customer_ids(channel, limit + 1, after)
            uow.audit_access(action="list", resource_type="data_subject", resource_id=None, subject_id=None,
                             fields=("customer_id",), purpose="privacy incident")
        page = ids[:limit]
        return {"items": page, "next": page[-1] if len(ids) > limit else None}

    def purge_erased(self, limit: int = PURGES_PER_SWEEP) -> int:
        """The sweep's (as the system): the read models' ciphertexts, the search entries and the attachments'
        sealed values of erased subjects go, one subject per unit of work, each in set-based statements, and
        ``subject_purged`` records it. Two sweeps at once: one appends, the other's unit conflicts and rolls
        back. Returns how many subjects were purged."""
        with self.deps.unit_of_work() as uow:
            pending = uow.messages.pending_purges(limit)
        purged = 0
        for sid in pending:
            try:
                with self.deps.unit_of_work() as uow:
                    erasure = uow.load(Erasure, sid)
                    if erasure is None or not erasure.done or erasure.purged:
                        continue
                    messages = uow.messages.count_sealed_under(sid)
                    entries = uow.search_index.delete_subject(sid)
                    files = self.deps.attachments.purge_subject(uow, sid)
                    erasure.purge(messages=messages, search_entries=entries, attachments=files)
                    uow.save(erasure)
                purged += 1
            except ConcurrencyError:
                continue  # another sweep purged it meanwhile
        return purged

    @staticmethod
    def data_map() -> dict[str, Any]:
        return {"service": "messaging", "items": data_map_document()}


MAX_IDS = 1000
REQUEST_ID_MAX = 64


def _erasure_arguments(subject_id: Any, mode: Any, request_id: Any) -> tuple[str, str, str | None]:
    sid = check_uuid("subject_id", subject_id)
    if mode not in MODES:
        raise invalid_field("mode", f"must be one of {', '.join(MODES)}")
    if request_id is not None and (not isinstance(request_id, str) or not 0 < len(request_id) <= REQUEST_ID_MAX):
        raise invalid_field("request_id", f"must be a string of at most {REQUEST_ID_MAX} characters")
    return sid, mode, request_id


def erase(uow: MessagingUnitOfWork, sid: str, *, mode: str, request_id: str | None) -> dict[str, Any]:
    """Answer one request on ``uow``: the first deletion or anonymisation shreds and purges; anything else is
    confirmed as it stands. Every answer is a ``subject_erased`` (the confirmation privacy waits for)."""
    erasure = uow.load(Erasure, sid) or Erasure.start(sid)
    shreds = mode in SHREDDING and not erasure.done
    if shreds:
        uow.personal.shred(subject_id=sid, resource_type="data_subject", purpose="erasure")
    erasure.confirm(mode=mode, request_id=request_id)
    # folded: the conversations and chats say erased, the read cursors go, the purge is queued (the sweep's)
    uow.save(erasure)
    return {"subject_id": sid, "erased": erasure.done, "messages": erasure.messages, "mode": mode,
            "request_id": request_id, "shredded": shreds}
