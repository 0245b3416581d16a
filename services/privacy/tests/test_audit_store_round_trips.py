"""The ingest's statements on PostgreSQL: a store is the head locked and read, one write, the commit; and what
it reads after the lock is what the transaction that held the lock committed. The stream feeder's: an idle
poll is one statement."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from upgestao_kernel.db import create_engine
from upgestao_kernel.testing import wait_for_a_lock_waiter
from upgestao_privacy.adapters import audit_store
from upgestao_privacy.adapters.stream_feeder import StreamFeeder
from upgestao_privacy.domain import merkle
from upgestao_privacy.domain.checkpoints import CheckpointSigner
from upgestao_privacy.service_layer import ingest
from upgestao_privacy.service_layer.checkpointing import checkpoint_if_due
from upgestao_privacy.settings import AuditSettings

MIGRATIONS = "upgestao_privacy:migrations"
SIGNER = CheckpointSigner(b"\x07" * 32)


@pytest.fixture
def engine(database_factory):
    engine = create_engine(database_factory("privacy_trips", MIGRATIONS), pool_size=3)
    yield engine
    engine.dispose()


def counting(engine) -> Counter:
    """Statements, and the BEGIN psycopg2 sends before a transaction's first one, and COMMITs."""
    counts: Counter = Counter()

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _statement(conn, cursor, statement, parameters, context, executemany) -> None:
        raw = conn.connection.dbapi_connection
        if not raw.autocommit and raw.get_transaction_status() == 0:  # idle: BEGIN goes first
            counts["begin"] += 1
        counts["statements"] += 1

    @sa.event.listens_for(engine, "commit")
    def _commit(conn) -> None:
        counts["commit"] += 1

    return counts


def test_a_store_is_four_round_trips_and_a_due_checkpoint_one_statement_more(engine, audit_record):
    transaction = audit_store.sql_transactions(engine)
    ingest.store(transaction, [ingest.parse(audit_record()) for _ in range(2)], SIGNER, checkpoint_every=5)
    counts = counting(engine)
    result = ingest.store(transaction, [ingest.parse(audit_record()) for _ in range(2)], SIGNER, checkpoint_every=5)
    assert [a.seq for a in result.stored] == [2, 3] and result.checkpoint is None
    assert counts == {"begin": 1, "statements": 2, "commit": 1}  # the checkpoint rule asked nothing more
    counts.clear()
    result = ingest.store(transaction, [ingest.parse(audit_record()) for _ in range(2)], SIGNER, checkpoint_every=5)
    assert result.checkpoint is not None and result.checkpoint.tree_size == 6
    assert counts == {"begin": 1, "statements": 3, "commit": 1}  # the checkpoint's insert
    counts.clear()
    again = ingest.store(transaction, [ingest.parse(audit_record()) for _ in range(3)], SIGNER, checkpoint_every=5)
    assert again.checkpoint is None and counts["statements"] == 2  # 3 since the checkpoint the append read
    with engine.connect() as conn:
        head = audit_store.read_head(conn)
        leaves = [row.leaf.encode() for row in conn.execute(sa.text("SELECT leaf FROM audit_records ORDER BY seq"))]
        nodes = conn.execute(sa.text("SELECT count(*) FROM audit_tree_nodes")).scalar_one()
    assert head.tree_size == 9 and head.frontier.root() == merkle.root_of([merkle.leaf_hash(x) for x in leaves])
    assert nodes == 9 + 4 + 2 + 1  # every complete subtree of 9 leaves: 9 leaves, 4 pairs, 2 fours, 1 eight


def test_the_columns_written_from_arrays_hold_what_the_leaves_say(engine, audit_record):
    """occurred_at travels as the record's ISO text: the column holds the same instant (a read checks every
    column against its leaf), stored_at the batch's time."""
    when = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-3)))
    records = [ingest.parse(audit_record(occurred_at=when)), ingest.parse(audit_record(subject_id=None))]
    now = datetime(2026, 12, 2, 12, 0, 0, 654321, tzinfo=UTC)
    ingest.store(audit_store.sql_transactions(engine), records, SIGNER, checkpoint_every=1000, now=now)
    with engine.connect() as conn:
        stored = audit_store.search(conn, {}, 10, None)  # ColumnsTampered if a column disagreed with its leaf
        columns = conn.execute(sa.text("SELECT occurred_at, stored_at, subject_id FROM audit_records ORDER BY seq"))
        rows = columns.all()
    assert [r["audit_id"] for r in reversed(stored)] == [r["audit_id"] for r in records]
    assert rows[0].occurred_at == when and rows[0].stored_at == now and rows[1].subject_id is None


