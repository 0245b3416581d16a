"""The audit log in SQL: append a batch (gap-free seqs, Merkle nodes), read it back.

Appends lock the single ``audit_tree_head`` row, so any number of ingesting
processes produce one gap-free sequence; the head keeps the tree's right
border (:class:`~upgestao_privacy.domain.merkle.Frontier`) so an append costs
O(log n) hashes and never reads old nodes. Every complete subtree an append
finishes is stored once in ``audit_tree_nodes``: proofs read O(log n) of them
in one query. On PostgreSQL an append is two round trips: the head locked and
read with the latest checkpoint and which of the batch's ``audit_id`` are
stored (:data:`_LOCK_AND_READ_PG`), then its records, nodes and new head
written by one statement (:data:`_WRITE_PG`). The checkpoint rule that follows
in the same transaction works with the head and checkpoint the append holds
(:class:`SqlAuditLog` keeps them while its lock lasts): no statement of its own.

:class:`SqlAuditLog` is the :class:`~.ports.AuditLogRepository` over these functions: privacy's
units of work hand it out as ``uow.audit_log`` (:func:`with_sql_audit_log`), the ingest opens it
per transaction (:func:`sql_transactions`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..domain.checkpoints import Checkpoint
from ..domain.leaves import canonical_json
from ..domain.merkle import Frontier, MissingNode, NodeKey, leaf_hash
from .ports import (  # noqa: F401  (Head, Appended, ColumnsTampered, INDEX_COLUMNS: named here as before)
    INDEX_COLUMNS,
    LEAF_FILTERS,
    Appended,
    AuditRepositories,
    ColumnsTampered,
    Head,
    checked,
    disagreeing_columns,
    export_line,
)
from .tables import (
    audit_checkpoints,
    audit_records,
    audit_stream_position,
    audit_tree_head,
    audit_tree_nodes,
    leaf_member_sql,
    node_id,
)

HEAD_ID = 1

# built once: these run for every batch / every proof
_NODES = sa.select(audit_tree_nodes.c.node_id, audit_tree_nodes.c.hash).where(
    audit_tree_nodes.c.node_id.in_(sa.bindparam("ids", expanding=True)))
_NODES_PG = sa.text("SELECT node_id, hash FROM audit_tree_nodes WHERE node_id = ANY(:ids)")
_HEAD = sa.select(audit_tree_head.c.tree_size, audit_tree_head.c.frontier).where(audit_tree_head.c.id == HEAD_ID)
_HEAD_FOR_UPDATE = _HEAD.with_for_update()
_KNOWN_IDS = sa.select(audit_records.c.audit_id).where(
    audit_records.c.audit_id.in_(sa.bindparam("ids", expanding=True))
)
_UPDATE_HEAD = audit_tree_head.update().where(audit_tree_head.c.id == HEAD_ID).values(
    tree_size=sa.bindparam("size"), frontier=sa.bindparam("frontier"), updated_at=sa.bindparam("now"))
_LATEST_CHECKPOINT = sa.select(audit_checkpoints).order_by(audit_checkpoints.c.tree_size.desc()).limit(1)


class SqlNodeSource:
    """:class:`~upgestao_privacy.domain.merkle.NodeSource` over ``audit_tree_nodes``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get_nodes(self, keys: Collection[NodeKey]) -> Mapping[NodeKey, bytes]:
        if not keys:
            return {}
        ids = {node_id(level, index): (level, index) for level, index in keys}
        statement = _NODES_PG if self.conn.dialect.name == "postgresql" else _NODES
        found = {ids[row.node_id]: bytes(row.hash) for row in self.conn.execute(statement, {"ids": list(ids)})}
        for key in keys:
            if key not in found:
                raise MissingNode(key)
        return found


def read_head(conn: Connection, *, lock: bool = False) -> Head:
    row = conn.execute(_HEAD_FOR_UPDATE if lock else _HEAD).one()
    return Head(row.tree_size, Frontier.from_bytes(row.tree_size, bytes(row.frontier)))


def append(conn: Connection, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Appended]:
    """Store ``records`` (validated wire dicts) after the current end of the log.

    Records whose ``audit_id`` is already stored, or repeated in the batch,
    are skipped: a redelivered record is stored once. Call inside a
    transaction; the head row stays locked until it ends.
    """
    return SqlAuditLog(conn).append(records, now)


