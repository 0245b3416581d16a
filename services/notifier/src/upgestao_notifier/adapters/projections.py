"""Projections of the notifier's event log into its read models, in SQL and in memory.

What an event does to a row is said once (:func:`delivery_change`, :func:`suppression_row`); the SQL
projection and the in-memory one (unit tests) both apply it, so they cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection
from upgestao_kernel.events import EventEnvelope, EventHandlers
from upgestao_kernel.fakes import MemoryTransaction

from ..domain.deliveries import HARD_FAILED, QUEUED, SENDING, SENT, SOFT_FAILED, SUPPRESSED
from ..domain.events import (
    AddressSuppressed,
    DeliveryAttemptStarted,
    DeliveryHardFailed,
    DeliveryQueued,
    DeliverySent,
    DeliverySoftFailed,
    DeliverySuppressed,
)
from .tables import deliveries, suppressions

DELIVERIES = "deliveries"
SUPPRESSIONS = "suppressions"


def _id(envelope: EventEnvelope, prefix: str) -> str:
    return envelope.stream_id.removeprefix(prefix + "-")


def delivery_change(envelope: EventEnvelope, event: Any) -> tuple[str, dict[str, Any]]:
    """``("insert", row)`` or ``("update", values)`` for the delivery row of ``envelope``."""
    at: datetime = envelope.occurred_at
    moved = {"updated_at": at, "version": envelope.version}
    if isinstance(event, DeliveryQueued):
        return "insert", {
            "id": _id(envelope, "delivery"), "event_id": event.event_id, "event_type": event.event_type,
            "kind": event.kind, "source": event.source, "campaign_id": event.campaign_id,
            "recipient_id": event.recipient_id, "message_id": event.message_id, "status": QUEUED,
            "attempts": 0, "last_code": None, "last_error": None, "confirmed": None, "created_at": at,
            "attempt_started_at": None, "sent_at": None, "next_attempt_at": None, **moved,
        }
    if isinstance(event, DeliveryAttemptStarted):
        return "update", {"status": SENDING, "attempts": event.attempt, "attempt_started_at": at,
                          "next_attempt_at": None, **moved}
    if isinstance(event, DeliverySent):
        return "update", {"status": SENT, "last_code": event.code, "confirmed": event.confirmed, "sent_at": at,
                          "last_error": None if event.confirmed else "outcome unconfirmed: sent at most once",
                          **moved}
    if isinstance(event, DeliverySoftFailed):
        return "update", {"status": SOFT_FAILED, "last_code": event.code, "last_error": event.error,
                          "next_attempt_at": datetime.fromisoformat(event.next_attempt_at), **moved}
    if isinstance(event, DeliveryHardFailed):
        return "update", {"status": HARD_FAILED, "last_code": event.code, "last_error": event.error,
                          "next_attempt_at": None, **moved}
    if isinstance(event, DeliverySuppressed):
        return "update", {"status": SUPPRESSED, "last_error": "address suppressed after a permanent failure",
                          **moved}
    raise TypeError(f"no delivery change for {envelope.type}")


def suppression_row(envelope: EventEnvelope, event: AddressSuppressed) -> dict[str, Any]:
    return {"address_hash": _id(envelope, "suppression"), "delivery_id": event.delivery_id, "code": event.code,
            "suppressed_at": envelope.occurred_at}


_DELIVERY_EVENTS = (DeliveryQueued, DeliveryAttemptStarted, DeliverySent, DeliverySoftFailed, DeliveryHardFailed,
                    DeliverySuppressed)


class DeliveriesProjection:
    name = "deliveries"
    tables = (deliveries, suppressions)
    on = EventHandlers()

    def apply(self, conn: Connection, event: EventEnvelope) -> None:
        self.on.dispatch(self, event, conn)

    @on(*_DELIVERY_EVENTS)
    def _delivery(self, conn: Connection, envelope: EventEnvelope, event: Any) -> None:
        how, values = delivery_change(envelope, event)
        if how == "insert":
            conn.execute(deliveries.insert().values(**values))
        else:
            conn.execute(deliveries.update().where(deliveries.c.id == _id(envelope, "delivery")).values(**values))

    @on(AddressSuppressed)
    def _suppressed(self, conn: Connection, envelope: EventEnvelope, event: AddressSuppressed) -> None:
        row = suppression_row(envelope, event)
        if conn.execute(suppressions.select().where(suppressions.c.address_hash == row["address_hash"])).first():
            return  # suppressed again by a later bounce: the first stays
        conn.execute(suppressions.insert().values(**row))


class MemoryDeliveriesProjection:
    """The same folds on the in-memory store (unit tests)."""

    on = EventHandlers()

    def apply(self, tx: MemoryTransaction, event: EventEnvelope) -> None:
        self.on.dispatch(self, event, tx)

    @on(*_DELIVERY_EVENTS)
    def _delivery(self, tx: MemoryTransaction, envelope: EventEnvelope, event: Any) -> None:
        how, values = delivery_change(envelope, event)
        if how == "insert":
            tx.put(DELIVERIES, values["id"], values)
        else:
            tx.update(DELIVERIES, _id(envelope, "delivery"), **values)

    @on(AddressSuppressed)
    def _suppressed(self, tx: MemoryTransaction, envelope: EventEnvelope, event: AddressSuppressed) -> None:
        row = suppression_row(envelope, event)
        if tx.get(SUPPRESSIONS, row["address_hash"]) is None:
            tx.put(SUPPRESSIONS, row["address_hash"], row)


def projections() -> list[DeliveriesProjection]:
    return [DeliveriesProjection()]
