"""The message search index: keyed hashes of words, one table, the same on SQLite and PostgreSQL (R3.1).

For H1 (the messaging core), the interface:

* ``search_terms`` is declared here on the messaging ``metadata`` of :mod:`.tables`; migration 0004 creates
  it. It is no projection's table: ``rebuild`` leaves it alone (the bodies are sealed, the events cannot
  give the words back), ``reindex`` rebuilds it.
* Sending: ``SqlSearchIndex(uow.conn).add(message_id=…, position=…, container_kind="conversation"|"chat",
  container_id=…, subject_id=<the key's subject: the customer, or the chat message's author>,
  terms=hasher.hashes(body))``. Editing: ``replace(...)`` (remove, then add). Deleting: ``remove(message_id)``.
  Erasure: ``purge_subject(subject_id)``.
* ``position`` is the message's paging position and must be unique across every message (conversations
  and chats alike): the primary key is ``(term, position)``. It is also the search cursor.
* Searching: ``find(hasher.hashes(q), visible=…, container=(kind, id) | None, limit=…, before_position=…)``
  returns ``Hits``, a list of ``(position, message_id)`` newest first, every term required. ``visible`` is, in
  SQL, a function ``(container_kind_column, container_id_column) -> ColumnElement[bool]`` (visibility rule
  R2.1 as SQL), in memory a predicate ``(kind, id) -> bool``. The caller opens the bodies of the hits
  (audited) and asks for ``limit + 1`` to know whether there is a next page; and when fewer came back,
  ``hits.resume_before`` (not None) is the next page's cursor all the same: one call looks at no more than
  ``MAX_EXAMINED`` entries (words that are each common but seldom together), and says where it stopped.
  At most ``domain.search.MAX_QUERY_WORDS`` distinct words (the caller answers 422 on ``q`` for more;
  ``find`` raises ValueError).
* The key: ``load_search_key(settings, environ)`` (``MESSAGING_SEARCH_KEY``; local key file outside production).

How a search reads the index, so that it stays fast with very common words (a word present in 86,000 of
100,000 messages): the terms of the query are counted first, each count capped (``COUNT_CAP`` entries in
all), so that the rarest drives; a term present nowhere answers at once. The driving term's entries are
walked newest first along the primary key ``(term, position)`` (inside one conversation or chat, along
``(term, container_id, position)``), ``WINDOW`` entries per statement, each entry probed by primary key
for the other terms and its container for visibility, the statement stopping at ``limit`` hits (so a
common word whose hits are dense reads a few dozen entries). When the first window does not fill the page
(a viewer who sees few conversations, or words seldom together), the
rest is read container by container: the ids of the conversations and chats the viewer sees (messaging's
read models filtered by ``visible``; at most ``CONTAINERS_MAX``), then ``(term, container_id IN those)`` —
so an attendant with twenty conversations searching a word present in 86,000 messages reads the entries
of those twenty only. Whatever the words, one call looks at ``MAX_EXAMINED`` entries of the driving term
at most.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from upgestao_kernel.config import ConfigError, Settings
from upgestao_kernel.keys import decode_key, local_key_file

from ..domain.search import MAX_QUERY_WORDS, TERM_LENGTH
from .tables import chats, conversations, messages, metadata

SEARCH_KEY_VAR = "MESSAGING_SEARCH_KEY"
SEARCH_KEY_FILE = "messaging-search.key"
CONTAINER_KINDS = ("conversation", "chat")
COUNT_CAP = 5000  # index entries counted per query term, at most (only the order of the terms depends on it)
COUNT_FLOOR = 100  # ... however many terms the query has
WINDOW = 2000  # entries of the driving term walked by one statement
EXISTS_MAX = 3  # other terms probed as EXISTS, at most (more: one counting subquery)
CONTAINERS_MAX = 500  # containers looked up one by one, at most (a viewer seeing more: the walk goes on)
MAX_EXAMINED = 6000  # entries of the driving term looked at per call, at most (then ``Hits.resume_before``)


search_terms = sa.Table(
    "search_terms", metadata,
    sa.Column("term", sa.String(TERM_LENGTH), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False, autoincrement=False),
    sa.Column("message_id", sa.String(36), nullable=False),
    sa.Column("container_kind", sa.String(20), nullable=False),
    sa.Column("container_id", sa.String(36), nullable=False),
    sa.Column("subject_id", sa.String(36), nullable=False),
    sa.PrimaryKeyConstraint("term", "position", name="pk_search_terms"),
    sqlite_with_rowid=False,  # SQLite keeps the rows in primary key order: a term's entries lie together
)
sa.Index("ix_search_terms_subject", search_terms.c.subject_id)
sa.Index("ix_search_terms_message", search_terms.c.message_id)
# covering (message_id too): SQLite prefers it to the primary key for ``container_id IN (…)`` only then
sa.Index("ix_search_terms_container", search_terms.c.term, search_terms.c.container_id, search_terms.c.position,
         search_terms.c.message_id)

class Hits(list):
    """``[(position, message_id)]``, newest first. ``resume_before``: set when the work allowed for one call
    (``MAX_EXAMINED`` entries) ran out before ``limit`` hits were found — the position to pass as
    ``before_position`` to go on (a next page cursor even for a page not full); None when everything was
    looked at."""

    resume_before: int | None = None


SqlVisibility = Callable[[sa.ColumnElement, sa.ColumnElement], sa.ColumnElement[bool]]
"""The visibility rule as SQL over the index's ``container_kind`` and ``container_id`` columns."""
MemoryVisibility = Callable[[str, str], bool]
Container = tuple[str, str]  # (container_kind, container_id)