def _lock_for_append(conn: Connection, audit_ids: list[str]) -> tuple[Head, Checkpoint | None, set[str]]:
    """Lock the head; then, seen from after the lock was granted, the head, the latest checkpoint and which of
    ``audit_ids`` are stored already."""
    if conn.dialect.name == "postgresql":
        row = conn.exec_driver_sql(_LOCK_AND_READ_PG, {"ids": audit_ids}).one()
        head = Head(row.tree_size, Frontier.from_bytes(row.tree_size, bytes(row.frontier)))
        latest = None if row.checkpoint_size is None else Checkpoint(
            tree_size=row.checkpoint_size, root_hash=bytes(row.root_hash), signed_at=row.signed_at,
            key_id=row.key_id, signature=bytes(row.signature))
        return head, latest, set(row.known)
    head = read_head(conn, lock=True)
    known = {row.audit_id for row in conn.execute(_KNOWN_IDS, {"ids": audit_ids})} if audit_ids else set()
    return head, latest_checkpoint(conn), known


# One round trip, two statements: the lock, then (a statement of its own, so that its snapshot is taken once
# the lock is granted, and sees what the transaction that held it committed) the head, the latest checkpoint
# and the batch's audit_ids stored already.
_LOCK_AND_READ_PG = (
    f"SELECT 1 FROM audit_tree_head WHERE id = {HEAD_ID} FOR UPDATE; "
    "SELECT h.tree_size, h.frontier, c.tree_size AS checkpoint_size, c.root_hash, c.signed_at, c.key_id,"
    " c.signature, ARRAY(SELECT audit_id FROM audit_records WHERE audit_id = ANY(%(ids)s::text[])) AS known"
    " FROM audit_tree_head h LEFT JOIN LATERAL (SELECT * FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1) c"
    f" ON true WHERE h.id = {HEAD_ID}"
)


RECORD_COLUMNS = ("seq", "audit_id", "occurred_at", "service", "action", "resource_type", "subject_id", "actor_id",
                  "request_id", "outcome", "leaf", "stored_at")
_ROW_COLUMNS = RECORD_COLUMNS[:-1]  # a row as append builds it: stored_at is the batch's, one value for all


_PG_TYPES = {"seq": "bigint", "audit_id": "text", "occurred_at": "timestamptz", "service": "text", "action": "text",
             "resource_type": "text", "subject_id": "text", "actor_id": "text", "request_id": "text",
             "outcome": "text", "leaf": "text", "stored_at": "timestamptz", "node_id": "bigint", "hash": "bytea"}
_NODE_COLUMNS = ("node_id", "hash")


def _unnest(columns: Sequence[str], prefix: str) -> str:
    return ", ".join(f"%({prefix}{i})s::{_PG_TYPES[name]}[]" for i, name in enumerate(columns))


# Records, nodes and the head in one statement (data-modifying CTEs); the rows as one array per column through
# unnest: the driver adapts each column in one go, not each row (this is the ingest's hot path). occurred_at
# goes as the record's canonical ISO text, which PostgreSQL reads as the same instant (the driver's adaptation
# of a datetime cost three times a string's), and stored_at as one value.
_WRITE_PG = (
    f"WITH r AS (INSERT INTO audit_records ({', '.join(RECORD_COLUMNS)})"
    f" SELECT *, %(now)s::timestamptz FROM unnest({_unnest(_ROW_COLUMNS, 'r')})),"
    f" n AS (INSERT INTO audit_tree_nodes ({', '.join(_NODE_COLUMNS)})"
    f" SELECT * FROM unnest({_unnest(_NODE_COLUMNS, 'n')}))"
    " UPDATE audit_tree_head SET tree_size = %(size)s, frontier = %(frontier)s, updated_at = %(now)s"
    f" WHERE id = {HEAD_ID}"
)


def _write(conn: Connection, rows: list[tuple], nodes: list[tuple[int, bytes]], frontier: Frontier,
           now: datetime) -> None:
    """``rows``: ``_ROW_COLUMNS`` of each record (occurred_at its ISO text); ``nodes``: ``(node_id, hash)``."""
    if conn.dialect.name == "postgresql":
        parameters: dict[str, Any] = {"size": frontier.size, "frontier": frontier.to_bytes(), "now": now}
        for prefix, table_rows in (("r", rows), ("n", nodes)):
            for i, column in enumerate(zip(*table_rows, strict=True)):
                parameters[f"{prefix}{i}"] = list(column)
        conn.exec_driver_sql(_WRITE_PG, parameters)
        return
    conn.execute(audit_records.insert(), [
        {**dict(zip(_ROW_COLUMNS, row, strict=True)), "occurred_at": datetime.fromisoformat(row[2]), "stored_at": now}
        for row in rows])
    conn.execute(audit_tree_nodes.insert(), [dict(zip(_NODE_COLUMNS, node, strict=True)) for node in nodes])
    conn.execute(_UPDATE_HEAD, {"size": frontier.size, "frontier": frontier.to_bytes(), "now": now})


