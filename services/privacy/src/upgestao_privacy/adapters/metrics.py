"""Privacy's own series (issue 18): the audit log's ingest, size and checkpoints; the data subjects' requests
and the incidents against their legal deadlines. No label carries an id: every series here has none.

* counted by the ingest as it stores (:func:`audit_stored`): ``upgestao_audit_records_ingested_total`` and
  ``upgestao_audit_ingest_lag_seconds`` (from the record's ``occurred_at``, set by the emitting service when
  the access happened, to the commit that stored it: the outbox, the relay, the broker and the ingest);
* read at scrape time from privacy's own tables (:data:`SOURCES`, each one or two indexed queries, read-only):
  the tree's size and the newest checkpoint's time; the requests open (verified and not answered: the DPO's,
  ``domain.requests.ROUTED_STATES``), overdue (``domain.requests.is_overdue``: due at or before now) and the
  seconds to the nearest due date; the incidents open (recorded, not yet confirmed: their notice not yet
  sent) and the seconds to the nearest notification deadline (``deadline_at``, the 3 business days the
  domain's ``business_days.notice_deadline`` computed when the incident was recorded).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric
from upgestao_kernel.db import read_only
from upgestao_kernel.metrics import counter, histogram

from ..domain.incidents import DRAFT
from ..domain.requests import ROUTED_STATES
from .incident_tables import privacy_incidents
from .ports import Appended
from .request_tables import privacy_requests
from .tables import audit_checkpoints, audit_tree_head

# emit -> stored: milliseconds when the relay keeps up, seconds when it lags (the alert is at 10 s)
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

AUDIT_INGESTED = counter("upgestao_audit_records_ingested_total",
                         "Audit records stored in the log (a redelivered record already there is not counted).")
AUDIT_INGEST_LAG = histogram("upgestao_audit_ingest_lag_seconds",
                             "Time from an audit record's emission (its occurred_at) to the commit storing it.",
                             buckets=LAG_BUCKETS)


def audit_stored(stored: Sequence[Appended], at: datetime | None = None) -> None:
    """Records just committed to the log: counted, and each one's lag observed (``at``: when, now by default)."""
    if not stored:
        return
    at = at or datetime.now(UTC)
    AUDIT_INGESTED.inc(len(stored))
    for appended in stored:
        AUDIT_INGEST_LAG.observe(max(0.0, seconds_between(appended.record["occurred_at"], at)))


def seconds_between(earlier: datetime | str, later: datetime) -> float:
    """``later - earlier`` in seconds (``earlier`` as stored: an aware datetime or its ISO text)."""
    if isinstance(earlier, str):
        earlier = datetime.fromisoformat(earlier)
    if earlier.tzinfo is None:  # SQLite hands a naive UTC datetime back
        earlier = earlier.replace(tzinfo=UTC)
    return (later - earlier).total_seconds()


def _gauge(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    if value is not None:  # absent, not 0: "none" must not read as "due now"
        family.add_metric([], value)
    return family


_REQUESTS = sa.select(
    sa.func.count(),
    sa.func.coalesce(sa.func.sum(sa.case((privacy_requests.c.due_at <= sa.bindparam("now"), 1), else_=0)), 0),
    sa.func.min(privacy_requests.c.due_at),
).where(privacy_requests.c.state.in_(ROUTED_STATES))  # the (state, due_at) index's range
_INCIDENTS = sa.select(sa.func.count(), sa.func.min(privacy_incidents.c.deadline_at)).where(
    privacy_incidents.c.state == DRAFT)  # a small table: incidents are counted in tens a year
_TREE = sa.select(audit_tree_head.c.tree_size).where(audit_tree_head.c.id == 1)
_NEWEST_CHECKPOINT = (sa.select(audit_checkpoints.c.signed_at)
                      .order_by(audit_checkpoints.c.tree_size.desc()).limit(1))  # the primary key's last row


def deadline_figures(now: datetime, open_count: int, overdue: int, nearest: datetime | str | None,
                     ) -> tuple[int, int, float | None]:
    """(open, overdue, seconds to the nearest due date: negative when past, ``None`` when nothing is open)."""
    return int(open_count), int(overdue or 0), None if nearest is None else -seconds_between(nearest, now)


def request_metrics(engine, now: datetime | None = None) -> list[Metric]:
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        row = read_only(conn).execute(_REQUESTS, {"now": now}).one()
    open_count, overdue, nearest = deadline_figures(now, *row)
    return [
        _gauge("upgestao_privacy_requests_open",
               "Data subject requests verified and not yet answered (pending, in progress, error).", open_count),
        _gauge("upgestao_privacy_requests_overdue",
               "Open data subject requests at or past their due date (LGPD art. 19: 15 days, or as extended).",
               overdue),
        _gauge("upgestao_privacy_request_nearest_due_seconds",
               "Seconds until the nearest open request's due date; negative when overdue; absent when none open.",
               nearest),
    ]


def incident_metrics(engine, now: datetime | None = None) -> list[Metric]:
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        count, nearest = read_only(conn).execute(_INCIDENTS).one()
    open_count, _, seconds = deadline_figures(now, count, 0, nearest)
    return [
        _gauge("upgestao_privacy_incidents_open",
               "Security incidents recorded and not yet confirmed (their notice not yet sent).", open_count),
        _gauge("upgestao_privacy_incident_nearest_deadline_seconds",
               "Seconds until the nearest open incident's notification deadline (3 business days from its "
               "detection); negative when missed; absent when none open.", seconds),
    ]


def audit_log_metrics(engine) -> list[Metric]:
    with engine.connect() as conn:
        conn = read_only(conn)
        size = conn.execute(_TREE).scalar()
        signed_at = conn.execute(_NEWEST_CHECKPOINT).scalar()
    if isinstance(signed_at, str):
        signed_at = datetime.fromisoformat(signed_at)
    if signed_at is not None and signed_at.tzinfo is None:
        signed_at = signed_at.replace(tzinfo=UTC)
    return [
        _gauge("upgestao_audit_tree_size", "Records in the audit log (its Merkle tree's size).", int(size or 0)),
        _gauge("upgestao_audit_last_checkpoint_timestamp_seconds",
               "Unix time of the newest signed checkpoint; absent when none was ever signed.",
               None if signed_at is None else signed_at.timestamp()),
    ]


SOURCES = (request_metrics, incident_metrics, audit_log_metrics)
