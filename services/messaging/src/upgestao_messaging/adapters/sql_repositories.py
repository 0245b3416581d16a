"""Messaging's repositories on its SQL database (the unit of work's connection).

Lists are one query each (members of many teams or chats: one more query for all of them, never one per
row); the visibility rule reaches SQL through :func:`scope_clause`, the same
:class:`~..domain.visibility.ConversationScope` that decides one conversation.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from upgestao_kernel.unit_of_work import UnitOfWork

from ..domain.conversations import SNOOZED
from ..domain.visibility import ConversationScope
from .attachment_store import SqlAttachmentStore
from .ports import (
    CHAT,
    CONVERSATION,
    ActivityCursor,
    ChatRecord,
    ConversationRecord,
    MessageRecord,
    ReadCursor,
    TeamRecord,
    VersionRecord,
)
from .search_index import SqlSearchIndex
from .tables import (
    chat_members,
    chats,
    conversations,
    message_versions,
    messages,
    read_cursors,
    subject_purges,
    team_members,
    teams,
)

c = conversations.c
m = messages.c


def scope_clause(scope: ConversationScope, table: sa.Table = conversations) -> sa.ColumnElement[bool]:
    """The visibility rule over ``table``'s ``assignee_id`` and ``team_id`` columns."""
    if scope.everything:
        return sa.true()
    parts: list[sa.ColumnElement[bool]] = []
    if scope.assigned_to is not None:
        parts.append(table.c.assignee_id == scope.assigned_to)
    if scope.team_ids:
        parts.append(table.c.team_id.in_(sorted(scope.team_ids)))
    if scope.unassigned_team_ids:
        parts.append(sa.and_(table.c.assignee_id.is_(None), table.c.team_id.in_(sorted(scope.unassigned_team_ids))))
    return sa.or_(*parts) if parts else sa.false()


class _Repository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    def _rows(self, query: Any) -> list[Mapping[str, Any]]:
        return [row._mapping for row in self._uow.conn.execute(query)]


def _members(conn: Any, table: sa.Table, key: str, ids: Iterable[str]) -> dict[str, list[str]]:
    ids = list(ids)
    out: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        for row in conn.execute(sa.select(table.c[key], table.c.user_id).where(table.c[key].in_(ids))
                                .order_by(table.c.user_id)):
            out[row[0]].append(row[1])
    return out


# The statements of every request's hot path, built once with parameters (building one with its values
# costs SQLAlchemy a cache key each time).
class _JsonList(sa.types.TypeDecorator):
    """A JSON list column read as its text and decoded here: psycopg2 decodes a ``json`` column with
    ``json.loads`` row by row (a page of 50 messages: 50 decodings, of ``[]`` nearly always)."""

    impl = sa.Text
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None or type(value) is not str:
            return value
        return [] if value == "[]" else json.loads(value)


# messages' columns in the table's order (its record's fields), attachment_ids read by _JsonList
_MESSAGE_COLUMNS = [sa.type_coerce(sa.cast(column, sa.Text), _JsonList).label(column.name)
                    if column is m.attachment_ids else column for column in messages.c]
_CONVERSATION = conversations.select().where(c.id == sa.bindparam("id"))
_MESSAGE = sa.select(*_MESSAGE_COLUMNS).where(m.id == sa.bindparam("id"))
_MESSAGES = sa.select(*_MESSAGE_COLUMNS).where(m.id.in_(sa.bindparam("ids", expanding=True)))
_TEAMS_OF = sa.select(team_members.c.team_id).where(team_members.c.user_id == sa.bindparam("user_id"))


