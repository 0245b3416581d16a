"""Messaging's repositories and read models in memory, for unit tests of every use case.

Rows are dicts with the columns of :mod:`.tables`, kept in the unit of work's
:class:`~upgestao_kernel.fakes.MemoryTransaction` and folded from the recorded events by the same row
changes as the SQL projection (:mod:`.projections`). The search index is H4's :class:`MemorySearchIndex`,
one per store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from upgestao_kernel.context import RequestContext
from upgestao_kernel.fakes import FakeUnitOfWork, FakeVault, MemoryRepository, MemoryStore

from ..domain.conversations import SNOOZED
from ..domain.visibility import ConversationScope
from .attachment_store import MemoryAttachmentStore
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
from .projections import MemoryMessagingProjection
from .search_index import MemorySearchIndex

SERVICE = "messaging"


class MemoryTeams(MemoryRepository):
    def _record(self, row: Mapping) -> TeamRecord:
        members = sorted(m["user_id"] for m in self.tx.table("team_members").values() if m["team_id"] == row["id"])
        return TeamRecord.of(row, member_ids=members)

    def get(self, team_id: str) -> TeamRecord | None:
        row = self.tx.get("teams", team_id)
        return self._record(row) if row else None

    def all(self) -> list[TeamRecord]:
        return sorted((self._record(r) for r in self.tx.table("teams").values()), key=lambda t: (t.name, t.id))

    def ids_of_member(self, user_id: str) -> frozenset[str]:
        return frozenset(m["team_id"] for m in self.tx.table("team_members").values() if m["user_id"] == user_id)

    def ids_of_members(self, user_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        return {user_id: self.ids_of_member(user_id) for user_id in user_ids}


class MemoryConversations(MemoryRepository):
    def _all(self) -> list[ConversationRecord]:
        return [ConversationRecord.of(r) for r in self.tx.table("conversations").values()]

    def get(self, conversation_id: str) -> ConversationRecord | None:
        row = self.tx.get("conversations", conversation_id)
        return ConversationRecord.of(row) if row else None

    def erased_ids(self, conversation_ids: Sequence[str]) -> set[str]:
        rows = (self.tx.get("conversations", i) for i in conversation_ids)
        return {r["id"] for r in rows if r and r["erased"]}

    def page(self, scope: ConversationScope, filters: Mapping[str, str], limit: int,
             after: ActivityCursor | None) -> list[ConversationRecord]:
        def match(c: ConversationRecord) -> bool:
            for name, value in filters.items():
                if name == "label":
                    if value not in c.labels:
                        return False
                elif getattr(c, name) != value:
                    return False
            return scope.admits(c.assignee_id, c.team_id) and (
                after is None or (c.last_activity_at, c.id) < after)

        rows = sorted((c for c in self._all() if match(c)), key=lambda c: (c.last_activity_at, c.id), reverse=True)
        return rows[:limit]

    def snoozed_until_before(self, now: datetime, limit: int) -> list[str]:
        due = [c for c in self._all() if c.status == SNOOZED and c.snoozed_until and c.snoozed_until <= now]
        return [c.id for c in sorted(due, key=lambda c: (c.snoozed_until, c.id))][:limit]

    def of_customer(self, customer_id: str) -> list[ConversationRecord]:
        return sorted((c for c in self._all() if c.customer_id == customer_id), key=lambda c: (c.created_at, c.id))

    def customer_ids(self, channel: str | None, limit: int, after: str | None) -> list[str]:
        ids = {c.customer_id for c in self._all() if (channel is None or c.channel == channel)
               and (after is None or c.customer_id > after)}
        return sorted(ids)[:limit]


class MemoryMessages(MemoryRepository):
    def _all(self) -> list[MessageRecord]:
        return sorted((MessageRecord.of(r) for r in self.tx.table("messages").values()), key=lambda m: m.position)

    def get(self, message_id: str) -> MessageRecord | None:
        row = self.tx.get("messages", message_id)
        return MessageRecord.of(row) if row else None

    def get_many(self, message_ids: Sequence[str]) -> dict[str, MessageRecord]:
        return {m.id: m for m in (self.get(i) for i in message_ids) if m is not None}

    def _in(self, kind: str, container_id: str) -> list[MessageRecord]:
        return [m for m in self._all() if (m.container_kind, m.container_id) == (kind, container_id)]

    def before(self, kind: str, container_id: str, anchor_id: str | None, limit: int) -> list[MessageRecord]:
        rows = self._in(kind, container_id)
        if anchor_id is not None:
            anchor = next((m for m in rows if m.id == anchor_id), None)
            rows = [m for m in rows if anchor is not None and m.position < anchor.position]
        return list(reversed(rows))[:limit]

    def after(self, kind: str, container_id: str, anchor_id: str, limit: int) -> list[MessageRecord]:
        rows = self._in(kind, container_id)
        anchor = next((m for m in rows if m.id == anchor_id), None)
        return [m for m in rows if anchor is not None and m.position > anchor.position][:limit]

    def versions(self, message_id: str) -> list[VersionRecord]:
        rows = [VersionRecord.of(r) for r in self.tx.table("message_versions").values()
                if r["message_id"] == message_id]
        return sorted(rows, key=lambda v: v.version)

    def in_containers(self, container_ids: Sequence[str]) -> list[MessageRecord]:
        wanted = set(container_ids)
        return [m for m in self._all() if m.container_id in wanted]

    def authored_by(self, author_id: str) -> list[MessageRecord]:
        return [m for m in self._all() if m.author_id == author_id]

    def count_sealed_under(self, subject_id: str) -> int:
        return sum(1 for m in self._all() if m.key_subject_id == subject_id and not m.erased)

    def ids_sealed_under(self, subject_id: str) -> list[str]:
        return [m.id for m in self._all() if m.key_subject_id == subject_id]

    def pending_purges(self, limit: int) -> list[str]:
        rows = sorted((r for r in self.tx.table("subject_purges").values() if r["purged_at"] is None),
                      key=lambda r: (r["erased_at"], r["subject_id"]))
        return [r["subject_id"] for r in rows[:limit]]

    def unread_counts(self, user_id: str, container_ids: Sequence[str]) -> dict[str, int]:
        wanted = set(container_ids)
        cursors = {r["container_id"]: r["position"] for r in self.tx.table("read_cursors").values()
                   if r["user_id"] == user_id}
        counts = dict.fromkeys(container_ids, 0)
        for m in self._all():
            if (m.container_id in wanted and not m.deleted and m.author_id != user_id
                    and m.position > cursors.get(m.container_id, 0)):
                counts[m.container_id] += 1
        return counts

    def unread(self, user_id: str, scope: ConversationScope) -> list[tuple[str, str, int]]:
        conversations = {c["id"]: c for c in self.tx.table("conversations").values()
                         if scope.admits(c["assignee_id"], c["team_id"])}
        chats = {m["chat_id"] for m in self.tx.table("chat_members").values() if m["user_id"] == user_id}
        cursors = {r["container_id"]: r["position"] for r in self.tx.table("read_cursors").values()
                   if r["user_id"] == user_id}
        counts: dict[tuple[str, str], int] = {}
        for m in self._all():
            visible = (m.container_kind == CONVERSATION and m.container_id in conversations) or (
                m.container_kind == CHAT and m.container_id in chats)
            if visible and not m.deleted and m.author_id != user_id and m.position > cursors.get(m.container_id, 0):
                key = (m.container_kind, m.container_id)
                counts[key] = counts.get(key, 0) + 1
        return [(kind, cid, n) for (kind, cid), n in sorted(counts.items())]


class MemoryChats(MemoryRepository):
    def _record(self, row: Mapping) -> ChatRecord:
        members = [m["user_id"] for m in self.tx.table("chat_members").values() if m["chat_id"] == row["id"]]
        return ChatRecord.of(row, member_ids=sorted(members))

    def get(self, chat_id: str) -> ChatRecord | None:
        row = self.tx.get("chats", chat_id)
        return self._record(row) if row else None

    def of_member(self, user_id: str) -> list[ChatRecord]:
        ids = {m["chat_id"] for m in self.tx.table("chat_members").values() if m["user_id"] == user_id}
        chats = [self._record(self.tx.get("chats", i)) for i in ids]
        return sorted(chats, key=lambda c: (c.last_message_at or c.created_at, c.id), reverse=True)

    def created_by(self, user_id: str) -> list[ChatRecord]:
        return [self._record(r) for r in self.tx.table("chats").values() if r["creator_id"] == user_id]


class MemoryReads(MemoryRepository):
    def get(self, user_id: str, container_id: str) -> ReadCursor | None:
        row = self.tx.get("read_cursors", (user_id, container_id))
        return ReadCursor.of(row) if row else None

    def of_container(self, container_id: str) -> list[ReadCursor]:
        rows = [ReadCursor.of(r) for r in self.tx.table("read_cursors").values() if r["container_id"] == container_id]
        return sorted(rows, key=lambda r: r.user_id)

    def of_user(self, user_id: str) -> list[ReadCursor]:
        rows = [ReadCursor.of(r) for r in self.tx.table("read_cursors").values() if r["user_id"] == user_id]
        return sorted(rows, key=lambda r: r.container_id)


class MemoryRepositories:
    def __init__(self, uow: FakeUnitOfWork, search_index: MemorySearchIndex) -> None:
        self._uow = uow
        self.teams = MemoryTeams(uow)
        self.conversations = MemoryConversations(uow)
        self.messages = MemoryMessages(uow)
        self.chats = MemoryChats(uow)
        self.reads = MemoryReads(uow)
        self.search_index = search_index
        self.attachments = MemoryAttachmentStore(uow)

    def search_visibility(self, viewer_id: str, scope: ConversationScope, chats: bool) -> Callable[[str, str], bool]:
        tx = self._uow.conn

        def visible(kind: str, container_id: str) -> bool:
            if kind == CONVERSATION:
                row = tx.get("conversations", container_id)
                return row is not None and scope.admits(row["assignee_id"], row["team_id"])
            return chats and kind == CHAT and tx.get("chat_members", (container_id, viewer_id)) is not None

        return visible


def memory_units(store: MemoryStore | None = None
                 ) -> tuple[MemoryStore, Callable[[RequestContext], FakeUnitOfWork], MemorySearchIndex]:
    """A store for messaging, a factory of its fake units of work (``make(context)``) and the search index
    they share."""
    store = store if store is not None else MemoryStore(service=SERVICE)
    index = MemorySearchIndex()
    vault = FakeVault()

    def make(context: RequestContext) -> FakeUnitOfWork:
        return FakeUnitOfWork(store, context, projections=[MemoryMessagingProjection()], vault=vault,
                              repositories=lambda uow: MemoryRepositories(uow, index))

    return store, make, index