def load_search_key(settings: Settings, environ: Mapping[str, str] | None = None) -> bytes:
    """The HMAC key of the search index's terms: ``MESSAGING_SEARCH_KEY`` (base64 of 32 bytes), required in
    production; elsewhere a local key file under the data directory, created once."""
    env = os.environ if environ is None else environ
    raw = (env.get(SEARCH_KEY_VAR) or "").strip()
    if raw:
        return decode_key(SEARCH_KEY_VAR, raw)
    if settings.production:
        raise ConfigError(SEARCH_KEY_VAR, "required in production: base64 of 32 random bytes "
                                          "(changing it later means `reindex`)")
    return local_key_file(settings, SEARCH_KEY_VAR, SEARCH_KEY_FILE)


def _check_entry(container_kind: str, position: int, terms: Sequence[str]) -> None:
    if container_kind not in CONTAINER_KINDS:
        raise ValueError(f"container_kind must be one of {CONTAINER_KINDS}")
    if position < 0:
        raise ValueError("position must not be negative")
    if any(len(term) != TERM_LENGTH for term in terms):
        raise ValueError("terms must be TermHasher hashes")  # never a clear word by mistake


def _distinct(terms: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(terms))


def _query(terms: Iterable[str]) -> list[str]:
    distinct = _distinct(terms)
    if len(distinct) > MAX_QUERY_WORDS:  # the caller's check (422 on the query) was forgotten
        raise ValueError(f"at most {MAX_QUERY_WORDS} distinct words per search")
    return distinct


class _Index(ABC):
    """What both indexes do alike, so that it cannot differ between them: the checks of an entry, and an edit
    as a removal and an addition. Each index stores (``_add``) and removes in its own way."""

    def add(self, *, message_id: str, position: int, container_kind: str, container_id: str, subject_id: str,
            terms: Sequence[str]) -> None:
        """Index one message: one entry per distinct term (a message already indexed: use ``replace``)."""
        distinct = _distinct(terms)
        _check_entry(container_kind, position, distinct)
        if distinct:
            self._add(message_id, position, container_kind, container_id, subject_id, distinct)

    @abstractmethod
    def _add(self, message_id: str, position: int, container_kind: str, container_id: str, subject_id: str,
             terms: list[str]) -> None:
        """Store the entries of one message (``terms``: distinct, checked, at least one)."""

    @abstractmethod
    def remove(self, message_id: str) -> None:
        """A deleted (or erased) message is found no more."""

    def replace(self, *, message_id: str, position: int, container_kind: str, container_id: str,
                subject_id: str, terms: Sequence[str]) -> None:
        """An edited message: its former terms go, the new ones come."""
        self.remove(message_id)
        self.add(message_id=message_id, position=position, container_kind=container_kind,
                 container_id=container_id, subject_id=subject_id, terms=terms)


