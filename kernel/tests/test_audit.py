"""Audit emitter (D3): records reach the ``audit`` exchange, ids and field names only."""

from __future__ import annotations

import pytest
from kernel_sample import AccountsProjection, open_account, read_email
from kombu import Connection, Queue
from upgestao_kernel.audit import AuditEmitter, AuditRecordSchema, source_network
from upgestao_kernel.context import RequestContext
from upgestao_kernel.relay import OutboxRelay, drain
from upgestao_kernel.topology import audit_exchange
from upgestao_kernel.unit_of_work import UnitOfWork

CTX = RequestContext(request_id="req-audit-1", actor_id="staff-1", actor_role="attendant", source_ip="192.0.2.1")


def test_audit_records_are_published_to_the_audit_exchange(pg_engine, vault, amqp_uri):
    queue = Queue("test.audit", exchange=audit_exchange(), routing_key="audit.#", durable=False)
    with Connection(amqp_uri) as conn:
        queue(conn.default_channel).declare()
    with UnitOfWork(pg_engine, "ledger", CTX, projections=[AccountsProjection()], vault=vault) as uow:
        open_account(uow, "acc-1", "maria@example.com")
        read_email(uow, "acc-1")
        uow.deny(action="update", resource_type="account", resource_id="acc-1", subject_id="acc-1",
                 fields=["email"], purpose="profile_edit")
    relay = OutboxRelay(pg_engine, amqp_uri, services=["ledger"])
    drain(relay)
    relay.close()

    received = []
    with Connection(amqp_uri) as conn:
        simple = conn.SimpleQueue(queue)
        while True:
            try:
                message = simple.get(timeout=2)
            except simple.Empty:
                break
            received.append((message.delivery_info["routing_key"], message.payload, message.headers))
            message.ack()
    assert [r[0] for r in received] == ["audit.ledger.create", "audit.ledger.read", "audit.ledger.update"]
    schema = AuditRecordSchema()
    for _, body, headers in received:
        record = schema.load(body)  # validates every field
        assert record["service"] == "ledger" and record["request_id"] == "req-audit-1"
        assert record["fields"] == ["email"]
        assert "maria" not in str(body)
        assert headers["nameko.request_id"] == "req-audit-1"
    assert [schema.load(r[1])["outcome"] for r in received] == ["success", "success", "denied"]


def test_unknown_action_or_missing_purpose_is_refused(vault):
    from upgestao_kernel.audit import AuditEmitter

    emitter = AuditEmitter("ledger")
    with pytest.raises(ValueError):
        emitter.build(CTX, action="peek", resource_type="account", resource_id="a", subject_id="a",
                      fields=[], purpose="x")
    with pytest.raises(ValueError):
        emitter.build(CTX, action="read", resource_type="account", resource_id="a", subject_id="a",
                      fields=[], purpose="")


@pytest.mark.parametrize("address, network", [
    ("192.0.2.1", "192.0.2.0/24"),
    ("203.0.113.255", "203.0.113.0/24"),
    ("2001:db8:1234:5678::9", "2001:db8:1234::/48"),
    ("::ffff:198.51.100.7", "198.51.100.0/24"),
    ("203.0.113.0/24", "203.0.113.0/24"),
    ("10.0.0.0/8", "10.0.0.0/8"),
    ("unknown", None), ("", None), (None, None),
])
def test_an_audit_record_keeps_the_network_never_the_address(address, network):
    """Issue 11, finding 8: every record kept the client's address (personal data, in a log that can never
    be erased); it keeps the IPv4 /24 or IPv6 /48 now, while the context still carries the address."""
    context = RequestContext(request_id="req-net", actor_id="staff-1", actor_role="attendant", source_ip=address)
    assert source_network(address) == network
    record = AuditEmitter("ledger").build(context, action="read", resource_type="account", resource_id="a",
                                          subject_id="a", fields=["email"], purpose="support")
    assert record.source_ip == network and record.to_message()["source_ip"] == network
    assert AuditRecordSchema().load(record.to_message())["source_ip"] == network
