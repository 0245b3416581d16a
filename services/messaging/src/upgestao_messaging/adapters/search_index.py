"""The message search index: keyed hashes of words, one table, the same on SQLite and PostgreSQL (R3.1).

For H1 (the messaging core), the interface:

* ``search_terms`` is declared here on the messaging ``metadata`` of :mod:`.tables`; migration 0004 creates
  it, 0005 adds each entry's ``signature``. It is no projection's table: ``rebuild`` leaves it alone (the
  bodies are sealed, the events cannot give the words back), ``reindex`` rebuilds it.
* Sending: ``SqlSearchIndex(uow.conn).add(message_id=…, position=…, container_kind="conversation"|"chat",
  container_id=…, subject_id=<the key's subject: the customer, or the chat message's author>,
  terms=hasher.hashes(body))``. Editing: ``replace(...)`` (remove, then add). Deleting: ``remove(message_id)``.
  Erasure: ``purge_subject(subject_id)`` (returns the messages), ``delete_subject(subject_id)`` (the entries).
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
100,000 messages) and with common words seldom together:

* One statement surveys the terms: each one's newest entries (before the cursor; in the one conversation or
  chat, along ``(term, container_id, position)``), counted up to a window (``WINDOW``; fewer per term for
  many terms: ``COUNT_CAP`` in all, at least ``COUNT_FLOOR`` each), with the position where the window ends.
  A term present nowhere answers at once; the fewest entries drives (between terms with more than a window,
  the one whose window reaches furthest back: the sparsest where the walk goes).
* One statement walks the driving term's window newest first along the primary key ``(term, position)``:
  each entry's own row first — its container for visibility, its message's ``signature`` (a 63-bit OR of one
  bit per term, :func:`signature`) for the other words' bits, which passes over most entries of a message
  without them — then the other terms, read over the window's positions only (PostgreSQL probes them entry
  by entry, or merges their entries of that range beside the driver's when there are about as many). It
  stops at ``limit`` hits: a common word whose hits are dense reads a few dozen entries. Two statements, then,
  for most searches.
* When the window does not fill the page (words seldom together, or a viewer who sees few conversations): a
  viewer who sees at most ``CONTAINERS_MAX`` conversations and chats, and at most one in
  ``BY_CONTAINER_SHARE`` of them (messaging's read models filtered by ``visible``, one statement), is
  answered container by container: ``(term, container_id IN those)``, so that an attendant with twenty
  conversations searching a word present in 86,000 messages reads the entries of those twenty only; anyone
  else's walk goes on, the rest of the call's work in one more window. On PostgreSQL, without parallel
  workers from there on (``SET LOCAL``, the rest of the caller's transaction: starting them cost more than
  these statements' work).

Whatever the words, one call looks at ``MAX_EXAMINED`` entries of the driving term at most (container by
container: the newest ``MAX_EXAMINED`` of those containers, less what the first window looked at), then
says where it stopped (``Hits.resume_before``). At most five statements (and the ``SET`` on PostgreSQL).
"""

from __future__ import annotations

import functools
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
WINDOW = 500  # entries of each term surveyed, and of the driving term walked by the first window, at most
COUNT_CAP = 1000  # ... of all the terms of a query surveyed (a query of more than two words: fewer each)
COUNT_FLOOR = 100  # ... however many words the query has
EXISTS_MAX = 3  # other terms probed as EXISTS, at most (more: one counting subquery)
CONTAINERS_MAX = 500  # containers looked up one by one, at most (a viewer seeing more: the walk goes on)
BY_CONTAINER_SHARE = 4  # ... and only by a viewer who sees one container in four at most (else the walk goes on)
SIGNATURE_BITS = 63  # of a BIGINT, the sign bit aside (-1: every bit)
MAX_EXAMINED = 6000  # entries of the driving term looked at per call, at most (then ``Hits.resume_before``)


search_terms = sa.Table(
    "search_terms", metadata,
    sa.Column("term", sa.String(TERM_LENGTH), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False, autoincrement=False),
    sa.Column("message_id", sa.String(36), nullable=False),
    sa.Column("container_kind", sa.String(20), nullable=False),
    sa.Column("container_id", sa.String(36), nullable=False),
    sa.Column("subject_id", sa.String(36), nullable=False),
    # the message's terms as a 63-bit signature (``signature``): -1, every bit, for an entry indexed before it
    sa.Column("signature", sa.BigInteger, nullable=False, server_default=sa.text("-1")),
    sa.PrimaryKeyConstraint("term", "position", name="pk_search_terms"),
    sqlite_with_rowid=False,  # SQLite keeps the rows in primary key order: a term's entries lie together
)
sa.Index("ix_search_terms_subject", search_terms.c.subject_id)
sa.Index("ix_search_terms_message", search_terms.c.message_id)
# covering (message_id too): SQLite prefers it to the primary key for ``container_id IN (…)`` only then
sa.Index("ix_search_terms_container", search_terms.c.term, search_terms.c.container_id, search_terms.c.position,
         search_terms.c.message_id)