class SqlSearchIndex(_Index):
    """The index on a unit of work's connection (writes join its transaction)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _add(self, message_id: str, position: int, container_kind: str, container_id: str, subject_id: str,
             terms: list[str]) -> None:
        self.conn.execute(search_terms.insert(), [
            {"term": term, "position": position, "message_id": message_id, "container_kind": container_kind,
             "container_id": container_id, "subject_id": subject_id} for term in terms])

    def remove(self, message_id: str) -> None:
        """A deleted (or erased) message is found no more."""
        self.conn.execute(search_terms.delete().where(search_terms.c.message_id == message_id))

    def purge_subject(self, subject_id: str) -> int:
        """Erasure: every entry of messages sealed under ``subject_id``; returns how many messages had some."""
        messages = self.conn.execute(
            sa.select(sa.func.count(sa.distinct(search_terms.c.message_id)))
            .where(search_terms.c.subject_id == subject_id)).scalar_one()
        if messages:
            self.conn.execute(search_terms.delete().where(search_terms.c.subject_id == subject_id))
        return int(messages)

    def _counts(self, terms: Sequence[str]) -> dict[str, int]:
        """Index entries per term, capped so that a query of many words reads about ``COUNT_CAP`` entries in
        all (each term at least ``COUNT_FLOOR``), in one round trip."""
        cap = max(COUNT_CAP // len(terms), COUNT_FLOOR)
        parts = []
        for term in terms:
            inner = sa.select(search_terms.c.position).where(search_terms.c.term == term).limit(cap).subquery()
            parts.append(sa.select(sa.literal(term).label("term"), sa.func.count().label("n")).select_from(inner))
        return {row.term: row.n for row in self.conn.execute(sa.union_all(*parts))}

    def find(self, terms: Sequence[str], *, visible: SqlVisibility, container: Container | None = None,
             limit: int, before_position: int | None = None) -> Hits:
        """``(position, message_id)`` of the messages holding every term, newest first, at most ``limit``,
        older than ``before_position`` if given, whose container ``visible`` admits (and is ``container``).

        The plan (see the module doc): the rarest term drives, its entries walked newest first a window of
        ``WINDOW`` entries at a time, each entry probed for the other terms and its container for visibility,
        in one statement per window that stops at ``limit`` hits. After the first window, a viewer who sees at
        most ``CONTAINERS_MAX`` containers is answered from those containers' entries. After
        ``MAX_EXAMINED`` entries the search stops: ``Hits.resume_before`` says where to go on.
        """
        terms = _query(terms)
        hits = Hits()
        if not terms or limit <= 0:
            return hits
        if len(terms) > 1:
            counts = self._counts(terms)
            if min(counts.values()) == 0:
                return hits
            terms = sorted(terms, key=lambda term: counts[term])
        cursor, examined, decided = before_position, 0, container is not None
        while len(hits) < limit:
            if examined >= MAX_EXAMINED:
                hits.resume_before = cursor
                break
            edge = self._edge(terms[0], container, cursor)
            hits.extend(self._walk(terms, visible, container, limit - len(hits), cursor, edge))
            if edge is None:
                break  # that window held every entry left
            examined, cursor = examined + WINDOW, edge + 1
            if len(hits) < limit and not decided:
                decided = True
                seen = self._seen_containers(visible)
                if seen is not None:
                    if seen:
                        hits.extend(self._by_container(terms, seen, limit - len(hits), cursor))
                    break
        return hits

    def _edge(self, term: str, container: Container | None, before: int | None) -> int | None:
        """The position of the entry of ``term`` (in ``container``) just older than the ``WINDOW`` newest
        before ``before``, if there is one: the next window is the entries above it."""
        query = sa.select(search_terms.c.position).where(search_terms.c.term == term)
        if container is not None:
            query = query.where(search_terms.c.container_id == container[1])
        if before is not None:
            query = query.where(search_terms.c.position < before)
        query = query.order_by(search_terms.c.position.desc()).offset(WINDOW).limit(1)
        return self.conn.execute(query).scalar()

    def _probes(self, query: sa.Select, driver: sa.Alias, terms: Sequence[str]) -> sa.Select:
        """Every other term present at the driving entry's position: one key probe per term. Up to
        ``EXISTS_MAX`` of them as EXISTS, which PostgreSQL turns into semi-joins; beyond, one counting
        subquery (PostgreSQL took 150-200 ms to plan eight semi-joins, for 30 ms of work)."""
        others = terms[1:]
        if len(others) <= EXISTS_MAX:
            for n, term in enumerate(others, start=1):
                other = search_terms.alias(f"s{n}")
                query = query.where(sa.exists().where(other.c.term == term, other.c.position == driver.c.position))
            return query
        other = search_terms.alias("s1")
        present = (sa.select(sa.func.count()).where(other.c.term.in_(others), other.c.position == driver.c.position)
                   .scalar_subquery())
        return query.where(present == len(others))

    def _walk(self, terms: Sequence[str], visible: SqlVisibility, container: Container | None, limit: int,
              before: int | None, edge: int | None) -> list[tuple[int, str]]:
        """The driving term's entries in ``(edge, before)`` newest first, probed and filtered, to ``limit``."""
        driver = search_terms.alias("s0")
        query = sa.select(driver.c.position, driver.c.message_id).where(driver.c.term == terms[0])
        if container is not None:
            query = query.where(driver.c.container_id == container[1], driver.c.container_kind == container[0])
        if before is not None:
            query = query.where(driver.c.position < before)
        if edge is not None:
            query = query.where(driver.c.position > edge)
        # the row's own columns first: SQLite evaluates the conditions in this order, the probes cost more
        query = self._probes(query.where(visible(driver.c.container_kind, driver.c.container_id)), driver, terms)
        query = query.order_by(driver.c.position.desc()).limit(limit)
        return [(int(row.position), row.message_id) for row in self.conn.execute(query)]

    def _seen_containers(self, visible: SqlVisibility) -> list[str] | None:
        """The ids of the conversations and chats ``visible`` admits (messaging's own read models: every
        container is there), or None when there are more than ``CONTAINERS_MAX``."""
        seen = self.conn.execute(sa.union_all(
            sa.select(conversations.c.id).where(visible(sa.literal(CONTAINER_KINDS[0]), conversations.c.id)),
            sa.select(chats.c.id).where(visible(sa.literal(CONTAINER_KINDS[1]), chats.c.id)),
        ).limit(CONTAINERS_MAX + 1)).scalars().all()
        return None if len(seen) > CONTAINERS_MAX else list(seen)

    def _by_container(self, terms: Sequence[str], seen: list[str], limit: int, before: int) -> list[tuple[int, str]]:
        """The driving term's entries before ``before`` in the ``seen`` containers, looked up container by
        container on ``(term, container_id, position)``, probed; the few found are sorted. The ids are given
        as a list: as a subquery, neither planner can tell how few they are (PostgreSQL hashed every entry of
        the term). ``position + 0``: no index on it, so that the planners take ``(term, container_id IN …)``
        rather than a walk of the ``(term, position)`` key, which is what reaching here shows to be slow."""
        driver = search_terms.alias("s0")
        query = sa.select(driver.c.position, driver.c.message_id).where(
            driver.c.term == terms[0], driver.c.container_id.in_(seen), driver.c.position + 0 < before)
        query = self._probes(query, driver, terms)
        query = query.order_by((driver.c.position + 0).desc()).limit(limit)
        return [(int(row.position), row.message_id) for row in self.conn.execute(query)]


