"""Audit emitter (D3): records reach the ``audit`` exchange, ids and field names only."""

from __future__ import annotations

import json

import pytest
from kernel_sample import AccountsProjection, open_account, read_email
from kombu import Connection, Queue
from upgestao_kernel.audit import (
    BATCH_KEY,
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    AuditEmitter,
    AuditRecord,
    AuditRecordSchema,
    is_batch,
    records_in,
    source_network,
)
from upgestao_kernel.context import RequestContext
from upgestao_kernel.fakes import MemoryStore
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


def _emitted(records: list) -> list[dict]:
    """The outbox rows ``AuditEmitter.emit_many`` writes for ``records``, through the kernel's outbox insert."""
    tx = MemoryStore("ledger").begin()
    AuditEmitter("ledger").emit_many(tx, CTX, records)
    return tx.outbox


def _read(n: int, action: str = "read", **over) -> AuditRecord:
    values = {"resource_type": "message", "resource_id": f"m-{n}", "subject_id": "c-1", "fields": ["body"],
              "purpose": "page", **over}
    return AuditEmitter("ledger").build(CTX, action=action, **values)


def test_emit_many_sends_the_records_of_one_action_as_one_message_each_record_intact():
    records = [_read(n) for n in range(50)]
    (row,) = _emitted(records)
    assert (row["exchange"], row["routing_key"]) == ("audit", "audit.ledger.read")
    assert row["message_id"] == records[0].audit_id  # unique, and the same on every relay attempt
    assert is_batch(row["body"]) and list(row["body"]) == [BATCH_KEY]
    assert records_in(row["body"]) == [r.to_message() for r in records]
    schema = AuditRecordSchema()
    assert [str(schema.load(r)["audit_id"]) for r in records_in(row["body"])] == [r.audit_id for r in records]
    assert row["headers"]["nameko.request_id"] == "req-audit-1"


def test_emit_many_groups_by_action_in_the_order_each_action_first_came():
    records = [_read(0), _read(1, "export"), _read(2), _read(3, "share", recipient="crm"), _read(4, "export")]
    rows = _emitted(records)
    assert [r["routing_key"] for r in rows] == ["audit.ledger.read", "audit.ledger.export", "audit.ledger.share"]
    assert [[m["resource_id"] for m in records_in(r["body"])] for r in rows] == [["m-0", "m-2"], ["m-1", "m-4"],
                                                                                ["m-3"]]
    assert rows[2]["body"] == records[3].to_message()  # a group of one is a single record, as emit() sends it
    assert [r["message_id"] for r in rows] == [records[0].audit_id, records[1].audit_id, records[3].audit_id]


def test_emit_many_cuts_a_batch_at_its_record_count_and_its_size():
    records = [_read(n, resource_type="m", subject_id="c", purpose="p") for n in range(2 * MAX_BATCH_RECORDS + 1)]
    rows = _emitted(records)
    assert [len(records_in(r["body"])) for r in rows] == [MAX_BATCH_RECORDS, MAX_BATCH_RECORDS, 1]
    assert [m["audit_id"] for r in rows for m in records_in(r["body"])] == [r.audit_id for r in records]
    assert len({r["message_id"] for r in rows}) == 3

    wide = [_read(n, fields=[f"campo_{k:05d}" for k in range(300)]) for n in range(40)]  # ~0.04 MB of JSON each
    rows = _emitted(wide)
    assert len(rows) > 1 and sum(len(records_in(r["body"])) for r in rows) == 40
    for row in rows:
        assert len(json.dumps(row["body"], separators=(",", ":"))) <= MAX_BATCH_BYTES
    assert [m["resource_id"] for r in rows for m in records_in(r["body"])] == [f"m-{n}" for n in range(40)]


def test_emit_many_of_one_record_or_none():
    record = _read(7)
    (row,) = _emitted([record])
    assert row["body"] == record.to_message() and row["message_id"] == record.audit_id
    assert records_in(row["body"]) == [record.to_message()]
    assert _emitted([]) == []


def _accessed(accesses: list, **over) -> tuple[list[str], list[dict]]:
    """``AuditEmitter.emit_accesses``'s audit ids and outbox rows for ``accesses``."""
    tx = MemoryStore("ledger").begin()
    values = {"action": "read", "resource_type": "message", "purpose": "page", **over}
    ids = AuditEmitter("ledger").emit_accesses(tx, CTX, accesses=accesses, **values)
    return ids, tx.outbox


