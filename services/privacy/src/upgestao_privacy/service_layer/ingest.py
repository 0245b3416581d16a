"""Ingest: audit records from the ``audit`` exchange into the append-only log.

A batch is validated record by record (a malformed one is refused, to be
parked by the caller, never stored), appended in one transaction (gap-free
seqs, Merkle nodes, head) and, when 1,000 records arrived since the last
checkpoint, signed in the same transaction. The caller acks the messages
only after this returns: a crash at any point leaves them in the queue, and
redelivered records are recognised by ``audit_id``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError, validate
from sqlalchemy.engine import Engine
from upgestao_kernel.audit import AuditRecordSchema

from ..adapters import audit_store
from ..domain.checkpoints import Checkpoint, CheckpointSigner

# the lengths of the indexed columns (adapters.tables), so a valid record always fits
_LIMITS = {"service": 64, "resource_type": 64, "subject_id": 64, "actor_id": 64, "actor_role": 64,
           "request_id": 128, "resource_id": 200, "purpose": 200, "source_ip": 64, "recipient": 200}


class IngestSchema(AuditRecordSchema):
    """The wire form, with the lengths the store can hold."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name, limit in _LIMITS.items():
            self.fields[name].validators.append(validate.Length(max=limit))


_schema = IngestSchema()


def parse(body: Any) -> dict[str, Any]:
    """The record to store, in its canonical wire form; ``ValueError`` if malformed."""
    if not isinstance(body, Mapping):
        raise ValueError("an audit record must be a JSON object")
    try:
        loaded = _schema.load(body)
    except ValidationError as exc:
        raise ValueError(f"invalid audit record: {sorted(exc.messages)}") from None
    record = dict(loaded)
    record["audit_id"] = str(loaded["audit_id"])
    record["occurred_at"] = loaded["occurred_at"].astimezone(UTC).isoformat(timespec="microseconds")
    record["fields"] = sorted(set(loaded["fields"]))
    for name in ("actor_id", "actor_role", "resource_id", "subject_id", "request_id", "source_ip", "recipient"):
        record.setdefault(name, None)
    return record


@dataclass
class IngestResult:
    stored: list[audit_store.Appended] = field(default_factory=list)
    duplicates: int = 0
    checkpoint: Checkpoint | None = None


def store(engine: Engine, records: Sequence[dict[str, Any]], signer: CheckpointSigner, *,
          checkpoint_every: int, now: datetime | None = None) -> IngestResult:
    """Append ``records`` (parsed) in one transaction; sign a checkpoint if one is due."""
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        stored = audit_store.append(conn, records, now)
        checkpoint = audit_store.checkpoint_if_due(conn, signer, now, every=checkpoint_every) if stored else None
    return IngestResult(stored=stored, duplicates=len(records) - len(stored), checkpoint=checkpoint)


def sign_pending(engine: Engine, signer: CheckpointSigner, now: datetime | None = None) -> Checkpoint | None:
    """Sign the tree if records arrived since the last checkpoint (the 10-second timer)."""
    with engine.begin() as conn:
        return audit_store.checkpoint_if_due(conn, signer, now or datetime.now(UTC), every=1, force=True)