# -- rebuilding (``python -m upgestao_messaging reindex``) ------------------------------------------------


@dataclass(frozen=True)
class LiveMessage:
    """A message whose body belongs in the index (neither deleted nor erased), still sealed."""

    id: str
    position: int
    container_kind: str
    container_id: str
    subject_id: str
    body_sealed: str


def live_messages_after(conn: Connection, position: int, limit: int) -> list[LiveMessage]:
    """The next ``limit`` live messages after ``position``, in position order (the rebuild's batches)."""
    rows = conn.execute(
        sa.select(messages.c.id, messages.c.position, messages.c.container_kind, messages.c.container_id,
                  messages.c.key_subject_id, messages.c.body_sealed)
        .where(messages.c.position > position, messages.c.deleted.is_(False), messages.c.erased.is_(False),
               messages.c.body_sealed.is_not(None))
        .order_by(messages.c.position).limit(limit))
    return [LiveMessage(r.id, int(r.position), r.container_kind, r.container_id, r.key_subject_id, r.body_sealed)
            for r in rows]


def drop_stale(conn: Connection) -> int:
    """Entries of messages no longer live (deleted, erased, gone); returns how many went."""
    live = sa.select(messages.c.id).where(messages.c.deleted.is_(False), messages.c.erased.is_(False))
    return conn.execute(search_terms.delete().where(search_terms.c.message_id.not_in(live))).rowcount


