"""The notifier's repositories and read models in memory, for unit tests of every use case.

Rows are dicts with the columns of :mod:`.tables`, kept in the unit of work's
:class:`~upgestao_kernel.fakes.MemoryTransaction`, folded from the recorded events by the same
row changes as the SQL projection (:mod:`.projections`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from upgestao_kernel.context import RequestContext
from upgestao_kernel.fakes import FakeUnitOfWork, MemoryRepository, MemoryStore

from ..domain.deliveries import QUEUED, SENDING, SOFT_FAILED, STATUSES
from .ports import ACCEPTED, Cursor, DeliveryRecord
from .projections import DELIVERIES, SUPPRESSIONS, MemoryDeliveriesProjection

SERVICE = "notifier"


class MemoryDeliveries(MemoryRepository):
    def _all(self) -> list[DeliveryRecord]:
        return [DeliveryRecord.of(row) for row in self.tx.table(DELIVERIES).values()]

    def event_done(self, event_id: str) -> bool:
        return self.tx.get("processed_events", (ACCEPTED, event_id)) is not None

    def get_many(self, ids: list[str]) -> dict[str, DeliveryRecord]:
        return {r.id: r for r in self._all() if r.id in set(ids)}

    def due(self, now: datetime, limit: int) -> list[DeliveryRecord]:
        rows = [r for r in self._all() if r.status == SOFT_FAILED and r.next_attempt_at and r.next_attempt_at <= now]
        return sorted(rows, key=lambda r: (r.next_attempt_at, r.id))[:limit]

    def stale(self, before: datetime, limit: int) -> list[DeliveryRecord]:
        rows = [r for r in self._all()
                if (r.status == SENDING and r.attempt_started_at and r.attempt_started_at < before)
                or (r.status == QUEUED and r.created_at < before)]
        return sorted(rows, key=lambda r: (r.updated_at, r.id))[:limit]

    def page(self, filters: Mapping[str, str], limit: int, after: Cursor | None) -> list[DeliveryRecord]:
        rows = [r for r in self._all() if all(getattr(r, k) == v for k, v in filters.items())
                and (after is None or (r.created_at, r.id) < after)]
        return sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)[:limit]

    def counts(self, campaign_id: str) -> tuple[dict[str, int], datetime | None, datetime | None]:
        rows = [r for r in self._all() if r.campaign_id == campaign_id]
        counts = dict.fromkeys(STATUSES, 0)
        for r in rows:
            counts[r.status] += 1
        return (counts, min((r.created_at for r in rows), default=None),
                max((r.updated_at for r in rows), default=None))


class MemorySuppressions(MemoryRepository):
    def suppressed(self, address_hashes: list[str]) -> set[str]:
        return {h for h in address_hashes if self.tx.get(SUPPRESSIONS, h) is not None}


class MemoryRepositories:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.deliveries = MemoryDeliveries(uow)
        self.suppressions = MemorySuppressions(uow)


def memory_units(store: MemoryStore | None = None) -> tuple[MemoryStore, Callable[[RequestContext], FakeUnitOfWork]]:
    """A store for the notifier and a factory of its fake units of work (``make(context)``)."""
    store = store if store is not None else MemoryStore(service=SERVICE)

    def make(context: RequestContext) -> FakeUnitOfWork:
        return FakeUnitOfWork(store, context, projections=[MemoryDeliveriesProjection()],
                              repositories=MemoryRepositories)

    return store, make