@functools.cache
def _alias(n: int) -> sa.Alias:
    """``search_terms AS s<n>``, made once: an alias builds its columns when first used, a cost per search
    otherwise (statements are immutable: one alias serves them all)."""
    return search_terms.alias(f"s{n}")


@functools.cache
def _survey_sql(terms: int, in_container: bool, before: bool) -> sa.TextClause:
    """The survey's statement for ``terms`` terms (see ``SqlSearchIndex._survey``), as text: built once per
    shape, no expression to build and key at each search. Parameters ``t0…``, ``container``, ``before``,
    ``cap``."""
    where = (" AND container_id = :container" if in_container else "") + (" AND position < :before" if before else "")
    return sa.text(" UNION ALL ".join(
        f"SELECT :t{n} AS term, count(*) AS n, min(w{n}.position) AS oldest FROM (SELECT position FROM search_terms "
        f"WHERE term = :t{n}{where} ORDER BY position DESC LIMIT :cap) w{n}" for n in range(terms)))


@functools.cache
def _edge_sql(in_container: bool) -> sa.TextClause:
    """The next window's edge (see ``SqlSearchIndex._edge``), as text. Parameters ``term``, ``container``,
    ``before``, ``skip``."""
    return sa.text("SELECT position FROM search_terms WHERE term = :term"
                   + (" AND container_id = :container" if in_container else "")
                   + " AND position < :before ORDER BY position DESC LIMIT 1 OFFSET :skip")


