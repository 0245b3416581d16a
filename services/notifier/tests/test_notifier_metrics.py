"""The notifier's series (issue 18, R6.1: delivery tracked per recipient): deliveries by state read at scrape time
on a migrated database (SQLite and PostgreSQL: the (status, updated_at) index built concurrently there), and
attempts counted by outcome."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from upgestao_kernel.db import create_engine
from upgestao_kernel.migrations import upgrade
from upgestao_notifier.adapters import metrics
from upgestao_notifier.adapters.tables import deliveries
from upgestao_notifier.domain.deliveries import STATUSES


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path, database_factory):
    url = f"sqlite:///{tmp_path / 'n.sqlite3'}" if request.param == "sqlite" else database_factory("notifier")
    upgrade("upgestao_notifier:migrations", url)
    engine = create_engine(url)
    yield engine
    engine.dispose()


def add(engine, status: str) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(deliveries.insert().values(
            id=str(uuid.uuid4()), event_id=str(uuid.uuid4()), event_type="identity.x.v1", kind="password_reset",
            source="identity", recipient_id=str(uuid.uuid4()), message_id="m", status=status, attempts=1,
            created_at=now, updated_at=now, version=1))


def test_deliveries_by_state_every_state_exported(engine):
    [family] = metrics.delivery_states(engine)
    assert {s.labels["state"]: s.value for s in family.samples} == dict.fromkeys(STATUSES, 0)
    for status in ("queued", "sent", "sent", "hard_failed"):
        add(engine, status)
    [family] = metrics.delivery_states(engine)  # the final states settled after the base's watermark: seen now
    counts = {s.labels["state"]: s.value for s in family.samples}
    assert counts == {**dict.fromkeys(STATUSES, 0), "queued": 1, "sent": 2, "hard_failed": 1}
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            valid = conn.execute(sa.text("SELECT indisvalid FROM pg_index WHERE indexrelid = "
                                         "'ix_deliveries_status_updated'::regclass")).scalar()
        assert valid


def test_attempts_are_counted_by_a_bounded_outcome():
    def count(outcome: str) -> float:
        return REGISTRY.get_sample_value("upgestao_email_attempts_total", {"outcome": outcome}) or 0.0

    before = {o: count(o) for o in ("sent", "soft_failed", "other")}
    metrics.email_attempt("sent")
    metrics.email_attempt("soft_failed")
    metrics.email_attempt("something new")
    assert {o: count(o) for o in before} == {o: v + 1 for o, v in before.items()}