# -- checkpoints --------------------------------------------------------------------


def _checkpoint(row) -> Checkpoint:
    return Checkpoint(tree_size=row.tree_size, root_hash=bytes(row.root_hash), signed_at=row.signed_at,
                      key_id=row.key_id, signature=bytes(row.signature))


def latest_checkpoint(conn: Connection) -> Checkpoint | None:
    row = conn.execute(_LATEST_CHECKPOINT).first()
    return _checkpoint(row) if row is not None else None


def checkpoints_between(conn: Connection, lo: int, hi: int) -> list[Checkpoint]:
    """Checkpoints with ``lo < tree_size <= hi``, oldest first."""
    rows = conn.execute(sa.select(audit_checkpoints).where(
        audit_checkpoints.c.tree_size > lo, audit_checkpoints.c.tree_size <= hi,
    ).order_by(audit_checkpoints.c.tree_size))
    return [_checkpoint(row) for row in rows]


def add_checkpoint(conn: Connection, checkpoint: Checkpoint) -> None:
    conn.execute(audit_checkpoints.insert().values(
        tree_size=checkpoint.tree_size, root_hash=checkpoint.root_hash, signed_at=checkpoint.signed_at,
        key_id=checkpoint.key_id, signature=checkpoint.signature))


# -- reading records -------------------------------------------------------------------


FILTER_COLUMNS = {
    "subject_id": audit_records.c.subject_id,
    "actor_id": audit_records.c.actor_id,
    "action": audit_records.c.action,
    "service": audit_records.c.service,
    "resource_type": audit_records.c.resource_type,
    "outcome": audit_records.c.outcome,
    "request_id": audit_records.c.request_id,
}
# who a record is about and who acted (ports.LEAF_FILTERS) are read from the leaf (the tree vouches for it),
# through the expression indexes of migration 0003: an edited column can neither hide nor re-file a record


def _filter_on(conn: Connection, name: str) -> sa.ColumnElement:
    if name not in LEAF_FILTERS:
        return FILTER_COLUMNS[name]
    return sa.literal_column(leaf_member_sql(conn.dialect.name, name), sa.String)


# every record read back is checked against its leaf (ports.checked), see ports.INDEX_COLUMNS
_RECORD_READ = [audit_records.c.seq, audit_records.c.leaf, *(audit_records.c[name] for name in INDEX_COLUMNS)]


def search(conn: Connection, filters: Mapping[str, Any], limit: int, before_seq: int | None) -> list[dict]:
    """Records matching every filter, newest (highest seq) first, at most ``limit``; each checked against
    its leaf (:class:`ColumnsTampered`)."""
    return checked(conn.execute(search_statement(conn, filters, limit, before_seq)))


def search_statement(conn: Connection, filters: Mapping[str, Any], limit: int, before_seq: int | None) -> sa.Select:
    query = sa.select(*_RECORD_READ)
    for name in FILTER_COLUMNS:
        if filters.get(name) is not None:
            query = query.where(_filter_on(conn, name) == filters[name])
    if filters.get("from") is not None:
        query = query.where(audit_records.c.occurred_at >= filters["from"])
    if filters.get("to") is not None:
        query = query.where(audit_records.c.occurred_at < filters["to"])
    if before_seq is not None:
        query = query.where(audit_records.c.seq < before_seq)
    return query.order_by(audit_records.c.seq.desc()).limit(limit)


def records_of_subject(conn: Connection, subject_id: str) -> list[dict]:
    """Every record of ``subject_id``, oldest first, each checked against its leaf (:class:`ColumnsTampered`)."""
    return checked(conn.execute(sa.select(*_RECORD_READ).where(_filter_on(conn, "subject_id") == subject_id)
                                 .order_by(audit_records.c.seq)))