def signature(terms: Iterable[str]) -> int:
    """The bits of ``terms`` (one each, of ``SIGNATURE_BITS``, from the hash itself) OR-ed: stored on every entry
    of a message, it tells without another read that the message lacks a term whose bit it does not have. A
    message of 18 distinct words has about a quarter of the bits: three entries in four of a message without
    some other word of the query are passed over without probing it. Never excludes a message holding every
    term (-1, all bits, is what a migrated entry has until ``reindex``)."""
    bits = 0
    for term in terms:
        bits |= 1 << (int(term[-4:], 16) % SIGNATURE_BITS)
    return bits


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
        bits = signature(terms)
        self.conn.execute(search_terms.insert(), [
            {"term": term, "position": position, "message_id": message_id, "container_kind": container_kind,
             "container_id": container_id, "subject_id": subject_id, "signature": bits} for term in terms])

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

    def delete_subject(self, subject_id: str) -> int:
        """Erasure's purge: every entry of messages sealed under ``subject_id``, in one statement; returns how many
        entries went (no count first: :meth:`purge_subject` counts the messages)."""
        return self.conn.execute(search_terms.delete().where(search_terms.c.subject_id == subject_id)).rowcount

    def _survey(self, terms: Sequence[str], container: Container | None, before: int | None,
                window: int) -> dict[str, tuple[int, int | None]]:
        """For each term, in one round trip: how many of its entries (in ``container``, before ``before``) the
        newest ``window + 1`` hold — all of them when fewer — and, when there are more than ``window``, the
        position of the ``window + 1``-th newest (the edge of the first window: the window is the entries
        above it). Each read is a backward range scan of the primary key (of ``(term, container_id,
        position)`` in one container) that stops after ``window + 1`` entries."""
        params: dict[str, object] = {f"t{n}": term for n, term in enumerate(terms)}
        params.update(container=container[1] if container else None, before=before, cap=window + 1)
        rows = self.conn.execute(_survey_sql(len(terms), container is not None, before is not None), params)
        return {row.term: (int(row.n), int(row.oldest) if row.n > window else None) for row in rows}

    def find(self, terms: Sequence[str], *, visible: SqlVisibility, container: Container | None = None,
             limit: int, before_position: int | None = None) -> Hits:
        """``(position, message_id)`` of the messages holding every term, newest first, at most ``limit``,
        older than ``before_position`` if given, whose container ``visible`` admits (and is ``container``).

        The plan (see the module doc): one statement surveys the terms (each one's newest entries, capped) and
        the rarest drives; its entries are walked newest first a window at a time, each window's other terms
        read over the window's positions only and its containers checked for visibility, in one statement
        that stops at ``limit`` hits. After the first window, a viewer who sees few containers (at most
        ``CONTAINERS_MAX``, at most one in ``BY_CONTAINER_SHARE``) is answered from those containers' entries,
        anyone else by the rest of the call's work as one more window. After ``MAX_EXAMINED`` entries of the
        driving term the search stops: ``Hits.resume_before`` says where to go on.
        """
        terms = _query(terms)
        hits = Hits()
        if not terms or limit <= 0:
            return hits
        window = min(WINDOW, max(COUNT_CAP // len(terms), COUNT_FLOOR))
        survey = self._survey(terms, container, before_position, window)
        if min(n for n, _ in survey.values()) == 0:
            return hits  # a word found nowhere (before the cursor): no message holds them all
        # the fewest entries drives; between terms with more than a window each, the one whose window reaches
        # furthest back (the sparsest among the newest entries, where the walk goes)
        terms = sorted(terms, key=lambda term: (survey[term][0], survey[term][1] or 0))
        cursor, edge, examined, decided = before_position, survey[terms[0]][1], 0, container is not None
        serial = False
        seen_by_driver = visible(_alias(0).c.container_kind, _alias(0).c.container_id)  # one clause, every window
        while True:
            hits.extend(self._walk(terms, seen_by_driver, container, limit - len(hits), cursor, edge))
            if len(hits) >= limit or edge is None:
                break  # the page is full, or that window held every entry left
            examined, cursor = examined + window, edge + 1
            if examined >= MAX_EXAMINED:
                hits.resume_before = cursor
                break
            if not serial:
                serial = True
                self._serial()  # before the statements that read more
            if not decided:
                decided = True
                seen = self._seen_containers(visible)
                if seen is not None:
                    if seen:
                        found, hits.resume_before = self._by_container(terms, seen, limit - len(hits), cursor,
                                                                       MAX_EXAMINED - examined)
                        hits.extend(found)
                    break
            window = MAX_EXAMINED - examined  # the rest of the call's work in one window
            edge = self._edge(terms[0], container, cursor, window)
        return hits

    def _serial(self) -> None:
        """PostgreSQL: no parallel workers for the rest of this transaction. The statements after the first
        window read a few thousand entries, which its planner deems worth two workers: starting them took
        10-30 ms (more than the work, on a busy machine) and their CPU is the other requests'. The use case's
        statements after the search (its hits' rows, their audit) are as small. SQLite: nothing to do."""
        if self.conn.dialect.name == "postgresql":
            self.conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")

    def _edge(self, term: str, container: Container | None, before: int, window: int) -> int | None:
        """The position of the entry of ``term`` (in ``container``) just older than the ``window`` newest
        before ``before``, if there is one: the next window is the entries above it."""
        params = {"term": term, "container": container[1] if container else None, "before": before, "skip": window}
        return self.conn.execute(_edge_sql(container is not None), params).scalar()

    @staticmethod
    def _with_bits(query: sa.Select, driver: sa.Alias, terms: Sequence[str]) -> sa.Select:
        """The driving entry's own ``signature`` must have the other terms' bits: no read, and most entries of
        messages without those words stop there (before the visibility's subquery and the probes: SQLite
        evaluates the conditions in the order given)."""
        if len(terms) < 2:
            return query
        mask = signature(terms[1:])
        return query.where(driver.c.signature.op("&")(mask) == mask)

    def _probes(self, query: sa.Select, driver: sa.Alias, terms: Sequence[str], above: int | None,
                before: int | None) -> sa.Select:
        """Every other term present at the driving entry's position (after ``_with_bits``). Up to
        ``EXISTS_MAX`` of them as EXISTS over the driving entries' positions, ``(above, before)``: PostgreSQL
        makes a semi-join of each, probing the primary key entry by entry, or, when the other term has about as
        many entries there, reading its entries of that range along the key beside the driver's (a merge join:
        a few times cheaper than as many probes); SQLite probes. Beyond, one counting subquery (PostgreSQL took
        150-200 ms to plan eight semi-joins, for 30 ms of work)."""
        others = terms[1:]
        if len(others) <= EXISTS_MAX:
            for n, term in enumerate(others, start=1):
                other = _alias(n)
                probe = sa.exists().where(other.c.term == term, other.c.position == driver.c.position)
                if above is not None:
                    probe = probe.where(other.c.position > above)
                if before is not None:
                    probe = probe.where(other.c.position < before)
                query = query.where(probe)
            return query
        other = _alias(1)
        present = (sa.select(sa.func.count()).where(other.c.term.in_(others), other.c.position == driver.c.position)
                   .scalar_subquery())
        return query.where(present == len(others))

    def _walk(self, terms: Sequence[str], visible: sa.ColumnElement[bool], container: Container | None, limit: int,
              before: int | None, edge: int | None) -> list[tuple[int, str]]:
        """The driving term's entries in ``(edge, before)`` newest first, probed and filtered (``visible``: the
        visibility rule over the driving alias ``s0``), to ``limit``."""
        driver = _alias(0)
        query = sa.select(driver.c.position, driver.c.message_id).where(driver.c.term == terms[0])
        if container is not None:
            query = query.where(driver.c.container_id == container[1], driver.c.container_kind == container[0])
        if before is not None:
            query = query.where(driver.c.position < before)
        if edge is not None:
            query = query.where(driver.c.position > edge)
        # the row's own columns first: SQLite evaluates the conditions in this order, the probes cost more
        query = self._probes(self._with_bits(query, driver, terms).where(visible), driver, terms, edge, before)
        query = query.order_by(driver.c.position.desc()).limit(limit)
        return [(int(row.position), row.message_id) for row in self.conn.execute(query)]

    def _seen_containers(self, visible: SqlVisibility) -> list[str] | None:
        """The ids of the conversations and chats ``visible`` admits (messaging's own read models: every
        container is there), when reading container by container pays: when they are at most
        ``CONTAINERS_MAX``, and at most one in ``BY_CONTAINER_SHARE`` of all (a viewer who sees most
        conversations finds most entries visible: the walk is cheaper). Else None. One statement: the ids,
        each row beside the number of containers (counted up to what decides)."""
        cap = BY_CONTAINER_SHARE * CONTAINERS_MAX + 1
        ids = sa.union_all(
            sa.select(conversations.c.id).where(visible(sa.literal(CONTAINER_KINDS[0]), conversations.c.id)),
            sa.select(chats.c.id).where(visible(sa.literal(CONTAINER_KINDS[1]), chats.c.id)),
        ).limit(CONTAINERS_MAX + 1).subquery("seen")
        total = (sa.select(sa.func.count()).select_from(sa.select(conversations.c.id).limit(cap).subquery())
                 .scalar_subquery()
                 + sa.select(sa.func.count()).select_from(sa.select(chats.c.id).limit(cap).subquery())
                 .scalar_subquery())
        rows = self.conn.execute(sa.select(ids.c.id, total.label("total"))).all()
        if len(rows) > CONTAINERS_MAX or (rows and len(rows) * BY_CONTAINER_SHARE > rows[0].total):
            return None
        return [row.id for row in rows]

    def _by_container(self, terms: Sequence[str], seen: list[str], limit: int, before: int,
                      budget: int) -> tuple[list[tuple[int, str]], int | None]:
        """The driving term's entries before ``before`` in the ``seen`` containers, looked up container by
        container on ``(term, container_id, position)``, probed; the few found are sorted. At most ``budget``
        of them: the newest ``budget`` (the position of the next one is read first), and when they do not fill
        the page, the cursor to go on from (else None). The ids are given as a list: as a subquery, neither
        planner can tell how few they are (PostgreSQL hashed every entry of the term). ``position + 0``: no
        index on it, so that the planners take ``(term, container_id IN …)`` rather than a walk of the
        ``(term, position)`` key, which is what reaching here shows to be slow."""
        driver = _alias(0)
        entries = sa.select(driver.c.position).where(
            driver.c.term == terms[0], driver.c.container_id.in_(seen), driver.c.position + 0 < before)
        edge = self.conn.execute(entries.order_by((driver.c.position + 0).desc()).offset(budget).limit(1)).scalar()
        query = sa.select(driver.c.position, driver.c.message_id).where(
            driver.c.term == terms[0], driver.c.container_id.in_(seen), driver.c.position + 0 < before)
        if edge is not None:
            query = query.where(driver.c.position + 0 > edge)
        query = self._probes(self._with_bits(query, driver, terms), driver, terms, edge, before)
        query = query.order_by((driver.c.position + 0).desc()).limit(limit)
        found = [(int(row.position), row.message_id) for row in self.conn.execute(query)]
        return found, (edge + 1 if edge is not None and len(found) < limit else None)


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

    def delete_subject(self, subject_id: str) -> int:
        entries = sum(1 for bucket in self.rows.values() for entry in bucket.values() if entry.subject_id == subject_id)
        self.purge_subject(subject_id)
        return entries

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
