"""Rows of a read model by state, as a scrape-time gauge that stays cheap when the table is large (issue 18).

A table of deliveries or webhook messages keeps every row for years: ``SELECT state, count(*) ... GROUP BY
state`` reads the whole table (about 250 ms a million rows on PostgreSQL, on every scrape of every
replica). :class:`StateCounts` splits the states in two:

* the **active** ones (queued, sending, retrying: the backlog, bounded by the work in progress) are counted
  exactly at every scrape, a range of the ``(state, ...)`` index;
* the **settled** ones (sent, failed for good: only ever growing) are counted in full once every
  ``recount_s`` (the *base*: the rows whose ``changed`` column, set at each transition, is at or before a
  watermark ``margin_s`` before that count), plus, at every scrape, the rows that settled since the
  watermark (a range of the ``(state, changed)`` index: the last minutes' rows only).

A row counted in the base that leaves its settled state later (a resend) is counted twice until the next
recount; a transition whose transaction committed over ``margin_s`` after its clock was read is missed until
then. Both heal within ``recount_s``. Every state is exported (0 when no row has it). The queries read only
(``read_only``: on SQLite no write lock is taken; on PostgreSQL a plain ``SELECT`` locks nothing that a
writer waits for).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric

from .db import read_only

RECOUNT_S = 600.0
MARGIN_S = 120.0


class StateCounts:
    """A source for :class:`~upgestao_kernel.nameko_ext.Metrics`: ``source(engine)`` -> the gauge
    ``name{label=<state>}`` of ``table``'s rows by ``state_column``."""

    def __init__(self, name: str, documentation: str, *, state_column: sa.Column, changed_column: sa.Column,
                 active: Sequence[str], settled: Sequence[str], label: str = "state",
                 recount_s: float = RECOUNT_S, margin_s: float = MARGIN_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.__name__ = name  # how a failing source is named in the log
        self.documentation = documentation
        self.state = state_column
        self.changed = changed_column
        self.active = tuple(active)
        self.settled = tuple(settled)
        self.label = label
        self.recount_s = recount_s
        self.margin_s = margin_s
        self.clock = clock
        self._bases: dict[int, tuple[float, datetime, dict[str, int]]] = {}  # by engine: (counted at, mark, counts)
        self._lock = threading.Lock()
        table = state_column.table
        self._active_query = (sa.select(self.state, sa.func.count()).select_from(table)
                              .where(self.state.in_(self.active)).group_by(self.state))
        self._base_query = (sa.select(self.state, sa.func.count()).select_from(table)
                            .where(self.state.in_(self.settled), self.changed <= sa.bindparam("mark"))
                            .group_by(self.state))
        self._recent_query = (sa.select(self.state, sa.func.count()).select_from(table)
                              .where(self.state.in_(self.settled), self.changed > sa.bindparam("mark"))
                              .group_by(self.state))

    def __call__(self, engine) -> list[Metric]:
        counts = dict.fromkeys((*self.active, *self.settled), 0)
        with engine.connect() as conn:
            conn = read_only(conn)
            counts.update(self._rows(conn, self._active_query))
            mark, base = self._base(engine, conn)
            for state, n in base.items():
                counts[state] += n
            for state, n in self._rows(conn, self._recent_query, mark=mark).items():
                counts[state] += n
        family = GaugeMetricFamily(self.name, self.documentation, labels=[self.label])
        for state, n in counts.items():
            family.add_metric([state], n)
        return [family]

    def _base(self, engine, conn) -> tuple[datetime, dict[str, int]]:
        now = self.clock()
        with self._lock:
            known = self._bases.get(id(engine))
        if known is not None and now - known[0] < self.recount_s:
            return known[1], known[2]
        mark = datetime.fromtimestamp(now - self.margin_s, UTC)
        base = self._rows(conn, self._base_query, mark=mark)
        with self._lock:
            self._bases[id(engine)] = (now, mark, base)
        return mark, base

    @staticmethod
    def _rows(conn, query, **params) -> dict[str, int]:
        return {state: int(n) for state, n in conn.execute(query, params)}