def _page_query(older: bool, anchored: bool) -> sa.Select:
    """A page of a container's messages: the older ones (before the anchor message if anchored, else the
    latest) from the newest down, or the newer ones after the anchor from the oldest up. The anchor's position
    is a subquery of the page's own (an anchor that is not a message of the container: no rows), not a
    round trip before it. Both container columns: the (container_kind, container_id, position) index walks the
    page in order, no sort."""
    kind, container_id = sa.bindparam("kind"), sa.bindparam("container_id")
    query = sa.select(*_MESSAGE_COLUMNS).where(m.container_kind == kind, m.container_id == container_id)
    if anchored:
        anchor = (sa.select(m.position).where(m.id == sa.bindparam("anchor_id"), m.container_kind == kind,
                                              m.container_id == container_id).scalar_subquery())
        query = query.where(m.position < anchor if older else m.position > anchor)
    return query.order_by(m.position.desc() if older else m.position).limit(sa.bindparam("limit"))


# The search's visibility rule reads these aliases, not the plain tables: over a query FROM conversations (or
# chat_members) the plain tables would not correlate, and ``conversations.id = conversations.id`` admitted every
# conversation once the viewer saw any (found by the bench at 100,000 messages: an attendant's search hit
# another's conversations). Made once: an alias made again costs its column collection each search.
_SEEN_CONVERSATION = conversations.alias("seen_conversation")
_SEEN_MEMBER = chat_members.alias("seen_member")

_PAGE = {(older, anchored): _page_query(older, anchored) for older in (True, False) for anchored in (True, False)}


