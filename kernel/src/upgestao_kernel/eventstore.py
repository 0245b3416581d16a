"""Append-only event store on SQLAlchemy 2 Core (PostgreSQL and SQLite).

Optimistic concurrency per stream: ``append`` takes the version the caller
last saw; any other current version raises :class:`ConcurrencyError`, and the
caller's transaction (which the error aborts) writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from .context import RequestContext
from .events import Actor, EventEnvelope, NewEvent, new_id, utcnow
from .schema import events

ANY_VERSION = None


class ConcurrencyError(Exception):
    """The stream moved on since the caller read it."""

    def __init__(self, stream_id: str, expected: int | None, actual: int):
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(f"stream {stream_id}: expected version {expected}, found {actual}")


def current_version(conn: Connection, stream_id: str) -> int:
    value = conn.execute(
        sa.select(sa.func.max(events.c.version)).where(events.c.stream_id == stream_id)
    ).scalar()
    return int(value or 0)


def append(
    conn: Connection,
    stream_id: str,
    expected_version: int | None,
    new_events: Sequence[NewEvent],
    context: RequestContext,
    occurred_at: datetime | None = None,
) -> list[EventEnvelope]:
    """Append ``new_events`` after ``expected_version`` (0: new stream; None: any)."""
    if not new_events:
        return []
    if expected_version == 0:
        actual = 0  # a new stream: the unique (stream_id, version) index refuses it if it exists (below)
    else:
        actual = current_version(conn, stream_id)
        if expected_version is not None and actual != expected_version:
            raise ConcurrencyError(stream_id, expected_version, actual)
    when = occurred_at or utcnow()
    envelopes = [
        EventEnvelope(
            event_id=new_id(),
            stream_id=stream_id,
            version=actual + offset,
            type=event.type,
            occurred_at=when,
            actor=context.actor,
            correlation_id=context.correlation_id or context.request_id,
            causation_id=context.causation_id or context.request_id,
            data=dict(event.data),
        )
        for offset, event in enumerate(new_events, start=1)
    ]
    # The unique (stream_id, version) index settles races between two writers that both read ``actual``.
    # The loser's rows are skipped, not refused (ON CONFLICT DO NOTHING): its transaction stays usable for
    # reporting without the savepoint that cost two more round trips on every append.
    insert = _SKIPPING_INSERTS.get(conn.dialect.name)
    if insert is None:  # pragma: no cover - the kernel runs on PostgreSQL and SQLite
        try:
            with conn.begin_nested():
                positions = _insert(conn, _INSERT, envelopes)
        except sa.exc.IntegrityError:
            raise ConcurrencyError(stream_id, expected_version, current_version(conn, stream_id)) from None
    else:
        positions = _insert(conn, insert, envelopes)
        if len(positions) != len(envelopes):
            if positions:  # some versions were free: the append is all or nothing
                conn.execute(events.delete().where(events.c.event_id.in_(list(positions))))
            raise ConcurrencyError(stream_id, expected_version, current_version(conn, stream_id))
    return [_with_position(e, positions.get(e.event_id)) for e in envelopes]


def current_versions(conn: Connection, stream_ids: Sequence[str]) -> dict[str, int]:
    """Several streams' current versions in one statement (a stream with no events: 0)."""
    wanted = sorted(set(stream_ids))
    if not wanted:
        return {}
    rows = conn.execute(sa.select(events.c.stream_id, sa.func.max(events.c.version))
                        .where(events.c.stream_id.in_(wanted)).group_by(events.c.stream_id))
    found = {stream_id: int(version) for stream_id, version in rows}
    return {stream_id: found.get(stream_id, 0) for stream_id in wanted}


