"""Projections of messaging's event log into its read models, in SQL and in memory.

What an event does to the tables is said once, as a list of row changes (:func:`changes`); the SQL
projection and the in-memory one (unit tests) both apply that list, so they cannot drift apart.
A change is ``Insert(table, row)``, ``Update(table, where, values)``, ``Delete(table, where)`` or
``Upsert(table, row)`` (by the table's primary key); ``where`` is column equalities.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from upgestao_kernel.events import EventEnvelope, EventHandlers
from upgestao_kernel.fakes import MemoryTransaction

from ..domain.conversations import OPEN
from ..domain.events import (
    ChatCreated,
    ChatMemberAdded,
    ChatMemberRemoved,
    ConversationAssigned,
    ConversationOpened,
    ConversationRead,
    ConversationStatusChanged,
    ConversationUpdated,
    MessageCreated,
    MessageDeleted,
    MessageEdited,
    SubjectErased,
    SubjectPurged,
    TeamCreated,
    TeamUpdated,
)
from .tables import KEYS, TABLES

_BY_NAME = {t.name: t for t in TABLES}


@dataclass(frozen=True)
class Insert:
    table: str
    row: Mapping[str, Any]


@dataclass(frozen=True)
class Update:
    table: str
    where: Mapping[str, Any]
    values: Mapping[str, Any]


@dataclass(frozen=True)
class Delete:
    table: str
    where: Mapping[str, Any]


@dataclass(frozen=True)
class Upsert:
    table: str
    row: Mapping[str, Any]


Change = Insert | Update | Delete | Upsert


def _id(envelope: EventEnvelope) -> str:
    return envelope.stream_id.split("-", 1)[1]


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


class _Changes:
    """The row changes of each event (dispatched by :data:`on`)."""

    on = EventHandlers()

    @on(TeamCreated)
    def _team_created(self, out: list[Change], e: EventEnvelope, event: TeamCreated) -> None:
        team_id = _id(e)
        out.append(Insert("teams", {"id": team_id, "name": event.name, "created_at": e.occurred_at,
                                    "updated_at": e.occurred_at}))
        out.extend(Insert("team_members", {"team_id": team_id, "user_id": m}) for m in event.member_ids)

    @on(TeamUpdated)
    def _team_updated(self, out: list[Change], e: EventEnvelope, event: TeamUpdated) -> None:
        team_id = _id(e)
        out.append(Update("teams", {"id": team_id}, {"name": event.name, "updated_at": e.occurred_at}))
        out.append(Delete("team_members", {"team_id": team_id}))
        out.extend(Insert("team_members", {"team_id": team_id, "user_id": m}) for m in event.member_ids)

    @on(ConversationOpened)
    def _opened(self, out: list[Change], e: EventEnvelope, event: ConversationOpened) -> None:
        out.append(Insert("conversations", {
            "id": _id(e), "customer_id": event.customer_id, "channel": event.channel, "status": OPEN,
            "snoozed_until": None, "priority": event.priority, "labels": list(event.labels),
            "assignee_id": event.assignee_id, "team_id": event.team_id,
            "subject_sealed": event.sealed.get("subject"), "erased": False, "created_at": e.occurred_at,
            "updated_at": e.occurred_at, "last_message_at": None, "last_activity_at": e.occurred_at}))

    @on(ConversationStatusChanged)
    def _status(self, out: list[Change], e: EventEnvelope, event: ConversationStatusChanged) -> None:
        out.append(Update("conversations", {"id": _id(e)}, {
            "status": event.status, "snoozed_until": _when(event.snoozed_until), "updated_at": e.occurred_at,
            "last_activity_at": e.occurred_at}))

    @on(ConversationAssigned)
    def _assigned(self, out: list[Change], e: EventEnvelope, event: ConversationAssigned) -> None:
        out.append(Update("conversations", {"id": _id(e)}, {
            "assignee_id": event.assignee_id, "team_id": event.team_id, "updated_at": e.occurred_at,
            "last_activity_at": e.occurred_at}))

    @on(ConversationUpdated)
    def _updated(self, out: list[Change], e: EventEnvelope, event: ConversationUpdated) -> None:
        out.append(Update("conversations", {"id": _id(e)}, {
            "priority": event.priority, "labels": list(event.labels), "updated_at": e.occurred_at,
            "last_activity_at": e.occurred_at}))

    @on(MessageCreated)
    def _message(self, out: list[Change], e: EventEnvelope, event: MessageCreated) -> None:
        message_id = _id(e)
        kind, container_id = (("conversation", event.conversation_id) if event.conversation_id is not None
                              else ("chat", event.chat_id))
        out.append(Insert("messages", {
            "id": message_id, "position": e.position, "container_kind": kind, "container_id": container_id,
            "conversation_id": event.conversation_id, "chat_id": event.chat_id, "customer_id": event.customer_id,
            "author_id": event.author_id, "direction": event.direction, "private": event.private,
            "key_subject_id": event.key_subject_id, "body_sealed": event.sealed.get("body"),
            "attachment_ids": list(event.attachment_ids), "version": 1, "deleted": False, "erased": False,
            "created_at": e.occurred_at, "edited_at": None}))
        out.append(Insert("message_versions", {
            "message_id": message_id, "version": 1, "key_subject_id": event.key_subject_id,
            "body_sealed": event.sealed.get("body"), "editor_id": event.author_id, "edited_at": e.occurred_at}))
        if kind == "conversation":
            out.append(Update("conversations", {"id": container_id},
                              {"last_message_at": e.occurred_at, "last_activity_at": e.occurred_at}))
        else:
            out.append(Update("chats", {"id": container_id},
                              {"last_message_at": e.occurred_at, "updated_at": e.occurred_at}))

    @on(MessageEdited)
    def _edited(self, out: list[Change], e: EventEnvelope, event: MessageEdited) -> None:
        message_id = _id(e)
        out.append(Update("messages", {"id": message_id}, {
            "body_sealed": event.sealed.get("body"), "version": event.body_version, "edited_at": e.occurred_at}))
        out.append(Insert("message_versions", {
            "message_id": message_id, "version": event.body_version, "key_subject_id": event.key_subject_id,
            "body_sealed": event.sealed.get("body"), "editor_id": event.editor_id, "edited_at": e.occurred_at}))

    @on(MessageDeleted)
    def _deleted(self, out: list[Change], e: EventEnvelope, event: MessageDeleted) -> None:
        out.append(Update("messages", {"id": _id(e)}, {"deleted": True, "body_sealed": None,
                                                       "edited_at": e.occurred_at}))

    @on(ConversationRead)
    def _read(self, out: list[Change], e: EventEnvelope, event: ConversationRead) -> None:
        kind, container_id = (("conversation", event.conversation_id) if event.conversation_id is not None
                              else ("chat", event.chat_id))
        out.append(Upsert("read_cursors", {
            "user_id": event.user_id, "container_id": container_id, "container_kind": kind,
            "message_id": event.message_id, "position": event.position, "read_at": e.occurred_at}))

    @on(ChatCreated)
    def _chat(self, out: list[Change], e: EventEnvelope, event: ChatCreated) -> None:
        chat_id = _id(e)
        out.append(Insert("chats", {
            "id": chat_id, "kind": event.kind, "creator_id": event.creator_id,
            "title_sealed": event.sealed.get("title"), "created_at": e.occurred_at, "updated_at": e.occurred_at,
            "last_message_at": None}))
        out.extend(Insert("chat_members", {"chat_id": chat_id, "user_id": m}) for m in event.member_ids)

    @on(ChatMemberAdded)
    def _member_added(self, out: list[Change], e: EventEnvelope, event: ChatMemberAdded) -> None:
        out.append(Insert("chat_members", {"chat_id": _id(e), "user_id": event.user_id}))
        out.append(Update("chats", {"id": _id(e)}, {"updated_at": e.occurred_at}))

    @on(ChatMemberRemoved)
    def _member_removed(self, out: list[Change], e: EventEnvelope, event: ChatMemberRemoved) -> None:
        out.append(Delete("chat_members", {"chat_id": _id(e), "user_id": event.user_id}))
        out.append(Delete("read_cursors", {"container_id": _id(e), "user_id": event.user_id}))
        out.append(Update("chats", {"id": _id(e)}, {"updated_at": e.occurred_at}))

    @on(SubjectErased)
    def _erased(self, out: list[Change], e: EventEnvelope, event: SubjectErased) -> None:
        """The key is shredded: the subject's conversations and chats say so at once (a handful of rows: an
        erased customer's conversation takes no new message), their read cursors go, and the purge of the
        ciphertexts of their messages is queued (``subject_purges``: the sweep's, then ``subject_purged``)."""
        if not event.shredded:
            return  # a repeated request, or a block: confirmed, nothing changes
        subject_id = _id(e)
        out.append(Update("conversations", {"customer_id": subject_id}, {"subject_sealed": None, "erased": True}))
        out.append(Update("chats", {"creator_id": subject_id}, {"title_sealed": None}))
        out.append(Delete("read_cursors", {"user_id": subject_id}))
        out.append(Insert("subject_purges", {"subject_id": subject_id, "erased_at": e.occurred_at, "purged_at": None,
                                             "messages": None, "search_entries": None, "attachments": None}))

    @on(SubjectPurged)
    def _purged(self, out: list[Change], e: EventEnvelope, event: SubjectPurged) -> None:
        subject_id = _id(e)
        out.append(Update("messages", {"key_subject_id": subject_id}, {"body_sealed": None, "erased": True}))
        out.append(Update("message_versions", {"key_subject_id": subject_id}, {"body_sealed": None}))
        out.append(Update("subject_purges", {"subject_id": subject_id}, {
            "purged_at": e.occurred_at, "messages": event.messages, "search_entries": event.search_entries,
            "attachments": event.attachments}))


_CHANGES = _Changes()


def changes(envelope: EventEnvelope) -> list[Change]:
    """The row changes ``envelope`` makes (none for an event no read model folds)."""
    out: list[Change] = []
    _CHANGES.on.dispatch(_CHANGES, envelope, out)
    return out


def _where(table: sa.Table, where: Mapping[str, Any]) -> Any:
    return sa.and_(*(table.c[name] == value for name, value in where.items()))


# One INSERT per table, built once: a statement built with its values for every row cost more CPU than the row's
# execution (every message sent inserts two rows).
_INSERTS = {name: table.insert() for name, table in _BY_NAME.items()}


# On PostgreSQL, an event's changes that are inserts and updates of distinct tables (a message sent: its row,
# its first version, its conversation's last activity) are one statement, the first ones as data-modifying
# CTEs of the last (each runs once, all in one snapshot: distinct tables never see each other's rows, and
# messaging's tables have no foreign keys), one round trip instead of one per change. Built once per shape.
_Shape = tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...]  # (kind, table, columns, where)
_COMBINED: dict[_Shape, Any] = {}