def test_an_append_waiting_for_the_lock_sees_what_its_holder_committed(engine, audit_record):
    """A second ingest blocked on the head's lock, once it has it, skips the records the first stored and
    counts from the checkpoint the first signed: its reads are made after the lock was granted."""
    first_records = [ingest.parse(audit_record()) for _ in range(4)]
    second_records = first_records[2:] + [ingest.parse(audit_record()) for _ in range(2)]
    holding, results = threading.Event(), {}
    transaction = audit_store.sql_transactions(engine)

    def second() -> None:
        holding.wait(10)
        results["second"] = ingest.store(transaction, second_records, SIGNER, checkpoint_every=4)

    thread = threading.Thread(target=second)
    thread.start()
    with engine.begin() as conn:
        log = audit_store.SqlAuditLog(conn)
        stored = log.append(first_records, datetime.now(UTC))
        signed = checkpoint_if_due(log, SIGNER, datetime.now(UTC), every=4)
        holding.set()
        wait_for_a_lock_waiter(engine, "the second ingest")  # the second is blocked on the head's lock, not merely late
        assert thread.is_alive()
    thread.join(10)
    assert [a.seq for a in stored] == [0, 1, 2, 3] and signed.tree_size == 4
    result = results["second"]
    assert [a.seq for a in result.stored] == [4, 5] and result.duplicates == 2
    assert result.checkpoint is None  # 2 records since the first's checkpoint, not 6 since none
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*), max(seq) FROM audit_records")).one() == (6, 5)
        assert [c.tree_size for c in audit_store.checkpoints_between(conn, 0, 100)] == [4]


def test_the_stream_feeder_polls_an_idle_log_in_one_statement_and_feeds_records_and_checkpoints(
        engine, amqp_uri, audit_record, tmp_path):
    settings = AuditSettings(signing_key=b"\x07" * 32, stream_queue=f"test.audit.log.{uuid.uuid4().hex[:8]}",
                             checkpoint_file=tmp_path / "checkpoints.jsonl")
    feeder = StreamFeeder(engine, amqp_uri, settings)
    transaction = audit_store.sql_transactions(engine)
    try:
        ingest.store(transaction, [ingest.parse(audit_record()) for _ in range(3)], SIGNER, checkpoint_every=3)
        counts = counting(engine)
        assert feeder.feed_once() == 3  # the records, then the checkpoint of 3 they complete
        assert counts["begin"] == 1 and counts["statements"] == 5  # state, leaves, checkpoints, 2 updates
        assert _position(engine) == (3, 3)
        assert [json.loads(line)["tree_size"] for line in (tmp_path / "checkpoints.jsonl").read_text().splitlines()] \
            == [3]
        counts.clear()
        assert feeder.feed_once() == 0  # found nothing: the transaction's two statements
        assert counts == {"begin": 1, "statements": 2, "commit": 1}
        for _ in range(2):
            counts.clear()
            assert feeder.feed_once() == 0  # idle: one statement outside any transaction
            assert counts == {"statements": 1}
        ingest.store(transaction, [ingest.parse(audit_record()) for _ in range(2)], SIGNER, checkpoint_every=3)
        counts.clear()
        assert feeder.feed_once() == 2  # the look, then the batch; no checkpoint to look for
        assert counts["statements"] == 1 + 3 and counts["begin"] == 1
        assert _position(engine) == (5, 3)
        assert ingest.sign_pending(transaction, SIGNER).tree_size == 5
        assert feeder.feed_once() == 0 and _position(engine) == (5, 5)  # a checkpoint alone is work too
        with engine.begin() as conn:  # another feeder holds the position: this one publishes nothing
            conn.exec_driver_sql("SELECT 1 FROM audit_stream_position FOR UPDATE")
            ingest.store(transaction, [ingest.parse(audit_record())], SIGNER, checkpoint_every=1000)
            assert feeder.feed_once() == 0
        assert feeder.feed_once() == 1 and _position(engine) == (6, 5)
    finally:
        feeder.publisher.close()


def _position(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return tuple(conn.exec_driver_sql("SELECT next_seq, checkpoints_published FROM audit_stream_position").one())
