"""The integrations service's series (issue 18, R4.2: every share tracked): webhook messages by state read at
scrape time on a migrated database (SQLite and PostgreSQL: the (status, updated_at) index built concurrently
there), and attempts counted by outcome."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from upgestao_integrations.adapters import metrics
from upgestao_integrations.adapters.tables import webhook_messages
from upgestao_integrations.domain.messages import OUTCOMES, STATUSES
from upgestao_kernel.db import create_engine
from upgestao_kernel.migrations import upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path, database_factory):
    url = f"sqlite:///{tmp_path / 'i.sqlite3'}" if request.param == "sqlite" else database_factory("integrations")
    upgrade("upgestao_integrations:migrations", url)
    engine = create_engine(url)
    yield engine
    engine.dispose()


def add(engine, status: str) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(webhook_messages.insert().values(
            id=str(uuid.uuid4()), integration_id=str(uuid.uuid4()), event_type="customer.created",
            event_id=str(uuid.uuid4()), source_event_type="identity.customer_created.v1", occurred_at=now, data={},
            status=status, attempts=1, created_at=now, updated_at=now, version=1))


def test_messages_by_state_every_state_exported(engine):
    [family] = metrics.message_states(engine)
    assert {s.labels["state"]: s.value for s in family.samples} == dict.fromkeys(STATUSES, 0)
    for status in ("pending", "failed", "succeeded", "succeeded", "canceled"):
        add(engine, status)
    [family] = metrics.message_states(engine)
    assert {s.labels["state"]: s.value for s in family.samples} == {
        **dict.fromkeys(STATUSES, 0), "pending": 1, "failed": 1, "succeeded": 2, "canceled": 1}
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            valid = conn.execute(sa.text("SELECT indisvalid FROM pg_index WHERE indexrelid = "
                                         "'ix_webhook_messages_status_updated'::regclass")).scalar()
        assert valid


def test_attempts_are_counted_by_a_bounded_outcome():
    def count(outcome: str) -> float:
        return REGISTRY.get_sample_value("upgestao_webhook_attempts_total", {"outcome": outcome}) or 0.0

    assert all(REGISTRY.get_sample_value("upgestao_webhook_attempts_total", {"outcome": o}) is not None
               for o in OUTCOMES)  # every outcome exists before its first attempt
    before = {o: count(o) for o in ("succeeded", "timeout", "other")}
    for outcome in ("succeeded", "timeout", "https://example.com/x"):
        metrics.webhook_attempt(outcome)
    assert {o: count(o) for o in before} == {o: v + 1 for o, v in before.items()}