def seq_range(conn: Connection, start: datetime | None, end: datetime | None) -> tuple[int, int] | None:
    """The smallest seq range ``[first, end)`` holding every record that occurred in ``[start, end)``."""
    query = sa.select(sa.func.min(audit_records.c.seq), sa.func.max(audit_records.c.seq))
    if start is not None:
        query = query.where(audit_records.c.occurred_at >= start)
    if end is not None:
        query = query.where(audit_records.c.occurred_at < end)
    low, high = conn.execute(query).one()
    return None if low is None else (int(low), int(high) + 1)


def export_lines(conn: Connection, start: int, end: int) -> list[dict]:
    """Records with ``start <= seq < end``, each with the leaf hash the tree holds for it
    (read from the tree, not recomputed: the verifier compares the two).

    A record whose index columns disagree with its leaf is exported as its columns file it (the
    filters on those columns and the time ranges see it that way): the verifier then finds a
    record that does not hash to its leaf and names its seq as edited."""
    leaves = audit_tree_nodes.alias("leaves")
    rows = conn.execute(
        sa.select(*_RECORD_READ, leaves.c.hash)
        .select_from(audit_records.outerjoin(leaves, leaves.c.node_id == audit_records.c.seq))  # level 0
        .where(audit_records.c.seq >= start, audit_records.c.seq < end)
        .order_by(audit_records.c.seq)
    )
    return [export_line(row, bytes(row.hash) if row.hash is not None else None) for row in rows]


# -- the stream position ----------------------------------------------------------------


def stream_position(conn: Connection, *, lock: bool = False) -> int | None:
    """The next seq to put on the audit stream; ``None`` when another process holds the lock."""
    query = sa.select(audit_stream_position.c.next_seq).where(audit_stream_position.c.id == HEAD_ID)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    row = conn.execute(query).first()
    return None if row is None else int(row.next_seq)


def set_stream_position(conn: Connection, next_seq: int, now: datetime) -> None:
    conn.execute(audit_stream_position.update().where(audit_stream_position.c.id == HEAD_ID)
                 .values(next_seq=next_seq, updated_at=now))


@dataclass(frozen=True)
class StreamState:
    """How far the stream was fed (``next_seq``, ``checkpoints_published``) and how far the log is
    (``tree_size``, ``signed``: the latest checkpoint's tree size, 0 for none)."""

    next_seq: int
    checkpoints_published: int
    tree_size: int
    signed: int

    @property
    def pending(self) -> bool:
        """Records or checkpoints not yet on the stream (a checkpoint never covers more than the log)."""
        return self.tree_size > self.next_seq or self.signed > self.checkpoints_published


_STREAM_STATE = (
    "SELECT p.next_seq, p.checkpoints_published,"
    f" (SELECT h.tree_size FROM audit_tree_head h WHERE h.id = {HEAD_ID}) AS tree_size,"
    " (SELECT coalesce(max(c.tree_size), 0) FROM audit_checkpoints c) AS signed"
    f" FROM audit_stream_position p WHERE p.id = {HEAD_ID}"
)


def stream_state(conn: Connection, *, lock: bool = False) -> StreamState | None:
    """The stream's position and the log's extent in one statement; with ``lock`` on PostgreSQL the position
    row stays locked until the transaction ends, ``None`` when another process holds it."""
    statement = _STREAM_STATE + (" FOR UPDATE OF p SKIP LOCKED" if lock and conn.dialect.name == "postgresql" else "")
    row = conn.exec_driver_sql(statement).first()
    return None if row is None else StreamState(int(row.next_seq), int(row.checkpoints_published),
                                                int(row.tree_size), int(row.signed))


def checkpoints_published(conn: Connection) -> int:
    """The tree size of the last checkpoint put on the stream and in the checkpoint file (0: none)."""
    return int(conn.execute(sa.select(audit_stream_position.c.checkpoints_published)
                            .where(audit_stream_position.c.id == HEAD_ID)).scalar_one())


def set_checkpoints_published(conn: Connection, tree_size: int, now: datetime) -> None:
    conn.execute(audit_stream_position.update().where(audit_stream_position.c.id == HEAD_ID)
                 .values(checkpoints_published=tree_size, updated_at=now))


def leaves_from(conn: Connection, start: int, limit: int) -> list[tuple[int, str, str]]:
    """``(seq, audit_id, leaf)`` of up to ``limit`` records from ``start`` on."""
    rows = conn.execute(sa.select(audit_records.c.seq, audit_records.c.audit_id, audit_records.c.leaf)
                        .where(audit_records.c.seq >= start).order_by(audit_records.c.seq).limit(limit))
    return [(row.seq, row.audit_id, row.leaf) for row in rows]


