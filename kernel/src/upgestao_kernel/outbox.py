"""Transactional outbox: messages written in the same transaction as the
events (or data accesses) they describe, published later by the relay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .context import RequestContext
from .events import EventEnvelope, NewEvent, utcnow
from .schema import outbox
from .topology import events_exchange_name
from .tracing import outbox_headers

# Marks a message whose body holds a secret (a single-use token): the relay
# wipes the stored body once the broker has confirmed it.
SECRET_HEADER = "upgestao-secret"
WIPED_BODY = {"wiped": True}


_INSERT = outbox.insert()


def message_headers(context: RequestContext, **extra: str | None) -> dict[str, str]:
    """nameko-style headers, so consumers get the request context as context data (and the trace)."""
    data = {**context.to_context_data(), **{k: v for k, v in extra.items() if v is not None}}
    # and the current span's traceparent (tracing on): the relay and the consumers continue the trace
    return outbox_headers({f"nameko.{key}": value for key, value in data.items()})


def enqueue(
    conn: Connection,
    *,
    message_id: str,
    exchange: str,
    routing_key: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
) -> None:
    conn.execute(
        _INSERT,  # one statement object: compiled once, parameters per call
        {
            "message_id": message_id,
            "exchange": exchange,
            "routing_key": routing_key,
            "body": dict(body),
            "headers": dict(headers),
            "created_at": utcnow(),
        },
    )


def enqueue_many(conn: Connection, messages: Sequence[Mapping[str, Any]]) -> None:
    """Several messages (each as :func:`enqueue`'s keywords) in one statement: one round trip, not one each."""
    if not messages:
        return
    now = utcnow()
    conn.execute(_INSERT, [{"message_id": m["message_id"], "exchange": m["exchange"], "routing_key": m["routing_key"],
                            "body": dict(m["body"]), "headers": dict(m["headers"]), "created_at": now}
                           for m in messages])


def enqueue_event(
    conn: Connection, service: str, event: NewEvent, envelope: EventEnvelope, context: RequestContext
) -> None:
    """Queue the published view of ``envelope`` unless the event is private."""
    if event.published is False:
        return
    data = envelope.data if event.published in (None, True) else event.published
    headers = message_headers(context, causation_id=envelope.event_id)
    if event.secret:
        headers[SECRET_HEADER] = "1"
    enqueue(
        conn,
        message_id=envelope.event_id,
        exchange=events_exchange_name(service),
        routing_key=envelope.type,
        body=envelope.to_message(data),
        headers=headers,
    )


def unsent_count(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).where(outbox.c.sent_at.is_(None))).scalar())