class SqlTeams(_Repository):
    def _records(self, rows: list[Mapping[str, Any]]) -> list[TeamRecord]:
        members = _members(self._uow.conn, team_members, "team_id", (r["id"] for r in rows))
        return [TeamRecord.of(r, member_ids=members[r["id"]]) for r in rows]

    def get(self, team_id: str) -> TeamRecord | None:
        rows = self._records(self._rows(teams.select().where(teams.c.id == team_id)))
        return rows[0] if rows else None

    def all(self) -> list[TeamRecord]:
        return self._records(self._rows(teams.select().order_by(teams.c.name, teams.c.id)))

    def ids_of_member(self, user_id: str) -> frozenset[str]:
        return frozenset(self._uow.conn.execute(_TEAMS_OF, {"user_id": user_id}).scalars())

    def ids_of_members(self, user_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        found: dict[str, set[str]] = {user_id: set() for user_id in user_ids}
        if found:
            query = sa.select(team_members.c.user_id, team_members.c.team_id).where(
                team_members.c.user_id.in_(sorted(found)))
            for user_id, team_id in self._uow.conn.execute(query):
                found[user_id].add(team_id)
        return {user_id: frozenset(ids) for user_id, ids in found.items()}


class SqlConversations(_Repository):
    def get(self, conversation_id: str) -> ConversationRecord | None:
        row = self._uow.conn.execute(_CONVERSATION, {"id": conversation_id}).mappings().first()
        return ConversationRecord.of(row) if row is not None else None

    def erased_ids(self, conversation_ids: Sequence[str]) -> set[str]:
        if not conversation_ids:
            return set()
        query = sa.select(c.id).where(c.id.in_(list(conversation_ids)), c.erased.is_(True))
        return set(self._uow.conn.execute(query).scalars())

    def page(self, scope: ConversationScope, filters: Mapping[str, str], limit: int,
             after: ActivityCursor | None) -> list[ConversationRecord]:
        query = conversations.select().where(scope_clause(scope))
        for name, value in filters.items():
            if name == "label":
                # labels are a JSON list: matched in Python below, the page read in chunks until full
                continue
            query = query.where(c[name] == value)
        if after is not None:
            query = query.where(sa.tuple_(c.last_activity_at, c.id) < sa.tuple_(*after))
        query = query.order_by(c.last_activity_at.desc(), c.id.desc())
        label = filters.get("label")
        if label is None:
            return [ConversationRecord.of(r) for r in self._rows(query.limit(limit))]
        out: list[ConversationRecord] = []
        for row in self._uow.conn.execute(query).mappings():
            if label in (row["labels"] or []):
                out.append(ConversationRecord.of(row))
                if len(out) >= limit:
                    break
        return out

    def snoozed_until_before(self, now: datetime, limit: int) -> list[str]:
        query = (sa.select(c.id).where(c.status == SNOOZED, c.snoozed_until <= now)
                 .order_by(c.snoozed_until, c.id).limit(limit))
        return list(self._uow.conn.execute(query).scalars())

    def of_customer(self, customer_id: str) -> list[ConversationRecord]:
        query = conversations.select().where(c.customer_id == customer_id).order_by(c.created_at, c.id)
        return [ConversationRecord.of(r) for r in self._rows(query)]

    def customer_ids(self, channel: str | None, limit: int, after: str | None) -> list[str]:
        """The distinct customers of every conversation (of ``channel``), by id, after ``after``: one index
        range (``ix_conversations_customer``; with a channel, filtered along it)."""
        query = sa.select(c.customer_id).distinct()
        if channel is not None:
            query = query.where(c.channel == channel)
        if after is not None:
            query = query.where(c.customer_id > after)
        return list(self._uow.conn.execute(query.order_by(c.customer_id).limit(limit)).scalars())


class SqlMessages(_Repository):
    def _records(self, query: Any, params: Mapping[str, Any] | None = None) -> list[MessageRecord]:
        result = self._uow.conn.execute(query, params)
        return MessageRecord.all_of(result.keys(), result.all())  # the rows in one fetch, as tuples

    def get(self, message_id: str) -> MessageRecord | None:
        row = self._uow.conn.execute(_MESSAGE, {"id": message_id}).mappings().first()
        return MessageRecord.of(row) if row is not None else None

    def get_many(self, message_ids: Sequence[str]) -> dict[str, MessageRecord]:
        if not message_ids:
            return {}
        return {r.id: r for r in self._records(_MESSAGES, {"ids": list(message_ids)})}

    def _page(self, older: bool, kind: str, container_id: str, anchor_id: str | None,
              limit: int) -> list[MessageRecord]:
        params: dict[str, Any] = {"kind": kind, "container_id": container_id, "limit": limit}
        if anchor_id is not None:
            params["anchor_id"] = anchor_id
        return self._records(_PAGE[older, anchor_id is not None], params)

    def before(self, kind: str, container_id: str, anchor_id: str | None, limit: int) -> list[MessageRecord]:
        return self._page(True, kind, container_id, anchor_id, limit)

    def after(self, kind: str, container_id: str, anchor_id: str, limit: int) -> list[MessageRecord]:
        return self._page(False, kind, container_id, anchor_id, limit)

    def versions(self, message_id: str) -> list[VersionRecord]:
        query = message_versions.select().where(message_versions.c.message_id == message_id).order_by(
            message_versions.c.version)
        return [VersionRecord.of(r) for r in self._rows(query)]

    def in_containers(self, container_ids: Sequence[str]) -> list[MessageRecord]:
        if not container_ids:
            return []
        return self._records(messages.select().where(m.container_id.in_(list(container_ids))).order_by(m.position))

    def authored_by(self, author_id: str) -> list[MessageRecord]:
        return self._records(messages.select().where(m.author_id == author_id).order_by(m.position))

    def count_sealed_under(self, subject_id: str) -> int:
        query = sa.select(sa.func.count()).where(m.key_subject_id == subject_id, m.erased.is_(False))
        return int(self._uow.conn.execute(query).scalar_one())

    def ids_sealed_under(self, subject_id: str) -> list[str]:
        return list(self._uow.conn.execute(sa.select(m.id).where(m.key_subject_id == subject_id)).scalars())

    def pending_purges(self, limit: int) -> list[str]:
        """Erased subjects whose messages' ciphertexts and search entries are still to purge, oldest first."""
        p = subject_purges.c
        query = sa.select(p.subject_id).where(p.purged_at.is_(None)).order_by(p.erased_at, p.subject_id).limit(limit)
        return list(self._uow.conn.execute(query).scalars())

    def unread_counts(self, user_id: str, container_ids: Sequence[str]) -> dict[str, int]:
        counts = dict.fromkeys(container_ids, 0)
        if not container_ids:
            return counts
        r = read_cursors.alias("r")
        query = (
            sa.select(m.container_id, sa.func.count())
            .select_from(messages.outerjoin(r, sa.and_(r.c.user_id == user_id, r.c.container_id == m.container_id)))
            .where(m.container_id.in_(list(container_ids)), m.deleted.is_(False), m.author_id != user_id,
                   m.position > sa.func.coalesce(r.c.position, 0))
            .group_by(m.container_id)
        )
        counts.update({row[0]: int(row[1]) for row in self._uow.conn.execute(query)})
        return counts

    def unread(self, user_id: str, scope: ConversationScope) -> list[tuple[str, str, int]]:
        # driven from the containers the user sees: per container, the messages after their cursor are counted
        # on the (container_kind, container_id, position) index, so the cost follows what the user sees, not
        # the size of the whole table
        r = read_cursors.alias("r")

        def counted(kind: str, ids: Any) -> Any:
            inner = messages.alias("u")
            count = (sa.select(sa.func.count()).where(
                inner.c.container_kind == kind, inner.c.container_id == ids.c.id,
                inner.c.position > sa.func.coalesce(r.c.position, 0), inner.c.deleted.is_(False),
                inner.c.author_id != user_id).scalar_subquery())
            return (sa.select(sa.literal(kind).label("kind"), ids.c.id, count.label("n"))
                    .select_from(ids.outerjoin(r, sa.and_(r.c.user_id == user_id, r.c.container_id == ids.c.id))))

        seen = sa.select(c.id).where(scope_clause(scope), c.last_message_at.is_not(None)).subquery("seen")
        mine = sa.select(chat_members.c.chat_id.label("id")).where(chat_members.c.user_id == user_id).subquery("mine")
        both = sa.union_all(counted(CONVERSATION, seen), counted(CHAT, mine)).subquery("both")
        query = sa.select(both.c.kind, both.c.id, both.c.n).where(both.c.n > 0).order_by(both.c.kind, both.c.id)
        return [(row[0], row[1], int(row[2])) for row in self._uow.conn.execute(query)]


class SqlChats(_Repository):
    def _records(self, rows: list[Mapping[str, Any]]) -> list[ChatRecord]:
        members = _members(self._uow.conn, chat_members, "chat_id", (r["id"] for r in rows))
        return [ChatRecord.of(r, member_ids=members[r["id"]]) for r in rows]

    def get(self, chat_id: str) -> ChatRecord | None:
        rows = self._records(self._rows(chats.select().where(chats.c.id == chat_id)))
        return rows[0] if rows else None

    def of_member(self, user_id: str) -> list[ChatRecord]:
        mine = sa.select(chat_members.c.chat_id).where(chat_members.c.user_id == user_id)
        activity = sa.func.coalesce(chats.c.last_message_at, chats.c.created_at)
        query = chats.select().where(chats.c.id.in_(mine)).order_by(activity.desc(), chats.c.id.desc())
        return self._records(self._rows(query))

    def created_by(self, user_id: str) -> list[ChatRecord]:
        return self._records(self._rows(chats.select().where(chats.c.creator_id == user_id).order_by(chats.c.id)))


class SqlReads(_Repository):
    def get(self, user_id: str, container_id: str) -> ReadCursor | None:
        rows = self._rows(read_cursors.select().where(read_cursors.c.user_id == user_id,
                                                      read_cursors.c.container_id == container_id))
        return ReadCursor.of(rows[0]) if rows else None

    def of_container(self, container_id: str) -> list[ReadCursor]:
        query = read_cursors.select().where(read_cursors.c.container_id == container_id).order_by(
            read_cursors.c.user_id)
        return [ReadCursor.of(r) for r in self._rows(query)]

    def of_user(self, user_id: str) -> list[ReadCursor]:
        query = read_cursors.select().where(read_cursors.c.user_id == user_id).order_by(read_cursors.c.container_id)
        return [ReadCursor.of(r) for r in self._rows(query)]


class SqlRepositories:
    def __init__(self, uow: UnitOfWork) -> None:
        self.teams = SqlTeams(uow)
        self.conversations = SqlConversations(uow)
        self.messages = SqlMessages(uow)
        self.chats = SqlChats(uow)
        self.reads = SqlReads(uow)
        self.search_index = SqlSearchIndex(uow.conn)
        self.attachments = SqlAttachmentStore(uow.conn)

    @staticmethod
    def search_visibility(viewer_id: str, scope: ConversationScope, chats: bool) -> SearchVisibility:
        """The visibility rule over the index's (kind, id) columns: a visible conversation, or (with
        ``chats``) a chat of the viewer's. The same rule (viewer, scope, chats) is the same object, kept for the
        next searches (the :data:`VISIBILITY_RULES_KEPT` latest rules)."""
        return _search_visibility(viewer_id, ConversationScope(scope.everything, scope.assigned_to,
                                                               frozenset(scope.team_ids),
                                                               frozenset(scope.unassigned_team_ids)), chats)


VISIBILITY_RULES_KEPT = 512


class SearchVisibility:
    """One viewer's rule (see :meth:`SqlRepositories.search_visibility`): called with the (kind, id) columns of a
    query, the clause over them. Built once per pair of columns and kept (the search's driving alias is the same
    columns every time; building the clause cost SQLAlchemy some 600 function calls, about 0.3 ms, a search)."""

    KEPT = 4  # pairs of columns whose clause is kept (others, such as literals made for one statement, come and go)

    def __init__(self, viewer_id: str, scope: ConversationScope, chats: bool) -> None:
        self.viewer_id, self.scope, self.chats = viewer_id, scope, chats
        # (id(kind), id(container_id)) -> (kind, container_id, clause): the columns are held, so no other object
        # takes their ids while the entry exists
        self._built: dict[tuple[int, int], tuple[Any, Any, sa.ColumnElement[bool]]] = {}

    def __call__(self, kind: sa.ColumnElement, container_id: sa.ColumnElement) -> sa.ColumnElement[bool]:
        key = (id(kind), id(container_id))
        built = self._built.get(key)
        if built is not None and built[0] is kind and built[1] is container_id:
            return built[2]
        clause = self._clause(kind, container_id)
        if len(self._built) >= self.KEPT:
            self._built.clear()
        self._built[key] = (kind, container_id, clause)
        return clause

    def _clause(self, kind: sa.ColumnElement, container_id: sa.ColumnElement) -> sa.ColumnElement[bool]:
        seen_in, members = _SEEN_CONVERSATION, _SEEN_MEMBER
        seen = sa.select(seen_in.c.id).where(seen_in.c.id == container_id, scope_clause(self.scope, seen_in)).exists()
        if not self.chats:
            return sa.and_(kind == CONVERSATION, seen)
        member = sa.select(members.c.chat_id).where(members.c.chat_id == container_id,
                                                    members.c.user_id == self.viewer_id).exists()
        return sa.or_(sa.and_(kind == CONVERSATION, seen), sa.and_(kind == CHAT, member))


@functools.lru_cache(maxsize=VISIBILITY_RULES_KEPT)
def _search_visibility(viewer_id: str, scope: ConversationScope, chats: bool) -> SearchVisibility:
    return SearchVisibility(viewer_id, scope, chats)


def with_sql_repositories(uow: UnitOfWork) -> UnitOfWork:
    """``uow`` (a kernel unit of work on messaging's database) with messaging's repositories."""
    return uow.with_repositories(SqlRepositories)
