"""Privacy's own series (issue 18, R5.2, R6.1, D3) read from its tables: requests open/overdue and the nearest due
date, incidents open and the nearest notification deadline, the audit log's size and newest checkpoint; the
ingest's counter and lag. On a migrated SQLite database (the queries are the same on PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from upgestao_kernel.db import create_engine
from upgestao_kernel.migrations import upgrade
from upgestao_privacy.adapters import metrics
from upgestao_privacy.adapters.incident_tables import privacy_incidents
from upgestao_privacy.adapters.ports import Appended
from upgestao_privacy.adapters.request_tables import privacy_requests
from upgestao_privacy.adapters.tables import audit_checkpoints, audit_tree_head
from upgestao_privacy.domain.business_days import notice_deadline
from upgestao_privacy.domain.requests import due_for

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'privacy.sqlite3'}"
    upgrade("upgestao_privacy:migrations", url)
    engine = create_engine(url)
    yield engine
    engine.dispose()


def values(families) -> dict[str, float | None]:
    return {f.name: (f.samples[0].value if f.samples else None) for f in families}


def add_request(engine, state: str, received_at: datetime, due_at: datetime | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(privacy_requests.insert().values(
            id=str(uuid.uuid4()), type="access", state=state, channel="session", subject_id=None,
            requester_id=None, received_at=received_at, due_at=due_at or due_for(received_at), updated_at=received_at))


def add_incident(engine, state: str, detected_at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(privacy_incidents.insert().values(
            id=str(uuid.uuid4()), state=state, categories=["contact"], affected_kind="ids", explicit_count=1,
            occurred_at=detected_at, detected_at=detected_at, deadline_at=notice_deadline(detected_at),
            recorded_at=detected_at, late=False, sealed={}))


def test_no_request_open_says_zero_and_leaves_the_nearest_due_date_out(engine):
    assert values(metrics.request_metrics(engine, NOW)) == {
        "upgestao_privacy_requests_open": 0, "upgestao_privacy_requests_overdue": 0,
        "upgestao_privacy_request_nearest_due_seconds": None}
    add_request(engine, "identity_unverified", NOW - timedelta(days=20))  # nobody's to answer yet (is_overdue)
    add_request(engine, "completed", NOW - timedelta(days=20))
    assert values(metrics.request_metrics(engine, NOW))["upgestao_privacy_requests_open"] == 0


def test_open_requests_the_overdue_ones_and_the_seconds_to_the_nearest_due_date(engine):
    add_request(engine, "pending", NOW - timedelta(days=1))  # due in 14 days
    add_request(engine, "in_progress", NOW - timedelta(days=14, hours=12))  # due in 12 hours
    add_request(engine, "error", NOW, due_at=NOW + timedelta(days=30))  # extended
    figures = values(metrics.request_metrics(engine, NOW))
    assert figures == {"upgestao_privacy_requests_open": 3, "upgestao_privacy_requests_overdue": 0,
                       "upgestao_privacy_request_nearest_due_seconds": 12 * 3600}
    add_request(engine, "pending", NOW - timedelta(days=16))  # a day overdue
    figures = values(metrics.request_metrics(engine, NOW))
    assert figures["upgestao_privacy_requests_overdue"] == 1
    assert figures["upgestao_privacy_request_nearest_due_seconds"] == -86400  # negative once overdue


def test_a_request_due_exactly_now_is_overdue(engine):
    add_request(engine, "pending", NOW - timedelta(days=15))  # due_at == NOW: domain.is_overdue says overdue
    figures = values(metrics.request_metrics(engine, NOW))
    assert figures["upgestao_privacy_requests_overdue"] == 1
    assert figures["upgestao_privacy_request_nearest_due_seconds"] == 0


def test_open_incidents_and_the_seconds_to_the_nearest_notice_deadline(engine):
    assert values(metrics.incident_metrics(engine, NOW)) == {
        "upgestao_privacy_incidents_open": 0, "upgestao_privacy_incident_nearest_deadline_seconds": None}
    detected = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # Wednesday: due at the close of Monday 7th, Brasília
    add_incident(engine, "draft", detected)
    add_incident(engine, "confirmed", detected - timedelta(days=30))  # notified: not open
    figures = values(metrics.incident_metrics(engine, NOW))
    assert figures["upgestao_privacy_incidents_open"] == 1
    deadline = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)  # 8 Dec 00:00 in Brasília (UTC-3)
    assert notice_deadline(detected) == deadline  # the domain's 3 business days, not computed again here
    assert figures["upgestao_privacy_incident_nearest_deadline_seconds"] == (deadline - NOW).total_seconds()
    assert values(metrics.incident_metrics(engine, deadline + timedelta(hours=1)))[
        "upgestao_privacy_incident_nearest_deadline_seconds"] == -3600


def test_the_tree_size_and_the_newest_checkpoints_time(engine):
    figures = values(metrics.audit_log_metrics(engine))
    assert figures == {"upgestao_audit_tree_size": 0, "upgestao_audit_last_checkpoint_timestamp_seconds": None}
    with engine.begin() as conn:
        conn.execute(sa.update(audit_tree_head).values(tree_size=7))
        for size, at in ((3, NOW - timedelta(minutes=5)), (7, NOW)):
            conn.execute(audit_checkpoints.insert().values(tree_size=size, root_hash=b"\0" * 32, signed_at=at,
                                                           key_id="k", signature=b"\0" * 64))
    assert values(metrics.audit_log_metrics(engine)) == {
        "upgestao_audit_tree_size": 7, "upgestao_audit_last_checkpoint_timestamp_seconds": NOW.timestamp()}


def test_stored_records_are_counted_with_their_lag_from_emission():
    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    before = {n: sample(n) for n in ("upgestao_audit_records_ingested_total", "upgestao_audit_ingest_lag_seconds_sum",
                                     "upgestao_audit_ingest_lag_seconds_count")}
    stored = [Appended(i, {"occurred_at": (NOW - timedelta(seconds=s)).isoformat()}, "leaf")
              for i, s in enumerate((0.5, 2.0))]
    metrics.audit_stored(stored, at=NOW)
    metrics.audit_stored([], at=NOW)
    assert sample("upgestao_audit_records_ingested_total") == before["upgestao_audit_records_ingested_total"] + 2
    assert sample("upgestao_audit_ingest_lag_seconds_count") == before["upgestao_audit_ingest_lag_seconds_count"] + 2
    assert sample("upgestao_audit_ingest_lag_seconds_sum") == pytest.approx(
        before["upgestao_audit_ingest_lag_seconds_sum"] + 2.5)