@dataclass(frozen=True)
class _Entry:
    message_id: str
    container_kind: str
    container_id: str
    subject_id: str


class MemorySearchIndex(_Index):
    """The same index in memory, for the service layer's unit tests (same semantics as :class:`SqlSearchIndex`)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[int, _Entry]] = {}  # term -> position -> entry
        self._positions: dict[str, tuple[int, set[str]]] = {}  # message_id -> (position, terms)

    def _add(self, message_id: str, position: int, container_kind: str, container_id: str, subject_id: str,
             terms: list[str]) -> None:
        entry = _Entry(message_id, container_kind, container_id, subject_id)
        for term in terms:
            if position in self.rows.get(term, {}):
                raise ValueError(f"term already indexed at position {position}")  # the primary key's refusal
        for term in terms:
            self.rows.setdefault(term, {})[position] = entry
        _, known = self._positions.get(message_id, (position, set()))
        self._positions[message_id] = (position, known | set(terms))

    def remove(self, message_id: str) -> None:
        position, terms = self._positions.pop(message_id, (None, set()))
        for term in terms:
            bucket = self.rows.get(term, {})
            if position in bucket and bucket[position].message_id == message_id:
                del bucket[position]
            if not bucket:
                self.rows.pop(term, None)

    def purge_subject(self, subject_id: str) -> int:
        messages = {entry.message_id for bucket in self.rows.values() for entry in bucket.values()
                    if entry.subject_id == subject_id}
        for message_id in messages:
            self.remove(message_id)
        return len(messages)

    def find(self, terms: Sequence[str], *, visible: MemoryVisibility, container: Container | None = None,
             limit: int, before_position: int | None = None) -> Hits:
        terms = _query(terms)
        hits = Hits()
        if not terms or limit <= 0:
            return hits
        buckets = sorted((self.rows.get(term, {}) for term in terms), key=len)
        for position in sorted(buckets[0], reverse=True):
            if before_position is not None and position >= before_position:
                continue
            entry = buckets[0][position]
            if container is not None and (entry.container_kind, entry.container_id) != tuple(container):
                continue
            if all(position in bucket for bucket in buckets[1:]) and visible(entry.container_kind,
                                                                               entry.container_id):
                hits.append((position, entry.message_id))
                if len(hits) >= limit:
                    break
        return hits
