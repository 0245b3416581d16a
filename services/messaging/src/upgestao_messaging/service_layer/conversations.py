"""Customer conversations: open, read one, change (status, snooze, priority, labels, assignee, team), list.

Opening needs ``conversations.write``; the customer must be an active customer in identity's directory,
an assignee an active staff user, a team one of messaging's. The subject is sealed under the customer
and opened (audited, purpose ``conversation``) by :meth:`ConversationUseCases.conversation` only: list
items have no subject, change answers carry it as null. Every read goes through the visibility rule
(404 for the invisible).

The snooze sweep (:meth:`ConversationUseCases.wake_snoozed`) runs as the system: it reopens snoozed
conversations whose time has passed (reason ``snooze_expired``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from upgestao_kernel.cursors import decode_time_cursor, encode_time_cursor
from upgestao_kernel.errors import invalid_field
from upgestao_kernel.events import new_id
from upgestao_kernel.eventstore import ConcurrencyError

from ..adapters.ports import CONVERSATION_FILTERS, ActivityCursor, ConversationRecord, MessagingUnitOfWork
from ..domain.conversations import MAX_SUBJECT, STATUSES, Conversation
from ..domain.visibility import READ, WRITE, Viewer, conversation_scope
from .access import (
    Deps,
    check_people,
    check_uuid,
    conversation_view,
    open_subject,
    require,
    viewer_of,
    visible_conversation,
)

OPEN_FIELDS = ("customer_id", "channel", "team_id", "subject", "assignee_id", "priority", "labels")
CHANGE_FIELDS = ("status", "snoozed_until", "priority", "assignee_id", "team_id", "labels")
MAX_LIMIT = 200
SWEEP_BATCH = 100


def _mapping(name: str, value: Any, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise invalid_field(name, "must be an object")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise invalid_field(unknown[0], "unknown field")
    return value


def parse_time(field: str, value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise invalid_field(field, "must be an ISO 8601 time with its zone")
    return when


def check_limit(limit: Any, maximum: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= maximum:
        raise invalid_field("limit", f"must be an integer from 1 to {maximum}")
    return limit


def decode_cursor(cursor: Any) -> ActivityCursor | None:
    return None if cursor is None else decode_time_cursor(cursor)


def _check_team(uow: MessagingUnitOfWork, team_id: Any) -> str | None:
    if team_id is None:
        return None
    tid = check_uuid("team_id", team_id)
    if uow.teams.get(tid) is None:
        raise invalid_field("team_id", "no such team")
    return tid


class ConversationUseCases:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def _viewer(self, uow: MessagingUnitOfWork, permission: str, action: str) -> Viewer:
        viewer = viewer_of(uow, self.deps.permissions_of)
        require(uow, viewer, permission, action=action, resource_type="conversation")
        return viewer

    def open_conversation(self, data: Any) -> dict[str, Any]:
        data = _mapping("data", data, OPEN_FIELDS)
        customer_id = check_uuid("customer_id", data.get("customer_id"))
        subject = data.get("subject")
        if subject is not None and (not isinstance(subject, str) or not subject.strip()
                                    or len(subject) > MAX_SUBJECT):
            raise invalid_field("subject", f"must be 1 to {MAX_SUBJECT} characters")
        assignee_id = check_uuid("assignee_id", data["assignee_id"]) if data.get("assignee_id") is not None else None
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow, WRITE, "create")
            team_id = _check_team(uow, data.get("team_id"))
            check_people(self.deps.directory, [customer_id], field="customer_id", want="customer")
            if "assignee_id" not in data and not conversation_scope(viewer).admits(None, team_id):
                # opening never hides a conversation from its opener: an attendant who opens one outside the
                # queues of their teams gets it assigned (an explicit null leaves it unassigned all the same)
                assignee_id = viewer.user_id
            elif assignee_id is not None:
                check_people(self.deps.directory, [assignee_id], field="assignee_id", want="staff")
            conversation_id = new_id()
            sealed = None
            if subject is not None:
                sealed = uow.personal.seal(subject_id=customer_id, resource_type="conversation",
                                           resource_id=conversation_id, values={"subject": subject.strip()},
                                           purpose="conversation")["subject"]
            conversation = Conversation.open(
                conversation_id, customer_id=customer_id, channel=data.get("channel"), team_id=team_id,
                assignee_id=assignee_id, priority=data.get("priority"), labels=data.get("labels"),
                sealed_subject=sealed)
            uow.save(conversation)
            record = uow.conversations.get(conversation_id)
        return conversation_view(record, subject=subject.strip() if subject is not None else None, unread=0)

    def conversation(self, conversation_id: Any) -> dict[str, Any]:
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow, READ, "read")
            record = visible_conversation(uow, viewer, conversation_id)
            subject = open_subject(uow, record, "conversation")
            unread = uow.messages.unread_counts(viewer.user_id, [record.id])[record.id]
            return conversation_view(record, subject=subject, unread=unread)

    def update_conversation(self, conversation_id: Any, changes: Any) -> dict[str, Any]:
        changes = _mapping("changes", changes, CHANGE_FIELDS)
        if not changes:
            raise invalid_field("changes", f"give at least one of {', '.join(CHANGE_FIELDS)}")
        if "snoozed_until" in changes and "status" not in changes:
            raise invalid_field("snoozed_until", "only with status snoozed")
        until = parse_time("snoozed_until", changes.get("snoozed_until"))
        if "status" in changes and changes["status"] not in STATUSES:
            raise invalid_field("status", f"must be one of {', '.join(STATUSES)}")
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow, WRITE, "update")
            record = visible_conversation(uow, viewer, conversation_id)
            conversation = uow.load(Conversation, record.id)
            if "status" in changes:
                conversation.change_status(changes["status"], until, self.deps.now())
            if "assignee_id" in changes or "team_id" in changes:
                assignee_id = conversation.assignee_id
                if "assignee_id" in changes:
                    assignee_id = (check_uuid("assignee_id", changes["assignee_id"])
                                   if changes["assignee_id"] is not None else None)
                    if assignee_id is not None and assignee_id != conversation.assignee_id:
                        check_people(self.deps.directory, [assignee_id], field="assignee_id", want="staff")
                team_id = _check_team(uow, changes["team_id"]) if "team_id" in changes else conversation.team_id
                conversation.assign(assignee_id, team_id)
            if "priority" in changes or "labels" in changes:
                conversation.update(priority=changes.get("priority"), labels=changes.get("labels"))
            uow.save(conversation)
            record = uow.conversations.get(record.id)
            unread = uow.messages.unread_counts(viewer.user_id, [record.id])[record.id]
            return conversation_view(record, subject=None, unread=unread)

    def conversations(self, filters: Any = None, limit: Any = 50, cursor: Any = None) -> dict[str, Any]:
        clean = self._filters(filters or {})
        limit = check_limit(limit, MAX_LIMIT)
        after = decode_cursor(cursor)
        with self.deps.unit_of_work() as uow:
            viewer = self._viewer(uow, READ, "list")
            rows: list[ConversationRecord] = uow.conversations.page(conversation_scope(viewer), clean, limit + 1,
                                                                    after)
            more = len(rows) > limit
            rows = rows[:limit]
            unread = uow.messages.unread_counts(viewer.user_id, [r.id for r in rows])
            uow.audit_access(action="list", resource_type="conversation", resource_id=None, subject_id=None,
                             fields=(), purpose="conversation")
        # list items carry no subject at all (it is opened, audited, by ``conversation`` only)
        items = [conversation_view(r, subject=None, unread=unread[r.id]) for r in rows]
        for item in items:
            del item["subject"]
        return {"items": items,
                "next_cursor": encode_time_cursor(rows[-1].last_activity_at, rows[-1].id) if more else None}

    @staticmethod
    def _filters(filters: Any) -> dict[str, str]:
        filters = _mapping("filters", filters, CONVERSATION_FILTERS)
        clean: dict[str, str] = {}
        for name, value in filters.items():
            if value is None:
                continue
            if name == "status":
                if value not in STATUSES:
                    raise invalid_field("status", f"must be one of {', '.join(STATUSES)}")
                clean[name] = value
            elif name == "label":
                if not isinstance(value, str) or not value.strip():
                    raise invalid_field("label", "must be a label")
                clean[name] = value.strip().lower()
            else:
                clean[name] = check_uuid(name, value)
        return clean

    # -- the system's timer --------------------------------------------------------------------------------
    def wake_snoozed(self) -> int:
        """Reopen every snoozed conversation whose time has passed (as the system); returns how many. Each
        in its own unit: one that a person changed at the same moment is left to them (and the next sweep)."""
        with self.deps.unit_of_work() as uow:
            due = uow.conversations.snoozed_until_before(self.deps.now(), SWEEP_BATCH)
        woken = 0
        for conversation_id in due:
            try:
                with self.deps.unit_of_work() as uow:
                    conversation = uow.load(Conversation, conversation_id)
                    if conversation is not None and conversation.expire_snooze(self.deps.now()):
                        uow.save(conversation)
                        woken += 1
            except ConcurrencyError:
                continue
        return woken