def append_many(
    conn: Connection,
    batch: Sequence[tuple[str, int | None, Sequence[NewEvent]]],
    context: RequestContext,
    occurred_at: datetime | None = None,
    contexts: Sequence[RequestContext] | None = None,
) -> list[list[EventEnvelope]]:
    """:func:`append` for several streams at once, all or nothing: each ``(stream_id, expected_version,
    new_events)`` checked as ``append`` checks it, the versions read in one statement and every event inserted
    in one. A stream may appear once. :class:`ConcurrencyError` (the first stream that moved) and nothing
    appended; the envelopes per item, in order. ``contexts``: one per item (work caused by several events, each
    item by its own), else ``context`` for all."""
    streams = [stream_id for stream_id, _, new in batch if new]
    if len(streams) != len(set(streams)):
        raise ValueError("append_many: a stream appears more than once")
    if contexts is not None and len(contexts) != len(batch):
        raise ValueError("append_many: one context per item")
    actual = current_versions(conn, [stream_id for stream_id, expected, new in batch if new and expected != 0])
    when = occurred_at or utcnow()
    out: list[list[EventEnvelope]] = []
    for index, (stream_id, expected_version, new_events) in enumerate(batch):
        base = 0 if expected_version == 0 else actual[stream_id] if new_events else 0
        if new_events and expected_version is not None and base != expected_version:
            raise ConcurrencyError(stream_id, expected_version, base)
        ctx = context if contexts is None else contexts[index]
        out.append([
            EventEnvelope(event_id=new_id(), stream_id=stream_id, version=base + offset, type=event.type,
                          occurred_at=when, actor=ctx.actor,
                          correlation_id=ctx.correlation_id or ctx.request_id,
                          causation_id=ctx.causation_id or ctx.request_id, data=dict(event.data))
            for offset, event in enumerate(new_events, start=1)
        ])
    envelopes = [e for item in out for e in item]
    if not envelopes:
        return out
    insert = _SKIPPING_INSERTS.get(conn.dialect.name)
    if insert is None:  # pragma: no cover - the kernel runs on PostgreSQL and SQLite
        raise NotImplementedError(conn.dialect.name)
    positions = _insert(conn, insert, envelopes)
    if len(positions) != len(envelopes):
        if positions:  # some versions were free: the append is all or nothing
            conn.execute(events.delete().where(events.c.event_id.in_(list(positions))))
        lost = next(e for e in envelopes if e.event_id not in positions)
        expected = next(exp for sid, exp, _ in batch if sid == lost.stream_id)
        raise ConcurrencyError(lost.stream_id, expected, current_version(conn, lost.stream_id))
    return [[_with_position(e, positions.get(e.event_id)) for e in item] for item in out]


_INSERT = events.insert().returning(events.c.position, events.c.event_id)
_SKIPPING_INSERTS = {
    name: dialect_insert(events).on_conflict_do_nothing(index_elements=["stream_id", "version"])
    .returning(events.c.position, events.c.event_id)
    for name, dialect_insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


def _insert(conn: Connection, statement: Any, envelopes: Sequence[EventEnvelope]) -> dict[str, int]:
    """The position of each event inserted (an event skipped is missing)."""
    result = conn.execute(statement, [_row(e) for e in envelopes])
    return {row.event_id: row.position for row in result}


def read_stream(conn: Connection, stream_id: str, after_version: int = 0) -> list[EventEnvelope]:
    rows = conn.execute(
        sa.select(events)
        .where(events.c.stream_id == stream_id, events.c.version > after_version)
        .order_by(events.c.version)
    )
    return [_envelope(row) for row in rows]


def read_all(conn: Connection, after_position: int = 0, batch_size: int = 1000) -> Iterator[EventEnvelope]:
    """Every event in global order, fetched in batches."""
    position = after_position
    while True:
        rows = conn.execute(
            sa.select(events)
            .where(events.c.position > position)
            .order_by(events.c.position)
            .limit(batch_size)
        ).all()
        if not rows:
            return
        for row in rows:
            yield _envelope(row)
        position = rows[-1].position


def _row(e: EventEnvelope) -> dict:
    return {
        "event_id": e.event_id,
        "stream_id": e.stream_id,
        "version": e.version,
        "type": e.type,
        "occurred_at": e.occurred_at,
        "actor_id": e.actor.id,
        "actor_role": e.actor.role,
        "correlation_id": e.correlation_id,
        "causation_id": e.causation_id,
        "data": dict(e.data),
    }


def _envelope(row) -> EventEnvelope:
    occurred = row.occurred_at
    if occurred.tzinfo is None:  # SQLite drops the zone; we only ever store UTC
        occurred = occurred.replace(tzinfo=UTC)
    return EventEnvelope(
        event_id=row.event_id,
        stream_id=row.stream_id,
        version=row.version,
        type=row.type,
        occurred_at=occurred,
        actor=Actor(id=row.actor_id, role=row.actor_role),
        correlation_id=row.correlation_id,
        causation_id=row.causation_id,
        data=row.data,
        position=row.position,
    )


def _with_position(e: EventEnvelope, position: int | None) -> EventEnvelope:
    return replace(e, position=position)