def test_emit_accesses_writes_the_records_build_makes_each_its_own():
    """The records of a statement's reads built from one template: each the record ``build`` makes of its
    resource, subject and fields (its own audit_id; one occurred_at for all), sent as emit_many sends them."""
    accesses = [(f"m-{n}", f"c-{n % 3}", ("body",) if n % 2 else ("title", "body", "title")) for n in range(7)]
    ids, (row,) = _accessed(accesses)
    sent = records_in(row["body"])
    assert [m["audit_id"] for m in sent] == ids and len(set(ids)) == 7 and row["message_id"] == ids[0]
    occurred = {m["occurred_at"] for m in sent}
    assert len(occurred) == 1
    schema = AuditRecordSchema()
    for (resource_id, subject_id, fields), message, audit_id in zip(accesses, sent, ids, strict=True):
        built = AuditEmitter("ledger").build(CTX, action="read", resource_type="message", resource_id=resource_id,
                                             subject_id=subject_id, fields=fields, purpose="page")
        expected = {**built.to_message(), "audit_id": audit_id, "occurred_at": message["occurred_at"]}
        assert message == expected and list(message) == list(expected)  # the same keys, in the same order
        assert str(schema.load(message)["audit_id"]) == audit_id
    assert sent[0]["fields"] is not sent[2]["fields"]  # each record its own list
    _, (one,) = _accessed(accesses[:1])
    assert not is_batch(one["body"]) and one["body"]["resource_id"] == "m-0"
    assert _accessed([]) == ([], [])
    with pytest.raises(ValueError, match="unknown audit action"):
        _accessed(accesses, action="peek")
    with pytest.raises(ValueError, match="purpose"):
        _accessed(accesses, purpose="")


def test_emit_accesses_cuts_batches_as_emit_many_does():
    """The size bound of each record is _wire_size_bound of its body, so the batches are emit_many's."""
    from upgestao_kernel.audit import _wire_size_bound

    wide = tuple(f"campo_{k:05d}" for k in range(300))
    accesses = [(f"m-{n}", "c-1" if n % 2 else None, wide) for n in range(40)]
    ids, rows = _accessed(accesses)
    as_records = _emitted([_read(n, subject_id=subject_id, fields=fields)
                           for n, (_, subject_id, fields) in enumerate(accesses)])
    assert [len(records_in(r["body"])) for r in rows] == [len(records_in(r["body"])) for r in as_records]
    assert len(rows) > 1 and [m["audit_id"] for r in rows for m in records_in(r["body"])] == ids
    for row in rows:
        assert len(json.dumps(row["body"], separators=(",", ":"))) <= MAX_BATCH_BYTES
    _, rows = _accessed([(f"m-{n}", "c", ("body",)) for n in range(MAX_BATCH_RECORDS + 1)], resource_type="m",
                        purpose="p")
    assert [len(records_in(r["body"])) for r in rows] == [MAX_BATCH_RECORDS, 1]

    import upgestao_kernel.audit as audit_module

    seen = []
    real = audit_module.AuditEmitter._enqueue_batches

    def spy(self, conn, context, entries):
        seen.extend(entries)
        return real(self, conn, context, entries)

    audit_module.AuditEmitter._enqueue_batches = spy
    try:
        _accessed([("m-é🙂", "c-1", ("body", "x")), (None, None, ())])
    finally:
        audit_module.AuditEmitter._enqueue_batches = real
    assert [size for _, _, size in seen] == [_wire_size_bound(body) for _, body, _ in seen]


def test_new_ids_are_random_version_4_uuids_in_canonical_form():
    import uuid

    from upgestao_kernel.events import new_ids

    ids = new_ids(2000)
    assert len(set(ids)) == 2000 and new_ids(0) == []
    for value in ids:
        parsed = uuid.UUID(value)
        assert str(parsed) == value and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    # every variant digit (8, 9, a, b) and version digit position filled from the randomness
    assert {value[19] for value in ids} == set("89ab") and {value[14] for value in ids} == {"4"}
