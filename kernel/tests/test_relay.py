"""Outbox relay: confirmed, mandatory publishing; nothing lost when it is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime

import kernel_sample_services as sample_services
import pytest
import sqlalchemy as sa
from kernel_sample import create_sample_tables as _create_tables
from kernel_sample_services import TallyService
from kombu import Connection, Queue
from upgestao_kernel.db import create_engine
from upgestao_kernel.events import Actor, EventEnvelope
from upgestao_kernel.migrations import upgrade
from upgestao_kernel.relay import OutboxRelay, drain
from upgestao_kernel.schema import outbox
from upgestao_kernel.testing import wait_for
from upgestao_kernel.topology import UNROUTED, events_exchange


def _rows(n: int) -> list[dict]:
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        envelope = EventEnvelope(
            event_id=str(uuid.uuid4()), stream_id=f"account-{i}", version=1, type="ledger.account_opened.v1",
            occurred_at=now, actor=Actor("system", "system"), correlation_id="bench", causation_id="bench",
            data={"account_id": f"acc-{i}", "fields": ["email"]},
        )
        rows.append({"message_id": envelope.event_id, "exchange": "ledger.events",
                     "routing_key": envelope.type, "headers": {"nameko.request_id": "r"},
                     "body": envelope.to_message(), "created_at": now})
    return rows


def _count(amqp_uri: str, queue: Queue) -> int:
    with Connection(amqp_uri) as conn:
        return queue(conn.default_channel).queue_declare(passive=True).message_count


def _unsent(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(outbox.c.sent_at.is_(None))).scalar()


@pytest.fixture
def raw_queue(amqp_uri):
    """A plain queue that counts every delivery of ledger events, duplicates included."""
    queue = Queue(f"test.raw.{uuid.uuid4().hex[:8]}", exchange=events_exchange("ledger"), routing_key="#",
                  durable=False, auto_delete=False)
    with Connection(amqp_uri) as conn:
        events_exchange("ledger")(conn.default_channel).declare()
        queue(conn.default_channel).declare()
    yield queue
    with Connection(amqp_uri) as conn:
        queue(conn.default_channel).delete()


def test_relay_publishes_with_confirms_and_marks_sent(pg_engine, amqp_uri, raw_queue):
    with pg_engine.begin() as conn:
        conn.execute(outbox.insert(), _rows(25))
    relay = OutboxRelay(pg_engine, amqp_uri, services=["ledger"], batch_size=10)
    assert drain(relay) == 25
    relay.close()
    assert _unsent(pg_engine) == 0
    assert _count(amqp_uri, raw_queue) == 25


def test_unroutable_message_is_kept_not_dropped(pg_engine, amqp_uri):
    with pg_engine.begin() as conn:
        conn.execute(outbox.insert(), [{**_rows(1)[0], "routing_key": "ledger.nobody_listens.v1"}])
    with Connection(amqp_uri) as conn:
        before = Queue(UNROUTED)(conn.default_channel).queue_declare(passive=True).message_count \
            if _exists(conn, UNROUTED) else 0
    relay = OutboxRelay(pg_engine, amqp_uri, services=["ledger"])
    drain(relay)
    relay.close()
    assert _count(amqp_uri, Queue(UNROUTED)) == before + 1


def _exists(conn, name) -> bool:
    try:
        Queue(name)(conn.channel()).queue_declare(passive=True)
        return True
    except Exception:
        return False


def test_relay_killed_between_publish_and_mark_loses_nothing(
    run_service, database_factory, amqp_uri, service_env, raw_queue
):
    """kill -9 the relay process mid-batch; on restart every event arrives and
    the idempotent consumer handles each exactly once."""
    sample_services.DONE.clear()
    tally = run_service(TallyService, _create_tables)
    url = database_factory("notifier")
    upgrade("upgestao_notifier:migrations", url)
    engine = create_engine(url)
    total = 3000
    with engine.begin() as conn:
        conn.execute(outbox.insert(), _rows(total))

    env = {**os.environ, **service_env, "NOTIFIER_DATABASE_URL": url, "UPGESTAO_RELAY_BATCH_SIZE": "400"}
    command = [sys.executable, "-m", "upgestao_notifier", "relay"]
    relay = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Wait until the broker holds some messages the database has not yet marked sent.
        wait_for(lambda: _count(amqp_uri, raw_queue) >= 500, timeout=30, interval=0.005)
        relay.send_signal(signal.SIGKILL)
        relay.wait(10)
        stranded = _unsent(engine)
        assert 0 < stranded < total, "the kill must land while work is outstanding"

        relay = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _unsent(engine) == 0, timeout=60)
        # the raw queue saw every delivery; the consumer's queue got the same ones
        delivered = _count(amqp_uri, raw_queue)
        assert delivered >= total  # duplicates allowed on the wire, loss is not
        wait_for(lambda: len(sample_services.DONE) == delivered, timeout=60)
        handled = tally.handled()
        assert len(handled) == total and len(set(handled)) == total  # every one, exactly once
    finally:
        relay.terminate()
        relay.wait(10)
        engine.dispose()


def test_broker_unreachable_keeps_rows_and_the_relay_alive(pg_engine):
    """A relay that cannot reach the broker backs off and retries; nothing is marked sent."""
    with pg_engine.begin() as conn:
        conn.execute(outbox.insert(), _rows(3))
    relay = OutboxRelay(pg_engine, "amqp://guest:guest@127.0.0.1:1/", services=["ledger"], poll_interval_s=0.01)
    with pytest.raises(OSError):  # connection refused: publish_batch fails fast
        relay.publish_batch()
    stop = threading.Event()
    runner = threading.Thread(target=relay.run, args=(stop,))
    runner.start()
    try:
        wait_for(lambda: relay.failures >= 2, timeout=20)  # it keeps trying
        assert runner.is_alive()
    finally:
        stop.set()
        runner.join(15)
    assert not runner.is_alive()
    assert _unsent(pg_engine) == 3
