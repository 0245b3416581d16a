"""Tables of privacy's consent area (projections/read models), on the audit log's metadata, the projection
that keeps them (correction requests, policy versions, policy acceptances) and the area's repository.

A consent holder's choices and a user's acceptance history are read from their event streams (the
stream *is* the history); the tables serve the lists: corrections by requester or state, the versions,
who accepted what. What an event does to the tables is said once (:func:`row_changes`: upserts and
updates by primary key, so applying it twice changes nothing); :class:`ConsentAreaProjection` applies it
in SQL (it may be listed among the service's projections too), :class:`MemoryConsentArea` to the fake
unit of work's tables. The use cases reach both through :func:`consent_area` (``SqlConsentArea`` on a real
unit of work): they hold no SQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from upgestao_kernel import eventstore
from upgestao_kernel.events import EventEnvelope
from upgestao_kernel.eventstore import ConcurrencyError
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


KEYS = {"privacy_corrections": ("id",), "privacy_policy_versions": ("version",),
        "privacy_policy_acceptances": ("user_id", "version")}
BUDGETS = "privacy_contact_budgets"  # the contact channel's budgets table (request area): keys of our own


def _id(envelope: EventEnvelope) -> str:
    return envelope.stream_id.split("-", 1)[1]


@dataclass(frozen=True)
class RowChange:
    """``upsert``: the whole row (inserted, or its other columns set); ``update``: some columns of an existing one."""

    table: str
    key: tuple
    values: dict[str, Any]
    upsert: bool


def row_changes(envelope: EventEnvelope) -> list[RowChange]:
    """What ``envelope`` does to the area's tables (nothing for the events of other areas)."""
    kind, data = envelope.type, envelope.data
    if kind == CorrectionFiled.type:
        cid = _id(envelope)
        return [RowChange("privacy_corrections", (cid,), {
            "id": cid, "requester_id": data["requester_id"], "fields": json.dumps(data["fields"]),
            "source": data["source"], "status": "pending", "sealed": json.dumps(data.get("sealed") or {}),
            "decision_sealed": None, "reviewer_id": None, "created_at": envelope.occurred_at, "decided_at": None},
            upsert=True)]
    if kind == CorrectionDecided.type:
        return [RowChange("privacy_corrections", (_id(envelope),), {
            "status": data["decision"], "reviewer_id": data["reviewer_id"], "decided_at": envelope.occurred_at,
            "decision_sealed": json.dumps(data.get("sealed") or {})}, upsert=False)]
    if kind == PolicyPublished.type:
        version = _id(envelope)
        return [RowChange("privacy_policy_versions", (version,), {
            "version": version, "effective_at": datetime.fromisoformat(data["effective_at"]),
            "summary": data["summary"], "text": data["text"], "published_at": envelope.occurred_at,
            "published_by": data.get("published_by"), "campaign_id": data["campaign_id"],
            "announced": bool(data["announced"])}, upsert=True)]
    if kind == PolicyAccepted.type:
        user, version = _id(envelope), data["policy_version"]
        return [RowChange("privacy_policy_acceptances", (user, version), {
            "user_id": user, "version": version, "accepted_at": datetime.fromisoformat(data["accepted_at"])},
            upsert=True)]
    return []


_TABLES = {t.name: t for t in TABLES}


def _apply_sql(conn: Connection, change: RowChange) -> None:
    table = _TABLES[change.table]
    keys = KEYS[change.table]
    where = sa.and_(*(table.c[k] == v for k, v in zip(keys, change.key, strict=True)))
    others = {k: v for k, v in change.values.items() if k not in keys}
    if change.upsert and conn.execute(sa.select(sa.literal(1)).select_from(table).where(where)).first() is None:
        conn.execute(table.insert().values(**change.values))
    else:
        conn.execute(table.update().where(where).values(**others))


class ConsentAreaProjection:
    name = "privacy_consent_area"
    tables = TABLES

    def apply(self, conn: Connection, envelope: EventEnvelope) -> None:
        for change in row_changes(envelope):
            _apply_sql(conn, change)


PROJECTION = ConsentAreaProjection()


# -- rows -------------------------------------------------------------------------------------------------


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


def _correction(row: Mapping[str, Any]) -> CorrectionRow:
    return CorrectionRow(id=row["id"], requester_id=row["requester_id"], fields=json.loads(row["fields"]),
                         source=row["source"], status=row["status"], sealed=json.loads(row["sealed"]),
                         decision_sealed=json.loads(row["decision_sealed"]) if row["decision_sealed"] else {},
                         reviewer_id=row["reviewer_id"], created_at=row["created_at"], decided_at=row["decided_at"])


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


def _policy(row: Mapping[str, Any]) -> PolicyRow:
    return PolicyRow(version=row["version"], effective_at=row["effective_at"], summary=row["summary"],
                     text=row["text"], published_at=row["published_at"], published_by=row["published_by"],
                     campaign_id=row["campaign_id"], announced=bool(row["announced"]))


def _newest_first(rows: list[CorrectionRow], limit: int, before: tuple[datetime, str] | None) -> list[CorrectionRow]:
    rows = sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)
    if before is not None:
        rows = [r for r in rows if (r.created_at, r.id) < before]
    return rows[:limit]


# -- the repository ---------------------------------------------------------------------------------------