# -- the repository ------------------------------------------------------------------------


class SqlAuditLog:
    """:class:`~.ports.AuditLogRepository` on one transaction's connection (the statements above).

    Once this transaction holds the head's lock (``head(lock=True)``, ``append``), no other can append or
    sign: the head as last read or written, and the latest checkpoint as read with the lock or added since,
    are kept and given again without a statement until the transaction ends (use one per transaction)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._locked_head: Head | None = None  # the head while this transaction holds its lock
        self._latest: Checkpoint | None = None  # the latest checkpoint, known when _latest_known
        self._latest_known = False

    def head(self, *, lock: bool = False) -> Head:
        if self._locked_head is not None:
            return self._locked_head
        head = read_head(self.conn, lock=lock)
        if lock:
            self._locked_head = head
        return head

    def append(self, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Appended]:
        fresh: dict[str, Mapping[str, Any]] = {}
        for record in records:
            fresh.setdefault(record["audit_id"], record)
        head, self._latest, known = _lock_for_append(self.conn, list(fresh))
        self._locked_head, self._latest_known = head, True
        for audit_id in known:
            del fresh[audit_id]
        if not fresh:
            return []
        frontier = head.frontier.copy()
        seq = head.tree_size
        appended: list[Appended] = []
        rows: list[tuple] = []
        nodes: list[tuple[int, bytes]] = []
        for record in fresh.values():
            stored = {**record, "seq": seq}
            leaf = canonical_json(stored)  # leaf_for(record, seq), whose dict Appended keeps
            for level, index, digest in frontier.append(leaf_hash(leaf)):
                nodes.append((node_id(level, index), digest))
            text = leaf.decode("utf-8")
            rows.append((seq, record["audit_id"], record["occurred_at"], record["service"], record["action"],
                         record["resource_type"], record.get("subject_id"), record.get("actor_id"),
                         record.get("request_id"), record["outcome"], text))
            appended.append(Appended(seq, stored, text))
            seq += 1
        _write(self.conn, rows, nodes, frontier, now)
        self._locked_head = Head(frontier.size, frontier)
        return appended

    def nodes(self) -> SqlNodeSource:
        return SqlNodeSource(self.conn)

    def latest_checkpoint(self) -> Checkpoint | None:
        if self._latest_known:
            return self._latest
        latest = latest_checkpoint(self.conn)
        if self._locked_head is not None:  # no other transaction can sign while the lock lasts
            self._latest, self._latest_known = latest, True
        return latest

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        add_checkpoint(self.conn, checkpoint)
        if self._locked_head is not None:
            self._latest, self._latest_known = checkpoint, True

    def checkpoints_between(self, lo: int, hi: int) -> list[Checkpoint]:
        return checkpoints_between(self.conn, lo, hi)

    def search(self, filters: Mapping[str, Any], limit: int, before_seq: int | None) -> list[dict]:
        return search(self.conn, filters, limit, before_seq)

    def records_of_subject(self, subject_id: str) -> list[dict]:
        return records_of_subject(self.conn, subject_id)

    def seq_range(self, start: datetime | None, end: datetime | None) -> tuple[int, int] | None:
        return seq_range(self.conn, start, end)

    def export_lines(self, start: int, end: int) -> list[dict]:
        return export_lines(self.conn, start, end)

    def stream_position(self, *, lock: bool = False) -> int | None:
        return stream_position(self.conn, lock=lock)

    def set_stream_position(self, next_seq: int, now: datetime) -> None:
        set_stream_position(self.conn, next_seq, now)

    def leaves_from(self, start: int, limit: int) -> list[tuple[int, str, str]]:
        return leaves_from(self.conn, start, limit)


def with_sql_audit_log(uow: Any) -> Any:
    """``uow`` (a kernel :class:`~upgestao_kernel.unit_of_work.UnitOfWork`) handing out ``uow.audit_log``."""
    return uow.with_repositories(lambda unit: AuditRepositories(SqlAuditLog(unit.conn)))


def sql_transactions(engine: Engine):
    """The ingest's transactions on ``engine``: each ``with`` is one ``engine.begin()``."""

    @contextmanager
    def transaction() -> Iterator[SqlAuditLog]:
        with engine.begin() as conn:
            yield SqlAuditLog(conn)

    return transaction
