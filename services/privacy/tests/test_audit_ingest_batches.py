"""Service tests: batch messages of audit records (``{"records": [...]}``, what the kernel's
``AuditEmitter.emit_many`` sends) into the log, on real RabbitMQ and PostgreSQL. Only the transport
is batched: each record is stored as its own leaf, once however often its message comes; a message is
admitted, refused and parked whole, nothing of it stored, and one of absurd size is refused unread."""

from __future__ import annotations

import json

import sqlalchemy as sa
from upgestao_kernel.audit import AuditEmitter, is_batch
from upgestao_kernel.context import RequestContext
from upgestao_kernel.parking import list_parked
from upgestao_kernel.schema import outbox
from upgestao_kernel.testing import wait_for
from upgestao_privacy.domain.leaves import canonical_json
from upgestao_privacy.service_layer import ingest

INGEST = "privacy.audit-ingest"


def parked(privacy, message_id: str):
    """The parked message of ``message_id``, once it is there."""
    found = wait_for(lambda: [m for m in list_parked(privacy.amqp_uri, INGEST) if m.message_id == message_id])
    return found[0]


def test_a_batch_is_one_leaf_per_record_stored_once_however_often_delivered(privacy):
    batch = [privacy.record(subject_id=f"subject-{i}") for i in range(50)]
    single = privacy.record()
    privacy.publish_batch(batch)
    privacy.publish_batch(batch)  # delivered again (a relay that died before marking it sent)
    privacy.publish_batch(batch[10:20])  # records already stored, in another message
    privacy.publish([single])
    privacy.wait_count(51)
    marker = privacy.record()  # behind the duplicates in the queue: once it is in, they were seen
    privacy.publish([marker])
    privacy.wait_count(52)

    stored = privacy.stored()
    assert [r["seq"] for r in stored] == list(range(52))
    assert [r["audit_id"] for r in stored] == [r["audit_id"] for r in batch] + [single["audit_id"],
                                                                                 marker["audit_id"]]
    with privacy.engine.connect() as conn:
        leaves = conn.execute(sa.text("SELECT seq, leaf FROM audit_records ORDER BY seq")).all()
    for seq, leaf in leaves:
        assert leaf.encode() == canonical_json(json.loads(leaf)) and json.loads(leaf)["seq"] == seq
    for original, kept in zip(batch, stored, strict=False):
        assert {k: v for k, v in kept.items() if k not in ("occurred_at", "seq")} == {
            k: v for k, v in original.items() if k != "occurred_at"}


def test_a_batch_with_one_malformed_record_is_parked_whole(privacy):
    batch = [privacy.record() for _ in range(4)]
    batch.insert(2, {**privacy.record(), "action": "peek"})
    message_id = privacy.publish_batch(batch)
    good = privacy.record()
    privacy.publish([good])
    privacy.wait_count(1)

    message = parked(privacy, message_id)
    assert message.error.startswith("ValueError: record 2 of the batch") and "action" in message.error
    assert [r["audit_id"] for r in privacy.stored()] == [good["audit_id"]]  # not one record of the batch


def test_a_batch_smuggling_another_service_s_record_is_parked_whole_never_stored(privacy):
    """The attacker holds the gateway's broker user: its batch may carry the gateway's records only. One
    record of identity's among its own, or a batch all of identity's, and nothing of the message is stored."""
    own = [privacy.record(service="gateway") for _ in range(3)]
    smuggled = privacy.record(service="identity")
    mixed = privacy.publish_batch(own[:2] + [smuggled] + own[2:], as_service="gateway")
    forged = privacy.publish_batch([privacy.record(service="identity") for _ in range(3)], as_service="gateway")
    genuine = [privacy.record(service="gateway") for _ in range(2)]
    privacy.publish_batch(genuine)  # the gateway's own records, from its own user
    privacy.wait_count(2)

    for message_id in (mixed, forged):
        assert "NotTheSender" in parked(privacy, message_id).error
    assert [r["audit_id"] for r in privacy.stored()] == [r["audit_id"] for r in genuine]
    assert privacy.count() == 2  # neither the smuggled record nor the gateway's own ones beside it


def test_a_batch_of_absurd_size_or_count_is_parked_and_the_ingest_goes_on(privacy):
    record = privacy.record()
    too_many = privacy.publish_batch([privacy.record() for _ in range(ingest.MAX_MESSAGE_RECORDS + 1)])
    huge = json.dumps({"records": [record] * (ingest.MAX_MESSAGE_BYTES // len(json.dumps(record)) + 1)}).encode()
    privacy.publish_raw(huge, message_id="huge-batch")
    good = privacy.record()
    privacy.publish([good])
    privacy.wait_count(1)

    assert "from 1 to" in parked(privacy, too_many).error
    assert "bytes" in parked(privacy, "huge-batch").error
    assert [r["audit_id"] for r in privacy.stored()] == [good["audit_id"]]


def test_records_emitted_together_travel_the_outbox_and_the_broker_as_one_message_each_action(privacy):
    """The whole path: ``emit_many`` (privacy's own records, in its own outbox) -> relay -> ingest."""
    context = RequestContext(request_id="req-batch", actor_id="dpo-1", actor_role="dpo", source_ip="203.0.113.9")
    emitter = AuditEmitter("privacy")
    records = [emitter.build(context, action="audit_query", resource_type="audit_record", resource_id=f"r-{n}",
                             subject_id=f"s-{n}", fields=(), purpose="investigation") for n in range(30)]
    records += [emitter.build(context, action="export", resource_type="audit_record", resource_id=f"e-{n}",
                              subject_id=None, fields=(), purpose="investigation") for n in range(20)]
    with privacy.engine.begin() as conn:
        emitter.emit_many(conn, context, records)
        rows = conn.execute(sa.select(outbox.c.routing_key, outbox.c.body)).all()
    assert sorted((r.routing_key, len(r.body["records"])) for r in rows if is_batch(r.body)) == [
        ("audit.privacy.audit_query", 30), ("audit.privacy.export", 20)] and len(rows) == 2
    privacy.start_relay()
    privacy.wait_count(50)

    stored = privacy.stored()
    assert sorted(r["audit_id"] for r in stored) == sorted(r.audit_id for r in records)
    assert sorted(r["resource_id"] for r in stored) == sorted(r.resource_id for r in records)
    assert all(r["request_id"] == "req-batch" and r["service"] == "privacy" for r in stored)
    with privacy.engine.connect() as conn:
        assert wait_for(lambda: conn.execute(sa.text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
                        .scalar() == 0)
