"""What privacy's use cases ask of the audit log's storage, whichever store keeps it.

Two implementations: :class:`.audit_store.SqlAuditLog` (the service's tables, on a transaction's
connection) and :class:`.memory_audit_log.MemoryAuditLog` (rows in a
:class:`~upgestao_kernel.fakes.MemoryStore`, for unit tests). Both keep the same log: records with
gap-free seqs and their leaves, every complete subtree of the Merkle tree, the tree's head,
the signed checkpoints and how far the audit stream was fed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ..domain.checkpoints import Checkpoint
from ..domain.merkle import Frontier, NodeSource

# the filters of a search: who a record is about and who acted are read from the leaf (the tree vouches
# for them), the others from the index columns kept beside it
FILTERS = ("subject_id", "actor_id", "action", "service", "resource_type", "outcome", "request_id")
LEAF_FILTERS = ("subject_id", "actor_id")
# The columns kept beside the leaf for filtering. They are not in the tree: an edit of a column alone
# would hide a record from a filter (or file it under someone else) while the leaves still verify. So
# every record read back is checked against its leaf (ColumnsTampered), and the export shows the
# record as the columns file it, so that the verifier sees such an edit as an edited leaf.
INDEX_COLUMNS = ("audit_id", "occurred_at", "service", "action", "resource_type", "subject_id", "actor_id",
                 "request_id", "outcome")


@dataclass(frozen=True)
class Head:
    tree_size: int
    frontier: Frontier


@dataclass(frozen=True)
class Appended:
    seq: int
    record: dict[str, Any]
    leaf: str


class ColumnsTampered(Exception):
    """Stored records whose index columns disagree with their leaves: ``{seq: [column, ...]}``."""

    def __init__(self, disagreements: Mapping[int, list[str]]) -> None:
        self.disagreements = dict(disagreements)
        named = ", ".join(f"seq {seq} ({', '.join(cols)})" for seq, cols in sorted(self.disagreements.items()))
        super().__init__(f"{len(self.disagreements)} records whose columns disagree with their leaves: {named}")


class AuditLogRepository(Protocol):
    """The audit log as the service layer uses it (one transaction's view)."""

    def head(self, *, lock: bool = False) -> Head:
        """The tree's size and right border; ``lock`` holds it until the transaction ends (one appender)."""

    def append(self, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Appended]:
        """Store ``records`` (validated wire dicts) after the end of the log, skipping any whose
        ``audit_id`` is stored already or repeated in the batch; takes the head lock."""

    def nodes(self) -> NodeSource:
        """The stored subtrees, for proofs."""

    def latest_checkpoint(self) -> Checkpoint | None: ...

    def add_checkpoint(self, checkpoint: Checkpoint) -> None: ...

    def checkpoints_between(self, lo: int, hi: int) -> list[Checkpoint]:
        """Checkpoints with ``lo < tree_size <= hi``, oldest first."""

    def search(self, filters: Mapping[str, Any], limit: int, before_seq: int | None) -> list[dict]:
        """Records matching every filter (``FILTERS``, ``from``, ``to``), highest seq first, at most
        ``limit``, below ``before_seq``; :class:`ColumnsTampered` if a row disagrees with its leaf."""

    def records_of_subject(self, subject_id: str) -> list[dict]:
        """Every record of ``subject_id``, oldest first; :class:`ColumnsTampered` as ``search``."""

    def seq_range(self, start: datetime | None, end: datetime | None) -> tuple[int, int] | None:
        """The smallest seq range ``[first, end)`` holding every record that occurred in ``[start, end)``."""

    def export_lines(self, start: int, end: int) -> list[dict]:
        """``{seq, leaf_hash, record}`` of the records with ``start <= seq < end``, each record as its
        columns file it (so the verifier names an edited column as an edited leaf)."""

    def stream_position(self, *, lock: bool = False) -> int | None:
        """The next seq to put on the audit stream; ``None`` when another process holds the lock."""

    def set_stream_position(self, next_seq: int, now: datetime) -> None: ...

    def leaves_from(self, start: int, limit: int) -> list[tuple[int, str, str]]:
        """``(seq, audit_id, leaf)`` of up to ``limit`` records from ``start`` on."""


AuditLogTransactions = Callable[[], AbstractContextManager[AuditLogRepository]]
"""How the ingest opens one transaction on the log (no request context, no audit of its own)."""


class AuditRepositories:
    """The repositories a privacy unit of work hands out: ``uow.audit_log``."""

    def __init__(self, audit_log: AuditLogRepository) -> None:
        self.audit_log = audit_log


# -- the leaf check both stores make ------------------------------------------------------


def disagreeing_columns(row: Any, record: Mapping[str, Any]) -> list[str]:
    """The columns (and ``seq``) of ``row`` whose value is not the one its leaf ``record`` holds."""
    wrong = ["seq"] if record.get("seq") != row.seq else []
    for name in INDEX_COLUMNS:
        column, leaf = getattr(row, name), record.get(name)
        if name == "occurred_at":
            try:
                leaf = datetime.fromisoformat(leaf) if isinstance(leaf, str) else leaf
            except ValueError:
                leaf = None
        if column != leaf:
            wrong.append(name)
    return wrong


def checked(rows: Iterable[Any]) -> list[dict]:
    """The leaves of ``rows``, each checked against its row's columns; :class:`ColumnsTampered` otherwise."""
    records: list[dict] = []
    tampered: dict[int, list[str]] = {}
    for row in rows:
        record = json.loads(row.leaf)
        wrong = disagreeing_columns(row, record) if isinstance(record, dict) else ["leaf"]
        if wrong:
            tampered[row.seq] = wrong
        records.append(record)
    if tampered:
        raise ColumnsTampered(tampered)
    return records


def export_line(row: Any, leaf_hash: bytes | None) -> dict:
    """A line of an export: the record as its row's columns file it, and the leaf hash the tree holds."""
    record = json.loads(row.leaf)
    if isinstance(record, dict):
        for name in disagreeing_columns(row, record):
            if name in INDEX_COLUMNS:
                value = getattr(row, name)
                record[name] = value.isoformat() if isinstance(value, datetime) else value
    return {"seq": row.seq, "leaf_hash": leaf_hash, "record": record}
