"""Read models kept in step with the event log.

A projection is applied in the same transaction as the append that produced
the event, so a read model never disagrees with the log. ``rebuild`` empties
every read model and replays the whole log in global order, which must give
back the identical state (tested per service).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .events import EventEnvelope
from .eventstore import read_all


class Projection(Protocol):
    """Something that folds events into its own tables."""

    name: str
    tables: Sequence[sa.Table]

    def apply(self, conn: Connection, event: EventEnvelope) -> None:
        """Update the read model for ``event``; ignore types it does not handle."""


def rebuild(engine: Engine, projections: Sequence[Projection]) -> int:
    """Rebuild every read model from the log, in one transaction; returns events replayed."""
    count = 0
    with engine.begin() as conn:
        for projection in projections:
            for table in reversed(projection.tables):
                conn.execute(table.delete())
        for event in read_all(conn):
            for projection in projections:
                projection.apply(conn, event)
            count += 1
    return count


def snapshot(conn: Connection, projections: Sequence[Projection]) -> dict[str, list[tuple]]:
    """Every read-model row, sorted: two equal snapshots mean identical state."""
    state: dict[str, list[tuple]] = {}
    for projection in projections:
        for table in projection.tables:
            rows = conn.execute(sa.select(table)).all()
            state[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return state
