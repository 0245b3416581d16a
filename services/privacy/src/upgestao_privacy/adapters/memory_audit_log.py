"""The audit log in memory, for unit tests: :class:`~.ports.AuditLogRepository` on a
:class:`~upgestao_kernel.fakes.MemoryStore`.

It keeps what the SQL store keeps, in the store's tables: ``audit_records`` (by seq, the index
columns beside the leaf), ``audit_tree_nodes`` (every complete subtree, by ``(level, index)``),
``audit_tree_head``, ``audit_checkpoints`` (by tree size) and ``audit_stream_position``; the leaves
and nodes come from the domain's own code (:func:`~..domain.leaves.leaf_for`,
:class:`~..domain.merkle.Frontier`), so proofs and checkpoints are the ones the SQL store gives.
Filters on subject and actor read the leaf, and every record read back is checked against its
columns, as in SQL: a test that edits a row's column sees :class:`~.ports.ColumnsTampered`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from upgestao_kernel.context import system_context
from upgestao_kernel.fakes import FakeUnitOfWork, MemoryStore, MemoryTransaction

from ..domain.checkpoints import Checkpoint
from ..domain.leaves import leaf_for
from ..domain.merkle import Frontier, MissingNode, NodeKey, leaf_hash
from .ports import FILTERS, LEAF_FILTERS, Appended, AuditRepositories, Head, checked, export_line

HEAD = 1
RECORDS, NODES, HEADS, CHECKPOINTS, POSITIONS = (
    "audit_records", "audit_tree_nodes", "audit_tree_head", "audit_checkpoints", "audit_stream_position")


class _MemoryNodeSource:
    """:class:`~..domain.merkle.NodeSource` over the transaction's ``audit_tree_nodes``."""

    def __init__(self, tx: MemoryTransaction) -> None:
        self.tx = tx

    def get_nodes(self, keys: Collection[NodeKey]) -> Mapping[NodeKey, bytes]:
        found: dict[NodeKey, bytes] = {}
        for key in keys:
            row = self.tx.get(NODES, key)
            if row is None:
                raise MissingNode(key)
            found[key] = row["hash"]
        return found


