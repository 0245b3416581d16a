"""Tables of privacy's consent area (projections/read models), on the audit log's metadata, and the
projection that keeps them: correction requests, policy versions, policy acceptances.

A consent holder's choices and a user's acceptance history are read from their event streams (the
stream *is* the history); the tables serve the lists: corrections by requester or state, the versions,
who accepted what. :class:`ConsentAreaProjection` is idempotent (upserts by primary key), so it may be
applied by the use cases right after ``uow.save`` and also be listed among the service's projections.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from upgestao_kernel.events import EventEnvelope
from upgestao_kernel.schema import UtcDateTime

from ..domain.corrections import CorrectionDecided, CorrectionFiled
from ..domain.policies import PolicyAccepted, PolicyPublished
from .tables import metadata

# What the runtime role may do on this area's tables (merged into database_roles.RUNTIME_PRIVILEGES)
PRIVILEGES: Mapping[str, tuple[str, ...]] = {
    "privacy_corrections": ("SELECT", "INSERT", "UPDATE"),
    "privacy_policy_versions": ("SELECT", "INSERT", "UPDATE"),
    "privacy_policy_acceptances": ("SELECT", "INSERT", "UPDATE"),
}

corrections = sa.Table(
    "privacy_corrections",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("requester_id", sa.String(36), nullable=False),
    sa.Column("fields", sa.Text, nullable=False),  # JSON list of field names
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("sealed", sa.Text, nullable=False),  # JSON: field -> vault ciphertext (and "reason")
    sa.Column("decision_sealed", sa.Text, nullable=True),  # JSON: {"reason": ciphertext} of a denial
    sa.Column("reviewer_id", sa.String(36), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("decided_at", UtcDateTime, nullable=True),
    sa.Index("ix_privacy_corrections_requester", "requester_id", "created_at"),
    sa.Index("ix_privacy_corrections_status", "status", "created_at"),
)

policy_versions = sa.Table(
    "privacy_policy_versions",
    metadata,
    sa.Column("version", sa.String(32), primary_key=True),
    sa.Column("effective_at", UtcDateTime, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("published_at", UtcDateTime, nullable=False),
    sa.Column("published_by", sa.String(36), nullable=True),
    sa.Column("campaign_id", sa.String(36), nullable=False),
    sa.Column("announced", sa.Boolean, nullable=False),
)

policy_acceptances = sa.Table(
    "privacy_policy_acceptances",
    metadata,
    sa.Column("user_id", sa.String(36), primary_key=True),
    sa.Column("version", sa.String(32), primary_key=True),
    sa.Column("accepted_at", UtcDateTime, nullable=False),
)

TABLES = (corrections, policy_versions, policy_acceptances)


def _id(envelope: EventEnvelope) -> str:
    return envelope.stream_id.split("-", 1)[1]


def _upsert(conn: Connection, table: sa.Table, row: dict[str, Any], keys: Sequence[str]) -> None:
    where = sa.and_(*(table.c[k] == row[k] for k in keys))
    if conn.execute(sa.select(sa.literal(1)).select_from(table).where(where)).first() is None:
        conn.execute(table.insert().values(**row))
    else:
        conn.execute(table.update().where(where).values(**{k: v for k, v in row.items() if k not in keys}))


class ConsentAreaProjection:
    name = "privacy_consent_area"
    tables = TABLES

    def apply(self, conn: Connection, envelope: EventEnvelope) -> None:
        kind = envelope.type
        if kind == CorrectionFiled.type:
            data = envelope.data
            _upsert(conn, corrections, {
                "id": _id(envelope), "requester_id": data["requester_id"], "fields": json.dumps(data["fields"]),
                "source": data["source"], "status": "pending", "sealed": json.dumps(data.get("sealed") or {}),
                "decision_sealed": None, "reviewer_id": None, "created_at": envelope.occurred_at,
                "decided_at": None}, ("id",))
        elif kind == CorrectionDecided.type:
            data = envelope.data
            conn.execute(corrections.update().where(corrections.c.id == _id(envelope)).values(
                status=data["decision"], reviewer_id=data["reviewer_id"], decided_at=envelope.occurred_at,
                decision_sealed=json.dumps(data.get("sealed") or {})))
        elif kind == PolicyPublished.type:
            data = envelope.data
            _upsert(conn, policy_versions, {
                "version": _id(envelope), "effective_at": datetime.fromisoformat(data["effective_at"]),
                "summary": data["summary"], "text": data["text"], "published_at": envelope.occurred_at,
                "published_by": data.get("published_by"), "campaign_id": data["campaign_id"],
                "announced": bool(data["announced"])}, ("version",))
        elif kind == PolicyAccepted.type:
            data = envelope.data
            _upsert(conn, policy_acceptances, {
                "user_id": _id(envelope), "version": data["policy_version"],
                "accepted_at": datetime.fromisoformat(data["accepted_at"])}, ("user_id", "version"))


PROJECTION = ConsentAreaProjection()


def project(conn: Connection, envelopes: Sequence[EventEnvelope]) -> None:
    for envelope in envelopes:
        PROJECTION.apply(conn, envelope)


# -- reads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorrectionRow:
    id: str
    requester_id: str
    fields: list[str]
    source: str
    status: str
    sealed: dict[str, str | None]
    decision_sealed: dict[str, str | None]
    reviewer_id: str | None
    created_at: datetime
    decided_at: datetime | None


def _correction(row: Any) -> CorrectionRow:
    return CorrectionRow(id=row.id, requester_id=row.requester_id, fields=json.loads(row.fields), source=row.source,
                         status=row.status, sealed=json.loads(row.sealed),
                         decision_sealed=json.loads(row.decision_sealed) if row.decision_sealed else {},
                         reviewer_id=row.reviewer_id, created_at=row.created_at, decided_at=row.decided_at)


def get_correction(conn: Connection, correction_id: str) -> CorrectionRow | None:
    row = conn.execute(sa.select(corrections).where(corrections.c.id == correction_id)).first()
    return _correction(row) if row is not None else None


def list_corrections(conn: Connection, *, requester_id: str | None, status: str | None, limit: int,
                     before: tuple[datetime, str] | None) -> list[CorrectionRow]:
    """Newest first; ``before`` is the (created_at, id) of the last row of the previous page."""
    query = sa.select(corrections)
    if requester_id is not None:
        query = query.where(corrections.c.requester_id == requester_id)
    if status is not None:
        query = query.where(corrections.c.status == status)
    if before is not None:
        at, cid = before
        query = query.where(sa.or_(corrections.c.created_at < at,
                                   sa.and_(corrections.c.created_at == at, corrections.c.id < cid)))
    query = query.order_by(corrections.c.created_at.desc(), corrections.c.id.desc()).limit(limit)
    return [_correction(row) for row in conn.execute(query)]


@dataclass(frozen=True)
class PolicyRow:
    version: str
    effective_at: datetime
    summary: str
    text: str
    published_at: datetime
    published_by: str | None
    campaign_id: str
    announced: bool


def _policy(row: Any) -> PolicyRow:
    return PolicyRow(version=row.version, effective_at=row.effective_at, summary=row.summary, text=row.text,
                     published_at=row.published_at, published_by=row.published_by, campaign_id=row.campaign_id,
                     announced=row.announced)


def get_policy(conn: Connection, version: str) -> PolicyRow | None:
    row = conn.execute(sa.select(policy_versions).where(policy_versions.c.version == version)).first()
    return _policy(row) if row is not None else None


def policy_versions_in_effect(conn: Connection) -> list[tuple[str, datetime]]:
    """Every version with its effective instant (no texts)."""
    return [(r.version, r.effective_at) for r in
            conn.execute(sa.select(policy_versions.c.version, policy_versions.c.effective_at))]


def all_policies(conn: Connection) -> list[PolicyRow]:
    query = sa.select(policy_versions).order_by(policy_versions.c.effective_at.desc(), policy_versions.c.version.desc())
    return [_policy(row) for row in conn.execute(query)]


def has_policies(conn: Connection) -> bool:
    return conn.execute(sa.select(sa.literal(1)).select_from(policy_versions).limit(1)).first() is not None


def accepted_versions(conn: Connection, user_id: str) -> set[str]:
    return set(conn.execute(sa.select(policy_acceptances.c.version)
                            .where(policy_acceptances.c.user_id == user_id)).scalars())
