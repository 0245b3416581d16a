"""A claim is a lease on the message's row (no event, no version moved), so on PostgreSQL an erasure's look for
the person's waiting messages must not read a row a claim is leasing as still pending: it would cancel it at
the version the lease left, and the attempt's outcome would be the one to conflict. The look locks the rows it
reads: it waits for the claim, then leaves the leased row out."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from upgestao_integrations.adapters.projections import projections
from upgestao_integrations.adapters.sql_repositories import with_sql_repositories
from upgestao_integrations.adapters.tables import integrations, webhook_messages
from upgestao_kernel.context import system_context
from upgestao_kernel.db import create_engine
from upgestao_kernel.testing import wait_for_a_lock_waiter
from upgestao_kernel.unit_of_work import UnitOfWork

pytestmark = [pytest.mark.infra, pytest.mark.timeout(60)]

PERSON = "5f0c6a8e-0000-4000-8000-00000000000a"
T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_factory):
    engine = create_engine(database_factory("integrations_leases", "upgestao_integrations:migrations"))
    with engine.begin() as conn:
        conn.execute(integrations.insert().values(
            id="int_crm", name="CRM", url="http://crm.test/hook", events=["*"], fields=["email"],
            privacy_policy_url="https://crm.example/privacy", status="enabled", created_at=T0, updated_at=T0,
            version=1))
        conn.execute(webhook_messages.insert(), [
            {"id": f"msg_{n}", "integration_id": "int_crm", "event_type": "customer.created", "event_id": f"e{n}",
             "source_event_type": "identity.customer_registered.v1", "subject_id": PERSON, "occurred_at": T0,
             "data": {}, "status": "pending", "attempts": 0, "next_attempt_at": T0 + timedelta(seconds=n),
             "created_at": T0, "updated_at": T0, "version": 1} for n in range(2)])
    yield engine
    engine.dispose()


def _uow(engine: sa.Engine):
    return with_sql_repositories(UnitOfWork(engine, "integrations", system_context(), projections=projections()))


def test_an_erasure_waits_for_a_claim_and_leaves_the_leased_message_out(engine) -> None:
    found: list[list[str]] = []
    errors: list[BaseException] = []

    def erasure() -> None:
        try:
            with _uow(engine) as uow:
                found.append(sorted(row["id"] for row in uow.messages.pending_of_subject(PERSON)))
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    now = T0 + timedelta(minutes=1)
    with _uow(engine) as uow:
        [due] = uow.messages.due(now, 1)  # the oldest, locked for this claim
        thread = threading.Thread(target=erasure)
        thread.start()
        wait_for_a_lock_waiter(engine, "the erasure's look")
        assert list(uow.messages.lease([due["id"]], now)) == [due["id"]]
    thread.join(20)
    assert not thread.is_alive() and errors == []
    assert found == [["msg_1"]]  # msg_0 is leased: delivering, not the erasure's to cancel
