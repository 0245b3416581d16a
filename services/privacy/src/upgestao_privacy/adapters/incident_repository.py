"""The incidents' read model, in SQL (the unit of work's connection) and in memory (unit tests).

What an event of an ``incident-<id>`` stream does to the rows is said once (:func:`changes`), and both
repositories apply that list, so they cannot drift apart. The service layer applies the events it saved
(``uow.incidents.project(envelopes)``) in the same transaction: the read model never disagrees with the log.
Nothing here deletes: an incident is kept (the runtime role holds no DELETE on these tables).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from upgestao_kernel.events import EventEnvelope, EventHandlers
from upgestao_kernel.fakes import MemoryRepository

from ..domain.incidents import (
    DRAFT,
    AffectedPeopleResolved,
    BreachNoticeRequested,
    IncidentConfirmed,
    IncidentRecorded,
)
from .incident_tables import privacy_incident_people, privacy_incidents

INCIDENTS = "privacy_incidents"
PEOPLE = "privacy_incident_people"


@dataclass(frozen=True)
class Insert:
    table: str
    row: Mapping[str, Any]


@dataclass(frozen=True)
class Update:
    table: str
    id: str
    values: Mapping[str, Any]


def _id(e: EventEnvelope) -> str:
    return e.stream_id.split("-", 1)[1]


class _Changes:
    on = EventHandlers()

    @on(IncidentRecorded)
    def _recorded(self, out: list, e: EventEnvelope, event: IncidentRecorded) -> None:
        out.append(Insert(INCIDENTS, {
            "id": _id(e), "state": DRAFT, "categories": list(event.categories), "affected_kind": event.affected_kind,
            "affected_channel": event.affected_channel, "explicit_count": len(event.affected_ids),
            "occurred_at": datetime.fromisoformat(event.occurred_at),
            "detected_at": datetime.fromisoformat(event.detected_at),
            "deadline_at": datetime.fromisoformat(event.deadline_at), "recorded_at": e.occurred_at,
            "recorded_by": e.actor.id, "confirmed_at": None, "confirmed_by": None, "affected_count": None,
            "campaign_id": None, "notice_id": None, "late": False, "sealed": dict(event.sealed)}))

    @on(AffectedPeopleResolved)
    def _people(self, out: list, e: EventEnvelope, event: AffectedPeopleResolved) -> None:
        incident_id = _id(e)
        out.extend(Insert(PEOPLE, {"incident_id": incident_id, "position": event.offset + i, "subject_id": sid})
                   for i, sid in enumerate(event.subject_ids))

    @on(IncidentConfirmed)
    def _confirmed(self, out: list, e: EventEnvelope, event: IncidentConfirmed) -> None:
        values: dict[str, Any] = {"state": "confirmed",
                                  "confirmed_at": datetime.fromisoformat(event.confirmed_at),
                                  "confirmed_by": e.actor.id,
                                  "affected_count": event.affected_count, "campaign_id": event.campaign_id,
                                  "late": event.late}
        if event.sealed:
            values["sealed_update"] = dict(event.sealed)
        out.append(Update(INCIDENTS, _id(e), values))

    @on(BreachNoticeRequested)
    def _notice(self, out: list, e: EventEnvelope, event: BreachNoticeRequested) -> None:
        out.append(Update(INCIDENTS, _id(e), {"notice_id": e.event_id, "campaign_id": event.campaign_id}))


_CHANGES = _Changes()


def changes(envelope: EventEnvelope) -> list[Insert | Update]:
    out: list[Insert | Update] = []
    _CHANGES.on.dispatch(_CHANGES, envelope, out)
    return out


_TABLES = {INCIDENTS: privacy_incidents, PEOPLE: privacy_incident_people}
c = privacy_incidents.c
p = privacy_incident_people.c


def _apply_sql(conn: Any, envelopes: Iterable[EventEnvelope]) -> None:
    people: list[Mapping[str, Any]] = []
    for envelope in envelopes:
        for change in changes(envelope):
            if isinstance(change, Insert) and change.table == PEOPLE:
                people.append(change.row)  # a page of people: one multi-row insert
                continue
            if people:
                conn.execute(privacy_incident_people.insert(), people)
                people = []
            if isinstance(change, Insert):
                conn.execute(_TABLES[change.table].insert().values(**change.row))
            else:
                values = dict(change.values)
                update = values.pop("sealed_update", None)
                if update:
                    current = conn.execute(sa.select(c.sealed).where(c.id == change.id)).scalar_one()
                    values["sealed"] = {**current, **update}
                conn.execute(privacy_incidents.update().where(c.id == change.id).values(**values))
    if people:
        conn.execute(privacy_incident_people.insert(), people)


class IncidentProjection:
    """The incidents' read model as a kernel projection (``Database(projections=...)``: then ``rebuild``
    covers it, and the unit of work applies it itself)."""

    name = "privacy_incidents"
    tables = (privacy_incidents, privacy_incident_people)

    def apply(self, conn: Any, envelope: EventEnvelope) -> None:
        _apply_sql(conn, [envelope])


projection = IncidentProjection()


class SqlIncidents:
    def __init__(self, uow: Any) -> None:
        self._uow = uow

    @property
    def _conn(self) -> Any:
        return self._uow.conn

    def project(self, envelopes: Iterable[EventEnvelope]) -> None:
        """Apply the projection to events just appended, unless the unit of work applies it itself."""
        if any(isinstance(p, IncidentProjection) for p in getattr(self._uow, "projections", ())):
            return
        _apply_sql(self._conn, envelopes)

    def get(self, incident_id: str) -> dict | None:
        row = self._conn.execute(sa.select(privacy_incidents).where(c.id == incident_id)).first()
        return dict(row._mapping) if row is not None else None

    def page(self, limit: int, before: tuple[datetime, str] | None) -> list[dict]:
        query = sa.select(privacy_incidents).order_by(c.recorded_at.desc(), c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(sa.tuple_(c.recorded_at, c.id) < sa.tuple_(*before))
        return [dict(r._mapping) for r in self._conn.execute(query)]

    def people(self, incident_id: str, offset: int, limit: int) -> list[str]:
        return list(self._conn.execute(
            sa.select(p.subject_id).where(p.incident_id == incident_id, p.position >= offset)
            .order_by(p.position).limit(limit)).scalars())

    def affects(self, incident_id: str, subject_id: str) -> bool:
        return self._conn.execute(sa.select(sa.literal(1)).where(
            p.incident_id == incident_id, p.subject_id == subject_id).limit(1)).first() is not None

    def by_notice(self, notice_id: str) -> dict | None:
        row = self._conn.execute(sa.select(privacy_incidents).where(c.notice_id == notice_id)).first()
        return dict(row._mapping) if row is not None else None


class MemoryIncidents(MemoryRepository):
    def project(self, envelopes: Iterable[EventEnvelope]) -> None:
        for envelope in envelopes:
            for change in changes(envelope):
                if isinstance(change, Insert):
                    key = change.row["id"] if change.table == INCIDENTS else (
                        change.row["incident_id"], change.row["position"])
                    if self.tx.get(change.table, key) is not None:
                        raise KeyError(f"{change.table} {key} exists")  # a primary key, as in SQL
                    self.tx.put(change.table, key, change.row)
                else:
                    values = dict(change.values)
                    update = values.pop("sealed_update", None)
                    row = self.tx.get(INCIDENTS, change.id)
                    assert row is not None
                    if update:
                        values["sealed"] = {**row["sealed"], **update}
                    self.tx.update(INCIDENTS, change.id, **values)

    def get(self, incident_id: str) -> dict | None:
        return self.tx.get(INCIDENTS, incident_id)

    def page(self, limit: int, before: tuple[datetime, str] | None) -> list[dict]:
        rows = sorted(self.tx.table(INCIDENTS).values(), key=lambda r: (r["recorded_at"], r["id"]), reverse=True)
        if before is not None:
            rows = [r for r in rows if (r["recorded_at"], r["id"]) < before]
        return rows[:limit]

    def people(self, incident_id: str, offset: int, limit: int) -> list[str]:
        rows = sorted((r for r in self.tx.table(PEOPLE).values()
                       if r["incident_id"] == incident_id and r["position"] >= offset), key=lambda r: r["position"])
        return [r["subject_id"] for r in rows[:limit]]

    def affects(self, incident_id: str, subject_id: str) -> bool:
        return any(r["incident_id"] == incident_id and r["subject_id"] == subject_id
                   for r in self.tx.table(PEOPLE).values())

    def by_notice(self, notice_id: str) -> dict | None:
        return next((r for r in self.tx.table(INCIDENTS).values() if r["notice_id"] == notice_id), None)


@dataclass
class IncidentRepositories:
    incidents: Any


def sql_incident_repositories(uow: Any) -> IncidentRepositories:
    return IncidentRepositories(incidents=SqlIncidents(uow))


def memory_incident_repositories(uow: Any) -> IncidentRepositories:
    return IncidentRepositories(incidents=MemoryIncidents(uow))




def incidents_of(uow: Any) -> Any:
    """The incidents' repository on any unit of work (the notice is built on a unit another area opened):
    its own when it has one, else one on its connection (in memory for the fake unit of work)."""
    try:
        return uow.incidents
    except (AttributeError, RuntimeError):
        pass
    from upgestao_kernel.fakes import MemoryTransaction

    return MemoryIncidents(uow) if isinstance(uow.conn, MemoryTransaction) else SqlIncidents(uow)