class MemoryAuditLog:
    """The audit log of one in-memory transaction (reads see its own writes; the store sees them at commit)."""

    def __init__(self, tx: MemoryTransaction) -> None:
        self.tx = tx

    # -- appending --------------------------------------------------------------------------
    def head(self, *, lock: bool = False) -> Head:  # (one transaction at a time: nothing to lock)
        row = self.tx.get(HEADS, HEAD) or {"tree_size": 0, "frontier": b""}
        return Head(row["tree_size"], Frontier.from_bytes(row["tree_size"], row["frontier"]))

    def append(self, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Appended]:
        head = self.head(lock=True)
        known = {row["audit_id"] for row in self.tx.table(RECORDS).values()}
        fresh: dict[str, Mapping[str, Any]] = {}
        for record in records:
            if record["audit_id"] not in known:
                fresh.setdefault(record["audit_id"], record)
        frontier, seq = head.frontier, head.tree_size
        appended: list[Appended] = []
        for record in fresh.values():
            leaf = leaf_for(record, seq)
            for level, index, digest in frontier.append(leaf_hash(leaf)):
                self.tx.put(NODES, (level, index), {"hash": digest})
            text = leaf.decode("utf-8")
            self.tx.put(RECORDS, seq, {
                "seq": seq, "audit_id": record["audit_id"],
                "occurred_at": datetime.fromisoformat(record["occurred_at"]),
                "service": record["service"], "action": record["action"], "resource_type": record["resource_type"],
                "subject_id": record.get("subject_id"), "actor_id": record.get("actor_id"),
                "request_id": record.get("request_id"), "outcome": record["outcome"], "leaf": text, "stored_at": now,
            })
            appended.append(Appended(seq, {**record, "seq": seq}, text))
            seq += 1
        if appended:
            self.tx.put(HEADS, HEAD, {"tree_size": frontier.size, "frontier": frontier.to_bytes(), "updated_at": now})
        return appended

    def nodes(self) -> _MemoryNodeSource:
        return _MemoryNodeSource(self.tx)

    # -- checkpoints --------------------------------------------------------------------------
    def _checkpoints(self) -> list[Checkpoint]:
        return [Checkpoint(**row) for _, row in sorted(self.tx.table(CHECKPOINTS).items())]

    def latest_checkpoint(self) -> Checkpoint | None:
        checkpoints = self._checkpoints()
        return checkpoints[-1] if checkpoints else None

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        if self.tx.get(CHECKPOINTS, checkpoint.tree_size) is not None:  # the primary key of the SQL table
            raise ValueError(f"a checkpoint of tree size {checkpoint.tree_size} is stored already")
        self.tx.put(CHECKPOINTS, checkpoint.tree_size, {
            "tree_size": checkpoint.tree_size, "root_hash": checkpoint.root_hash, "signed_at": checkpoint.signed_at,
            "key_id": checkpoint.key_id, "signature": checkpoint.signature})

    def checkpoints_between(self, lo: int, hi: int) -> list[Checkpoint]:
        return [c for c in self._checkpoints() if lo < c.tree_size <= hi]

    # -- reading records --------------------------------------------------------------------------
    def _rows(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(**row) for _, row in sorted(self.tx.table(RECORDS).items())]

    @staticmethod
    def _value(row: SimpleNamespace, name: str) -> Any:
        if name in LEAF_FILTERS:  # as json_extract / ->> read the leaf
            leaf = json.loads(row.leaf)
            return leaf.get(name) if isinstance(leaf, dict) else None
        return getattr(row, name)

    def search(self, filters: Mapping[str, Any], limit: int, before_seq: int | None) -> list[dict]:
        def matches(row: SimpleNamespace) -> bool:
            return (all(self._value(row, name) == filters[name] for name in FILTERS if filters.get(name) is not None)
                    and (filters.get("from") is None or row.occurred_at >= filters["from"])
                    and (filters.get("to") is None or row.occurred_at < filters["to"])
                    and (before_seq is None or row.seq < before_seq))

        return checked([row for row in reversed(self._rows()) if matches(row)][:limit])

    def records_of_subject(self, subject_id: str) -> list[dict]:
        return checked([row for row in self._rows() if self._value(row, "subject_id") == subject_id])

    def seq_range(self, start: datetime | None, end: datetime | None) -> tuple[int, int] | None:
        seqs = [row.seq for row in self._rows() if (start is None or row.occurred_at >= start)
                and (end is None or row.occurred_at < end)]
        return (min(seqs), max(seqs) + 1) if seqs else None

    def export_lines(self, start: int, end: int) -> list[dict]:
        lines = []
        for row in self._rows():
            if start <= row.seq < end:
                node = self.tx.get(NODES, (0, row.seq))
                lines.append(export_line(row, node["hash"] if node is not None else None))
        return lines

    # -- the stream position --------------------------------------------------------------------
    def stream_position(self, *, lock: bool = False) -> int | None:
        row = self.tx.get(POSITIONS, HEAD)
        return 0 if row is None else row["next_seq"]

    def set_stream_position(self, next_seq: int, now: datetime) -> None:
        self.tx.put(POSITIONS, HEAD, {"next_seq": next_seq, "updated_at": now})

    def leaves_from(self, start: int, limit: int) -> list[tuple[int, str, str]]:
        return [(row.seq, row.audit_id, row.leaf) for row in self._rows() if row.seq >= start][:limit]


def with_memory_audit_log(uow: FakeUnitOfWork) -> FakeUnitOfWork:
    """``uow`` handing out ``uow.audit_log`` on its in-memory transaction."""
    return uow.with_repositories(lambda unit: AuditRepositories(MemoryAuditLog(unit.conn)))


def memory_transactions(store: MemoryStore) -> Callable[[], Any]:
    """The ingest's transactions on ``store``: each ``with`` commits (or drops) one in-memory transaction."""

    @contextmanager
    def transaction() -> Iterator[MemoryAuditLog]:
        with with_memory_audit_log(FakeUnitOfWork(store, system_context())) as uow:
            yield uow.audit_log

    return transaction