class SqlConsentArea:
    """The area's tables and streams on a real unit of work's connection."""

    def __init__(self, uow: Any) -> None:
        self._uow = uow

    @property
    def conn(self) -> Connection:
        return self._uow.conn

    def project(self, envelopes: Sequence[EventEnvelope]) -> None:
        """Apply the projection to events just appended, unless the unit of work applies it itself."""
        if any(isinstance(p, ConsentAreaProjection) for p in getattr(self._uow, "projections", ())):
            return
        for envelope in envelopes:
            PROJECTION.apply(self.conn, envelope)

    def stream(self, stream_id: str) -> list[EventEnvelope]:
        return list(eventstore.read_stream(self.conn, stream_id))

    def first_time(self, work: Callable[[], None]) -> bool:
        """Run ``work`` in a savepoint; ``False`` (nothing of it kept) when another unit did it meanwhile."""
        try:
            with self.conn.begin_nested():
                work()
        except ConcurrencyError:
            return False
        return True

    def correction(self, correction_id: str) -> CorrectionRow | None:
        row = self.conn.execute(sa.select(corrections).where(corrections.c.id == correction_id)).first()
        return _correction(row._mapping) if row is not None else None

    def corrections(self, *, requester_id: str | None, status: str | None, limit: int,
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
        return [_correction(row._mapping) for row in self.conn.execute(query)]

    def policy(self, version: str) -> PolicyRow | None:
        row = self.conn.execute(sa.select(policy_versions).where(policy_versions.c.version == version)).first()
        return _policy(row._mapping) if row is not None else None

    def policy_versions(self) -> list[tuple[str, datetime]]:
        """Every version with its effective instant (no texts)."""
        return [(r.version, r.effective_at) for r in
                self.conn.execute(sa.select(policy_versions.c.version, policy_versions.c.effective_at))]

    def policies(self) -> list[PolicyRow]:
        query = sa.select(policy_versions).order_by(policy_versions.c.effective_at.desc(),
                                                    policy_versions.c.version.desc())
        return [_policy(row._mapping) for row in self.conn.execute(query)]

    def has_policies(self) -> bool:
        return self.conn.execute(sa.select(sa.literal(1)).select_from(policy_versions).limit(1)).first() is not None

    def accepted_versions(self, user_id: str) -> set[str]:
        return set(self.conn.execute(sa.select(policy_acceptances.c.version)
                                     .where(policy_acceptances.c.user_id == user_id)).scalars())

    def budget(self, key: str) -> tuple[datetime, int] | None:
        from .request_tables import SqlRequests  # the contact channel's budgets (row locked until the unit ends)

        return SqlRequests(self._uow).budget(key)

    def set_budget(self, key: str, window_start: datetime, count: int) -> None:
        from .request_tables import SqlRequests

        SqlRequests(self._uow).set_budget(key, window_start, count)


class MemoryConsentArea:
    """The same on the fake unit of work (``uow.conn`` is its ``MemoryTransaction``), for unit tests."""

    def __init__(self, uow: Any) -> None:
        self._uow = uow

    @property
    def tx(self) -> Any:
        return self._uow.conn

    def project(self, envelopes: Sequence[EventEnvelope]) -> None:
        for envelope in envelopes:
            for change in row_changes(envelope):
                row = self.tx.get(change.table, change.key)
                if row is None and change.upsert:
                    self.tx.put(change.table, change.key, change.values)
                elif row is not None:
                    self.tx.put(change.table, change.key, {**row, **change.values})

    def stream(self, stream_id: str) -> list[EventEnvelope]:
        return list(self.tx.stream(stream_id))

    def first_time(self, work: Callable[[], None]) -> bool:
        work()  # one unit at a time in memory
        return True

    def correction(self, correction_id: str) -> CorrectionRow | None:
        row = self.tx.get("privacy_corrections", (correction_id,))
        return _correction(row) if row is not None else None

    def corrections(self, *, requester_id: str | None, status: str | None, limit: int,
                    before: tuple[datetime, str] | None) -> list[CorrectionRow]:
        rows = [_correction(r) for r in self.tx.table("privacy_corrections").values()
                if (requester_id is None or r["requester_id"] == requester_id)
                and (status is None or r["status"] == status)]
        return _newest_first(rows, limit, before)

    def policy(self, version: str) -> PolicyRow | None:
        row = self.tx.get("privacy_policy_versions", (version,))
        return _policy(row) if row is not None else None

    def policy_versions(self) -> list[tuple[str, datetime]]:
        return [(r["version"], r["effective_at"]) for r in self.tx.table("privacy_policy_versions").values()]

    def policies(self) -> list[PolicyRow]:
        return sorted((_policy(r) for r in self.tx.table("privacy_policy_versions").values()),
                      key=lambda p: (p.effective_at, p.version), reverse=True)

    def has_policies(self) -> bool:
        return bool(self.tx.table("privacy_policy_versions"))

    def accepted_versions(self, user_id: str) -> set[str]:
        return {r["version"] for r in self.tx.table("privacy_policy_acceptances").values() if r["user_id"] == user_id}

    def budget(self, key: str) -> tuple[datetime, int] | None:
        row = self.tx.get(BUDGETS, key)
        return (row["window_start"], row["count"]) if row is not None else None

    def set_budget(self, key: str, window_start: datetime, count: int) -> None:
        self.tx.put(BUDGETS, key, {"key": key, "window_start": window_start, "count": count})


ConsentArea = SqlConsentArea | MemoryConsentArea


def consent_area(uow: Any) -> ConsentArea:
    """The area's repository on ``uow`` (SQL on a real unit of work, memory on the fake)."""
    return SqlConsentArea(uow) if isinstance(uow.conn, Connection) else MemoryConsentArea(uow)
