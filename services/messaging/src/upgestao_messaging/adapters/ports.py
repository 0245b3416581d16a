"""What messaging's use cases need from storage and from the world outside, as protocols.

Repositories (``uow.teams``, ``uow.conversations``, ``uow.messages``, ``uow.chats``, ``uow.reads``,
``uow.search_index``) are built on a unit of work: SQL in :mod:`.sql_repositories`, in memory in
:mod:`.memory_repositories`. Every query that lists or counts conversations takes the viewer's
:class:`~..domain.visibility.ConversationScope` and filters by it in the query itself (never after).
The world outside: identity's directory of people (:class:`Directory`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from operator import itemgetter
from typing import Any, Protocol

from upgestao_kernel.unit_of_work import UnitOfWorkPort

from ..domain.visibility import ConversationScope

CONVERSATION, CHAT = "conversation", "chat"
CONVERSATION_FILTERS = ("status", "assignee_id", "team_id", "label", "customer_id")


_FIELDS: dict[type, tuple[tuple[str, ...], Callable[[Mapping[str, Any]], tuple[Any, ...]]]] = {}


def _fields_of(cls: type) -> tuple[tuple[str, ...], Callable[[Mapping[str, Any]], tuple[Any, ...]]]:
    """A record class's field names, and a getter of their values from a row in that order (built once:
    a page of messages builds 50 records, and looking the fields up again for each was a third of it)."""
    found = _FIELDS.get(cls)
    if found is None:
        names = tuple(f.name for f in fields(cls))
        getter = itemgetter(*names)
        found = _FIELDS[cls] = (names, getter if len(names) > 1 else lambda row: (getter(row),))
    return found


class _Record:
    @classmethod
    def of(cls, row: Mapping[str, Any], **extra: Any) -> Any:
        names, values = _fields_of(cls)
        if not extra:
            return cls(*values(row))
        return cls(**{name: extra[name] if name in extra else row[name] for name in names})

    @classmethod
    def all_of(cls, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[Any]:
        """The records of ``rows``, tuples of ``columns``' values: taken as they are when the columns are the
        record's fields in order (a table's own row for its record: no lookup by name), else by name."""
        names, values = _fields_of(cls)
        if tuple(columns) == names:
            return [cls(*row) for row in rows]
        return [cls(*values(dict(zip(columns, row, strict=True)))) for row in rows]


@dataclass(frozen=True)
class TeamRecord(_Record):
    id: str
    name: str
    member_ids: list[str]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ConversationRecord(_Record):
    id: str
    customer_id: str
    channel: str
    status: str
    snoozed_until: datetime | None
    priority: str
    labels: list[str]
    assignee_id: str | None
    team_id: str | None
    subject_sealed: str | None
    erased: bool
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None
    last_activity_at: datetime


@dataclass(frozen=True)
class MessageRecord(_Record):
    id: str
    position: int
    container_kind: str
    container_id: str
    conversation_id: str | None
    chat_id: str | None
    customer_id: str | None
    author_id: str
    direction: str
    private: bool
    key_subject_id: str
    body_sealed: str | None
    attachment_ids: list[str]
    version: int
    deleted: bool
    erased: bool
    created_at: datetime
    edited_at: datetime | None


@dataclass(frozen=True)
class VersionRecord(_Record):
    message_id: str
    version: int
    key_subject_id: str
    body_sealed: str | None
    editor_id: str
    edited_at: datetime


@dataclass(frozen=True)
class ChatRecord(_Record):
    id: str
    kind: str
    creator_id: str
    title_sealed: str | None
    member_ids: list[str]
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None


@dataclass(frozen=True)
class ReadCursor(_Record):
    user_id: str
    container_kind: str
    container_id: str
    message_id: str
    position: int
    read_at: datetime


ActivityCursor = tuple[datetime, str]  # (last_activity_at, id) of the last conversation of the previous page


class Teams(Protocol):
    def get(self, team_id: str) -> TeamRecord | None: ...

    def all(self) -> list[TeamRecord]: ...

    def ids_of_member(self, user_id: str) -> frozenset[str]: ...

    def ids_of_members(self, user_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        """The team ids of each of ``user_ids`` (every one of them a key: no team, an empty set)."""
        ...


class Conversations(Protocol):
    def get(self, conversation_id: str) -> ConversationRecord | None: ...

    def erased_ids(self, conversation_ids: Sequence[str]) -> set[str]:
        """Those of ``conversation_ids`` whose customer was erased (one query)."""

    def page(self, scope: ConversationScope, filters: Mapping[str, str], limit: int,
             after: ActivityCursor | None) -> list[ConversationRecord]:
        """Visible conversations matching ``filters``, by last activity newest first (then id descending)."""

    def snoozed_until_before(self, now: datetime, limit: int) -> list[str]:
        """Ids of snoozed conversations whose time has come."""

    def of_customer(self, customer_id: str) -> list[ConversationRecord]: ...

    def customer_ids(self, channel: str | None, limit: int, after: str | None) -> list[str]: ...


class Messages(Protocol):
    def get(self, message_id: str) -> MessageRecord | None: ...

    def get_many(self, message_ids: Sequence[str]) -> dict[str, MessageRecord]: ...

    def before(self, kind: str, container_id: str, anchor_id: str | None, limit: int) -> list[MessageRecord]:
        """The ``limit`` messages of the container before its message ``anchor_id`` (None: the latest), newest
        first; none if ``anchor_id`` is not a message of the container."""

    def after(self, kind: str, container_id: str, anchor_id: str, limit: int) -> list[MessageRecord]:
        """The ``limit`` messages of the container after its message ``anchor_id``, oldest first; none if
        ``anchor_id`` is not a message of the container."""

    def versions(self, message_id: str) -> list[VersionRecord]:
        """Every version, first to last."""

    def in_containers(self, container_ids: Sequence[str]) -> list[MessageRecord]:
        """Every message of these containers, oldest first (a data subject's export)."""

    def authored_by(self, author_id: str) -> list[MessageRecord]: ...

    def count_sealed_under(self, subject_id: str) -> int:
        """Messages whose body is sealed under ``subject_id`` and not yet erased."""

    def ids_sealed_under(self, subject_id: str) -> list[str]: ...

    def pending_purges(self, limit: int) -> list[str]:
        """Erased subjects whose messages' ciphertexts and search entries are still to purge, oldest first."""

    def unread_counts(self, user_id: str, container_ids: Sequence[str]) -> dict[str, int]:
        """Unread messages per container among ``container_ids`` (visibility already checked by the caller)."""

    def unread(self, user_id: str, scope: ConversationScope) -> list[tuple[str, str, int]]:
        """``(container_kind, container_id, unread)`` for each visible conversation and each chat the user
        is a member of with unread messages: not deleted, not the user's own, after the user's cursor."""


class Chats(Protocol):
    def get(self, chat_id: str) -> ChatRecord | None: ...

    def of_member(self, user_id: str) -> list[ChatRecord]:
        """The user's chats, by last message (or creation) newest first."""

    def created_by(self, user_id: str) -> list[ChatRecord]: ...


class Reads(Protocol):
    def get(self, user_id: str, container_id: str) -> ReadCursor | None: ...

    def of_container(self, container_id: str) -> list[ReadCursor]: ...

    def of_user(self, user_id: str) -> list[ReadCursor]: ...


class SearchIndex(Protocol):
    """H4's index (``adapters/search_index.py``): keyed hashes of normalised words, per message."""

    def add(self, *, message_id: str, position: int, container_kind: str, container_id: str, subject_id: str,
            terms: Sequence[str]) -> None: ...

    def replace(self, *, message_id: str, position: int, container_kind: str, container_id: str,
                subject_id: str, terms: Sequence[str]) -> None: ...

    def remove(self, message_id: str) -> None: ...

    def purge_subject(self, subject_id: str) -> int: ...

    def delete_subject(self, subject_id: str) -> int:
        """Every entry of the subject's messages deleted; how many."""

    def find(self, terms: Sequence[str], *, visible: Any, container: tuple[str, str] | None = None,
             limit: int, before_position: int | None = None) -> list[tuple[int, str]]: ...


class MessagingUnitOfWork(UnitOfWorkPort, Protocol):
    teams: Teams
    conversations: Conversations
    messages: Messages
    chats: Chats
    reads: Reads
    search_index: SearchIndex
    attachments: Any  # H4's attachment store (``adapters/attachment_store.py``)

    def search_visibility(self, viewer_id: str, scope: ConversationScope, chats: bool) -> Any:
        """The visibility rule in the index's terms (a SQL expression builder, or a predicate in memory)."""


@dataclass(frozen=True)
class Person:
    """What identity's directory says of an id: no personal data (no name, no address)."""

    id: str
    kind: str  # "staff" | "customer"
    role: str | None
    active: bool

    @property
    def active_staff(self) -> bool:
        return self.kind == "staff" and self.active

    @property
    def active_customer(self) -> bool:
        return self.kind == "customer" and self.active


class Directory(Protocol):
    def lookup(self, ids: Sequence[str]) -> dict[str, Person]:
        """The people among ``ids`` identity knows (unknown ids absent). Raises when identity cannot answer."""
