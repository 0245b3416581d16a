"""Service tests: audit records from the ``audit`` exchange into the append-only log
(real RabbitMQ and PostgreSQL)."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa
from kombu import Connection
from upgestao_kernel.testing import wait_for
from upgestao_privacy.domain import merkle
from upgestao_privacy.domain.checkpoints import Checkpoint, decode_public_key, verify_checkpoint
from upgestao_privacy.domain.leaves import canonical_json


def test_records_are_stored_once_with_gap_free_seqs_and_canonical_leaves(privacy):
    records = [privacy.record(subject_id=f"subject-{i}") for i in range(30)]
    privacy.publish(records)
    privacy.publish(records[:10])  # delivered again (a relay that died before marking them sent)
    privacy.publish([records[3]])
    privacy.wait_count(30)
    # the duplicates were behind the originals in the queue: once these are in, they were seen
    marker = privacy.record()
    privacy.publish([marker])
    privacy.wait_count(31)

    stored = privacy.stored()
    assert [r["seq"] for r in stored] == list(range(31))
    assert [r["audit_id"] for r in stored] == [r["audit_id"] for r in records] + [marker["audit_id"]]
    with privacy.engine.connect() as conn:
        leaves = conn.execute(sa.text("SELECT seq, leaf FROM audit_records ORDER BY seq")).all()
    for seq, leaf in leaves:
        assert leaf.encode() == canonical_json(json.loads(leaf))  # sorted keys, no spaces, UTF-8
        assert json.loads(leaf)["seq"] == seq
    original = {k: v for k, v in records[0].items() if k != "occurred_at"}
    assert {k: v for k, v in stored[0].items() if k not in ("occurred_at", "seq")} == original


def parked(privacy) -> int:
    with Connection(privacy.amqp_uri) as conn:
        return conn.default_channel.queue_declare("privacy.audit-ingest.parked", passive=True).message_count


def test_a_malformed_record_is_parked_and_the_others_stored(privacy):
    good = privacy.record()
    privacy.publish_raw(b"{not json", message_id=str(uuid.uuid4()))
    privacy.publish_raw(json.dumps({**privacy.record(), "action": "peek"}).encode(), message_id=str(uuid.uuid4()))
    privacy.publish([good])
    privacy.wait_count(1)
    assert [r["audit_id"] for r in privacy.stored()] == [good["audit_id"]]

    assert wait_for(lambda: parked(privacy) == 2)


def test_a_record_nested_too_deep_is_parked_not_a_poison_message(privacy):
    """json.loads raises RecursionError (not ValueError) on deep nesting: the batch was never acked
    and came back forever, blocking every audit record behind it (found by the parser fuzzers)."""
    good = privacy.record()
    privacy.publish_raw(b"[" * 100_000 + b"]" * 100_000, message_id=str(uuid.uuid4()))
    privacy.publish_raw(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, message_id=str(uuid.uuid4()))
    privacy.publish([good])
    privacy.wait_count(1)
    assert [r["audit_id"] for r in privacy.stored()] == [good["audit_id"]]

    assert wait_for(lambda: parked(privacy) == 2)


def test_records_emitted_while_privacy_is_stopped_arrive_once_it_starts(privacy):
    first = [privacy.record() for _ in range(5)]
    privacy.publish(first)
    privacy.wait_count(5)
    privacy.stop_service()
    later = [privacy.record() for _ in range(40)]
    privacy.publish(later)
    privacy.publish(later[:7])  # and some delivered twice
    assert privacy.count() == 5  # nobody stores while privacy is down: they wait in the queue
    privacy.start()
    privacy.wait_count(45)
    marker = privacy.record()
    privacy.publish([marker])
    privacy.wait_count(46)
    stored = privacy.stored()
    assert [r["seq"] for r in stored] == list(range(46))
    assert sorted(r["audit_id"] for r in stored) == sorted(r["audit_id"] for r in [*first, *later, marker])


APPEND_ONLY_VIOLATIONS = (
    "UPDATE audit_records SET actor_id = 'someone-else' WHERE seq = 0",
    "DELETE FROM audit_records WHERE seq = 0",
    "TRUNCATE audit_records",
    "UPDATE audit_tree_nodes SET hash = hash WHERE node_id = 0",
    "DELETE FROM audit_tree_nodes",
    "DELETE FROM audit_checkpoints",
    "UPDATE audit_checkpoints SET tree_size = tree_size + 1",
)


def test_postgresql_refuses_to_rewrite_the_log(privacy):
    privacy.publish([privacy.record() for _ in range(3)])
    privacy.wait_count(3)
    wait_for(lambda: privacy.scalar("SELECT count(*) FROM audit_checkpoints"))
    before = privacy.stored()
    for statement in APPEND_ONLY_VIOLATIONS:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with privacy.engine.begin() as conn:
                conn.execute(sa.text(statement))
    assert privacy.stored() == before


def test_checkpoints_are_signed_and_match_the_tree(privacy, monkeypatch):
    records = [privacy.record() for _ in range(1203)]
    privacy.publish(records)
    privacy.wait_count(1203)
    dpo = privacy.caller(privacy.DPO)

    def signed_all() -> dict | None:
        checkpoint = dpo.audit_checkpoint()
        return checkpoint if checkpoint["tree_size"] == 1203 else None

    latest = Checkpoint.from_dict(wait_for(signed_all, timeout=10))
    public_key = decode_public_key(dpo.audit_public_key()["public_key"])
    verify_checkpoint(latest, public_key)
    with privacy.engine.connect() as conn:
        leaves = [row.leaf.encode() for row in conn.execute(sa.text("SELECT leaf FROM audit_records ORDER BY seq"))]
        sizes = [row.tree_size for row in conn.execute(sa.text("SELECT tree_size FROM audit_checkpoints"))]
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    assert latest.root_hash == merkle.root_of(hashes)
    # at least every 1,000 records: no gap between successive checkpoints is wider
    steps = [b - a for a, b in zip([0, *sorted(sizes)], sorted(sizes), strict=False)]
    assert max(steps) <= 1000 + 500  # a batch of at most 500 may carry a checkpoint past the mark

    for seq in (0, 1, 511, 1000, 1202):
        proof = dpo.audit_inclusion_proof(seq, 1203)
        merkle.verify_inclusion(hashes[seq], seq, 1203, [decode(h) for h in proof["audit_path"]], latest.root_hash)
    for first in (1, 700, 1000):
        proof = dpo.audit_consistency_proof(first, 1203)
        merkle.verify_consistency(first, 1203, merkle.root_of(hashes[:first]), latest.root_hash,
                                  [decode(h) for h in proof["proof"]])


def decode(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


def test_the_embedded_sqlite_log_appends_proves_and_refuses_rewrites(tmp_path, audit_record):
    """Local mode (no configuration): the same store, triggers and proofs on SQLite."""
    from upgestao_kernel.db import create_engine
    from upgestao_kernel.migrations import upgrade
    from upgestao_privacy.adapters import audit_store
    from upgestao_privacy.domain.checkpoints import CheckpointSigner
    from upgestao_privacy.service_layer import ingest

    url = f"sqlite:///{tmp_path / 'privacy.sqlite3'}"
    upgrade("upgestao_privacy:migrations", url)
    engine = create_engine(url)
    signer = CheckpointSigner(b"\x07" * 32)
    records = [ingest.parse(audit_record()) for _ in range(7)]
    log = audit_store.sql_transactions(engine)
    first = ingest.store(log, records[:4], signer, checkpoint_every=1000)
    again = ingest.store(log, records, signer, checkpoint_every=1000)
    assert [a.seq for a in first.stored] == [0, 1, 2, 3] and [a.seq for a in again.stored] == [4, 5, 6]
    assert again.duplicates == 4
    checkpoint = ingest.sign_pending(log, signer)
    assert checkpoint.tree_size == 7
    with engine.connect() as conn:
        leaves = [row.leaf.encode() for row in conn.execute(sa.text("SELECT leaf FROM audit_records ORDER BY seq"))]
        hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
        assert checkpoint.root_hash == merkle.root_of(hashes)
        source = audit_store.SqlNodeSource(conn)
        merkle.verify_inclusion(hashes[5], 5, 7, merkle.inclusion_proof(5, 7, source), checkpoint.root_hash)
    for statement in APPEND_ONLY_VIOLATIONS:
        if statement.startswith("TRUNCATE"):
            continue  # SQLite has no TRUNCATE
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(sa.text(statement))
    engine.dispose()
