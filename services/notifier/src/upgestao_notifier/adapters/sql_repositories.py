"""The notifier's repositories on its SQL database (the unit of work's connection)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import sqlalchemy as sa
from upgestao_kernel.schema import processed_events
from upgestao_kernel.unit_of_work import UnitOfWork

from ..domain.deliveries import QUEUED, SENDING, SOFT_FAILED, STATUSES
from .ports import ACCEPTED, Cursor, DeliveryRecord
from .tables import deliveries, suppressions

d = deliveries.c


class SqlDeliveries:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    def _rows(self, query) -> list[DeliveryRecord]:
        return [DeliveryRecord.of(row._mapping) for row in self._uow.conn.execute(query)]

    def event_done(self, event_id: str) -> bool:
        p = processed_events.c
        query = sa.select(p.event_id).where(p.consumer == ACCEPTED, p.event_id == event_id)
        return self._uow.conn.execute(query).first() is not None

    def get_many(self, ids: list[str]) -> dict[str, DeliveryRecord]:
        if not ids:
            return {}
        return {r.id: r for r in self._rows(deliveries.select().where(d.id.in_(ids)))}

    def due(self, now: datetime, limit: int) -> list[DeliveryRecord]:
        return self._rows(deliveries.select().where(d.status == SOFT_FAILED, d.next_attempt_at <= now)
                          .order_by(d.next_attempt_at, d.id).limit(limit))

    def stale(self, before: datetime, limit: int) -> list[DeliveryRecord]:
        return self._rows(deliveries.select().where(sa.or_(
            sa.and_(d.status == SENDING, d.attempt_started_at < before),
            sa.and_(d.status == QUEUED, d.created_at < before),
        )).order_by(d.updated_at, d.id).limit(limit))

    def page(self, filters: Mapping[str, str], limit: int, after: Cursor | None) -> list[DeliveryRecord]:
        query = deliveries.select()
        for name, value in filters.items():
            query = query.where(getattr(d, name) == value)
        if after is not None:
            query = query.where(sa.tuple_(d.created_at, d.id) < sa.tuple_(*after))
        return self._rows(query.order_by(d.created_at.desc(), d.id.desc()).limit(limit))

    def counts(self, campaign_id: str) -> tuple[dict[str, int], datetime | None, datetime | None]:
        rows = self._uow.conn.execute(
            sa.select(d.status, sa.func.count(), sa.func.min(d.created_at), sa.func.max(d.updated_at))
            .where(d.campaign_id == campaign_id).group_by(d.status)).all()
        counts = dict.fromkeys(STATUSES, 0)
        counts.update({status: n for status, n, _, _ in rows})
        firsts = [r[2] for r in rows if r[2] is not None]
        lasts = [r[3] for r in rows if r[3] is not None]
        return counts, min(firsts) if firsts else None, max(lasts) if lasts else None


class SqlSuppressions:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    def suppressed(self, address_hashes: list[str]) -> set[str]:
        if not address_hashes:
            return set()
        query = sa.select(suppressions.c.address_hash).where(suppressions.c.address_hash.in_(address_hashes))
        return {row[0] for row in self._uow.conn.execute(query)}


class SqlRepositories:
    def __init__(self, uow: UnitOfWork) -> None:
        self.deliveries = SqlDeliveries(uow)
        self.suppressions = SqlSuppressions(uow)


def with_sql_repositories(uow: UnitOfWork) -> UnitOfWork:
    """``uow`` (a kernel unit of work on the notifier's database) with the notifier's repositories."""
    return uow.with_repositories(SqlRepositories)