def _shape(found: list[Change]) -> _Shape | None:
    """The changes' shape if they can be one statement (two or more inserts/updates of distinct tables; no
    update matching a column to None, which :func:`_where` says as ``IS NULL`` and a parameter cannot)."""
    if len(found) < 2 or len({c.table for c in found}) != len(found):
        return None
    shape = []
    for change in found:
        if isinstance(change, Insert):
            shape.append(("insert", change.table, tuple(change.row), ()))
        elif isinstance(change, Update) and None not in change.where.values():
            shape.append(("update", change.table, tuple(change.values), tuple(change.where)))
        else:
            return None
    return tuple(shape)


def _combined(shape: _Shape) -> Any:
    statement = _COMBINED.get(shape)
    if statement is not None:
        return statement
    parts = []
    for i, (kind, name, columns, where) in enumerate(shape):
        table = _BY_NAME[name]
        values = {c: sa.bindparam(f"c{i}_{c}", type_=table.c[c].type) for c in columns}
        if kind == "insert":
            parts.append(table.insert().values(values))
        else:
            parts.append(table.update().where(*(table.c[w] == sa.bindparam(f"w{i}_{w}", type_=table.c[w].type)
                                                for w in where)).values(values))
    statement = parts[-1].add_cte(*(part.cte(f"change_{i}") for i, part in enumerate(parts[:-1])))
    _COMBINED[shape] = statement
    return statement


