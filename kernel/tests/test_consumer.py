"""Reliable consumers: duplicates handled once, failures retried then parked
and replayable, request context carried from RPC to event to audit record."""

from __future__ import annotations

import kernel_sample_services as sample_services
import pytest
import sqlalchemy as sa
from kernel_sample import create_sample_tables as _create_tables
from kernel_sample_services import LedgerService, TallyService
from kombu import Connection
from prometheus_client import REGISTRY
from upgestao_kernel.db import create_engine
from upgestao_kernel.parking import list_parked, replay_parked
from upgestao_kernel.relay import OutboxRelay, drain
from upgestao_kernel.schema import outbox
from upgestao_kernel.testing import service_amqp_uri, wait_for
from upgestao_kernel.testing_tokens import acting_as
from upgestao_kernel.topology import events_exchange


def handled(outcome: str) -> float:
    """upgestao_events_handled_total of tally's handler (issue 18)."""
    return REGISTRY.get_sample_value("upgestao_events_handled_total",
                                     {"service": "tally", "consumer": "on_ledger_event", "outcome": outcome}) or 0


@pytest.fixture(autouse=True)
def reset_switches():
    sample_services.CALLS.clear()
    sample_services.DONE.clear()
    sample_services.BEHAVIOUR["fail"] = False
    yield


@pytest.fixture
def platform(run_service, database_factory, amqp_uri):
    ledger_url = database_factory("ledger")
    _create_tables(ledger_url)
    tally = run_service(TallyService, _create_tables)
    ledger = run_service(LedgerService, None, database_url=ledger_url)
    relay = OutboxRelay(create_engine(ledger_url), service_amqp_uri(amqp_uri, "ledger"), services=["ledger"])
    yield ledger, tally, relay, ledger_url
    relay.close()


def test_event_is_handled_once_even_when_delivered_twice(platform, amqp_uri):
    ledger, tally, relay, ledger_url = platform
    before = {outcome: handled(outcome) for outcome in ("handled", "duplicate")}
    ledger.open_account("acc-1", "a@example.com")
    drain(relay)
    wait_for(lambda: len(tally.handled()) == 1)
    # deliver the very same message again, as a relay restart would
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        conn.execute(outbox.update().values(sent_at=None))
    drain(relay)
    wait_for(lambda: len(sample_services.DONE) == 2)  # the duplicate was handled...
    assert len(tally.handled()) == 1  # ...as a no-op
    wait_for(lambda: handled("duplicate") == before["duplicate"] + 1)  # ... and counted as one (metrics)
    assert handled("handled") == before["handled"] + 1


def test_failing_handler_is_retried_then_parked_then_replayed(platform, amqp_uri, service_env):
    ledger, tally, relay, _ = platform
    before = {outcome: handled(outcome) for outcome in ("retried", "parked")}
    sample_services.BEHAVIOUR["fail"] = True
    ledger.open_account("acc-1", "a@example.com")
    drain(relay)
    parked = wait_for(lambda: list_parked(amqp_uri, "tally.on_ledger_event"))
    assert handled("retried") == before["retried"] + 2 and handled("parked") == before["parked"] + 1
    # UPGESTAO_RETRY_DELAYS_MS=100,200: first try + 2 retries, then parked
    assert len(sample_services.CALLS) == 3
    assert len(set(sample_services.CALLS)) == 1
    assert parked[0].event_type == "ledger.account_opened.v1"
    assert parked[0].error == "RuntimeError: the handler failed"  # the type and a fixed reason, not str(exc)
    assert tally.handled() == []
    # listing does not consume
    assert len(list_parked(amqp_uri, "tally.on_ledger_event")) == 1

    sample_services.BEHAVIOUR["fail"] = False
    assert replay_parked(amqp_uri, "tally.on_ledger_event") == 1
    wait_for(lambda: len(tally.handled()) == 1)
    assert list_parked(amqp_uri, "tally.on_ledger_event") == []


def test_malformed_message_is_parked_not_lost(platform, amqp_uri):
    with Connection(amqp_uri) as conn:
        conn.Producer().publish({"not": "an envelope"}, exchange=events_exchange("ledger"),
                                routing_key="ledger.account_opened.v1", message_id="bad-1", serializer="json")
    parked = wait_for(lambda: list_parked(amqp_uri, "tally.on_ledger_event"))
    assert parked[0].message_id == "bad-1" and parked[0].error.startswith("KeyError")


def test_an_event_another_service_sent_is_parked_never_handled(platform, amqp_uri):
    """Only ledger's broker user writes ledger.events; an event that reached tally's queue from another
    service's user (the default exchange takes a queue's name) is parked with a fixed reason."""
    ledger, tally, relay, _ = platform
    envelope = {"event_id": "00000000-0000-4000-8000-0000000000e1", "stream_id": "acc-x", "version": 1,
                "type": "ledger.account_opened.v1", "occurred_at": "2026-01-01T00:00:00+00:00",
                "actor": {"id": "system", "role": "system"}, "correlation_id": None, "causation_id": None,
                "data": {"account_id": "acc-x"}}
    with Connection(service_amqp_uri(amqp_uri, "gateway")) as conn:
        conn.Producer().publish(envelope, exchange="", routing_key="tally.on_ledger_event", message_id="forged-1",
                                serializer="json")
    parked = wait_for(lambda: list_parked(amqp_uri, "tally.on_ledger_event"))
    assert parked[0].message_id == "forged-1"
    assert parked[0].error == "NotTheSource: the event was not sent by its source service's broker user"
    assert tally.handled() == []


def test_request_context_travels_from_rpc_to_event_and_audit(run_service, database_factory, amqp_uri):
    from nameko.standalone.rpc import ServiceRpcProxy

    url = database_factory("ledger")
    _create_tables(url)
    run_service(LedgerService, None, database_url=url)
    context = acting_as("staff-7", "supervisor", request_id="req-ctx-0001", source_ip="192.0.2.10")
    with ServiceRpcProxy("ledger", {"AMQP_URI": amqp_uri}, context_data=context, timeout=10) as ledger:
        ledger.open_account("acc-1", "a@example.com")
        assert ledger.read_email("acc-1") == "a@example.com"
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(outbox)).all()
    assert {r.routing_key for r in rows} == {"audit.ledger.create", "audit.ledger.read", "ledger.account_opened.v1"}
    for row in rows:
        assert row.headers["nameko.request_id"] == "req-ctx-0001"
        if row.exchange == "audit":
            assert (row.body["actor_id"], row.body["actor_role"], row.body["source_ip"]) == (
                "staff-7", "supervisor", "192.0.2.0/24")  # the client's network, never its address
        else:
            assert row.body["actor"] == {"id": "staff-7", "role": "supervisor"}
            assert row.body["correlation_id"] == "req-ctx-0001"
