"""Events in (the batch consumers of the other services' events): what is parked, what is retried, who is believed.

The consumer itself (batches, acks after the commit, parking confirmed) is the kernel's ``BatchConsumer``, tested
in the kernel; the service tests run it against RabbitMQ."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from upgestao_integrations.entrypoints.events_in import (
    SOURCES,
    NotAnEvent,
    NotTheSource,
    NotThisQueue,
    admission,
    context_of,
    parse_event,
    refused,
)
from upgestao_integrations.service_layer import fanout
from upgestao_kernel.broker_identity import broker_user
from upgestao_kernel.consumers.batch import UNREADABLE
from upgestao_kernel.eventstore import ConcurrencyError
from upgestao_kernel.parking import error_header


def _body(**changes) -> bytes:
    body = {"event_id": str(uuid.uuid4()), "stream_id": "message-m1", "version": 1,
            "type": "messaging.message_created.v1", "occurred_at": datetime.now(UTC).isoformat(),
            "actor": {"id": None, "role": "system"}, "correlation_id": "req-1", "causation_id": None,
            "data": {"message_id": "m1"}}
    body.update(changes)
    return json.dumps(body).encode()


def test_an_event_is_read_from_its_message() -> None:
    [envelope] = parse_event(_body(event_id="e-1"))
    assert (envelope.event_id, envelope.type, envelope.data) == ("e-1", "messaging.message_created.v1",
                                                                 {"message_id": "m1"})


@pytest.mark.parametrize("body", [
    b"not json", b"[1, 2]", b"{}", _body(occurred_at="yesterday"), _body(data=["a"]), _body(event_id=7),
    _body(event_id="x" * 37), _body(event_id=""), _body(type=None), b"[" * 100_000,
])
def test_a_message_that_is_no_event_is_parked(body: bytes) -> None:
    with pytest.raises(NotAnEvent) as raised:
        parse_event(body)
    assert isinstance(raised.value, UNREADABLE)  # what the batch consumer parks
    assert error_header(raised.value) == "NotAnEvent: the message is not an event"


def test_only_the_source_its_own_service_or_an_operator_is_believed() -> None:
    admit = admission("messaging", fanout.MESSAGING_EVENTS, check_sender=True)
    [event] = parse_event(_body())
    for user in (broker_user("messaging", "/"), broker_user("integrations", "/"), "guest", None):
        admit(event, user)
    for other in ("gateway", "identity", "privacy"):
        with pytest.raises(NotTheSource) as raised:
            admit(event, broker_user(other, "/"))
        assert isinstance(raised.value, UNREADABLE)
    admission("messaging", fanout.MESSAGING_EVENTS, check_sender=False)(event, broker_user("gateway", "/"))


def test_a_source_cannot_speak_for_another_through_its_own_queue() -> None:
    """An erasure request dropped by messaging into the queue of messaging's events (the default exchange takes
    a queue's name) is no event of that queue: parked, whoever sent it."""
    [forged] = parse_event(_body(type="privacy.erasure_requested.v1", data={"subject_id": "s", "request_id": "r"}))
    for check_sender in (True, False):
        with pytest.raises(NotThisQueue):
            admission("messaging", fanout.MESSAGING_EVENTS, check_sender=check_sender)(
                forged, broker_user("messaging", "/"))


def test_the_queues_are_the_former_handlers_queues_each_bound_for_its_sources_events() -> None:
    assert {f"integrations.{h}": s for h, (s, _) in SOURCES.items()} == {
        "integrations.on_messaging_event": "messaging", "integrations.on_identity_event": "identity",
        "integrations.on_erasure_requested": "privacy"}
    for source, types in SOURCES.values():
        assert types and all(t.startswith(f"{source}.") for t in types)


def test_the_database_away_is_retried_an_event_it_refuses_is_parked() -> None:
    away = [sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
            sa.exc.InterfaceError("SELECT 1", {}, Exception("connection already closed")),
            sa.exc.TimeoutError("QueuePool limit"), ConcurrencyError("message-x", 1, 2),
            ConnectionResetError()]
    assert not any(refused(exc) for exc in away)
    invalidated = sa.exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    assert not refused(invalidated)
    assert refused(sa.exc.IntegrityError("INSERT", {}, Exception("duplicate")))
    assert refused(sa.exc.DataError("INSERT", {}, Exception("value too long")))
    assert refused(AttributeError("'list' object has no attribute 'get'"))


def test_the_work_of_an_event_is_the_systems_in_its_correlation_caused_by_it() -> None:
    [event] = parse_event(_body(event_id="e-9", correlation_id="req-9"))
    context = context_of("messaging")(event)
    assert (context.actor_id, context.actor_role) == ("system", "system")
    assert (context.correlation_id, context.causation_id, context.caller_service) == ("req-9", "e-9", "messaging")
    [odd] = parse_event(_body(correlation_id="not an id; DROP"))
    made = context_of("messaging")(odd)
    assert made.correlation_id == made.request_id != "not an id; DROP"