def _parameters(found: list[Change]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, change in enumerate(found):
        if isinstance(change, Insert):
            out.update({f"c{i}_{c}": v for c, v in change.row.items()})
        elif isinstance(change, Update):
            out.update({f"c{i}_{c}": v for c, v in change.values.items()})
            out.update({f"w{i}_{c}": v for c, v in change.where.items()})
    return out


class MessagingProjection:
    """Every read model of messaging, folded in the event's own transaction."""

    name = "messaging"
    tables = TABLES
    on = _Changes.on  # the events it folds (what the event catalogue lists as read by it)

    def apply(self, conn: Connection, event: EventEnvelope) -> None:
        found = changes(event)
        if conn.dialect.name == "postgresql":
            shape = _shape(found)
            if shape is not None:
                conn.execute(_combined(shape), _parameters(found))
                return
        for change in found:
            table = _BY_NAME[change.table]
            if isinstance(change, Insert):  # the table's own INSERT with the row as parameters (built once)
                conn.execute(_INSERTS[change.table], change.row)
            elif isinstance(change, Update):
                conn.execute(table.update().where(_where(table, change.where)).values(**change.values))
            elif isinstance(change, Delete):
                conn.execute(table.delete().where(_where(table, change.where)))
            else:
                key = {k: change.row[k] for k in KEYS[change.table]}
                values = {k: v for k, v in change.row.items() if k not in key}
                if not conn.execute(table.update().where(_where(table, key)).values(**values)).rowcount:
                    conn.execute(_INSERTS[change.table], change.row)


class MemoryMessagingProjection:
    """The same row changes on the in-memory store (unit tests). Rows are keyed by their primary key."""

    def apply(self, tx: MemoryTransaction, event: EventEnvelope) -> None:
        for change in changes(event):
            keys = KEYS[change.table]
            if isinstance(change, Insert | Upsert):
                row = dict(change.row)
                key = row[keys[0]] if len(keys) == 1 else tuple(row[k] for k in keys)
                if isinstance(change, Insert) and tx.get(change.table, key) is not None:
                    raise ValueError(f"{change.table}: duplicate key {key!r}")
                tx.put(change.table, key, row)
                continue
            for key, row in tx.table(change.table).items():
                if all(row.get(k) == v for k, v in change.where.items()):
                    if isinstance(change, Delete):
                        tx.delete(change.table, key)
                    else:
                        tx.update(change.table, key, **change.values)


def projections() -> list[MessagingProjection]:
    return [MessagingProjection()]
