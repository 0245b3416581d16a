"""Outbox relay: confirmed, mandatory publishing; nothing lost when it is killed."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import kernel_sample_services as sample_services
import pytest
import sqlalchemy as sa
from kernel_sample import create_sample_tables as _create_tables
from kernel_sample_services import TallyService
from kombu import Connection, Queue
from upgestao_kernel.db import create_engine
from upgestao_kernel.events import Actor, EventEnvelope
from upgestao_kernel.migrations import upgrade
from upgestao_kernel.outbox import SECRET_HEADER, WIPED_BODY
from upgestao_kernel.relay import COALESCE_BYTES, CRASH_EXIT_STATUS, OutboxRelay, coalesced_writes, drain
from upgestao_kernel.schema import kernel_metadata, outbox
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


def test_relay_crashing_after_the_confirm_before_the_mark_duplicates_but_loses_nothing(
    run_service, database_factory, amqp_uri, service_env, raw_queue
):
    """The relay process dies (crash hook: ``os._exit`` after the broker confirmed its third batch, before
    marking it sent): the confirmed batch is on the broker and still unsent in the outbox. On restart it
    goes out again, so the broker sees exactly one batch twice, and the idempotent consumer still
    applies every event exactly once."""
    sample_services.DONE.clear()
    tally = run_service(TallyService, _create_tables)
    url = database_factory("notifier")
    upgrade("upgestao_notifier:migrations", url)
    engine = create_engine(url)
    total, batch, crash_after = 3000, 400, 3
    with engine.begin() as conn:
        conn.execute(outbox.insert(), _rows(total))

    env = {**os.environ, **service_env, "NOTIFIER_DATABASE_URL": url, "UPGESTAO_RELAY_BATCH_SIZE": str(batch)}
    command = [sys.executable, "-m", "upgestao_notifier", "relay"]
    crashing = subprocess.run(command, env={**env, "UPGESTAO_RELAY_CRASH_AFTER_CONFIRM": str(crash_after)},
                              capture_output=True, text=True, timeout=120)
    assert crashing.returncode == CRASH_EXIT_STATUS, crashing.stdout[-2000:] + crashing.stderr[-2000:]
    assert "relay.crash_hook" in crashing.stdout
    # the window: the third batch confirmed by the broker, yet not marked sent
    stranded = _unsent(engine)
    assert stranded == total - (crash_after - 1) * batch
    confirmed = _count(amqp_uri, raw_queue)
    assert confirmed == crash_after * batch
    assert confirmed + stranded == total + batch  # published and unsent: one batch will go out twice

    relay = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _unsent(engine) == 0, timeout=60)
        delivered = _count(amqp_uri, raw_queue)  # every delivery, duplicates included
        assert delivered == total + batch and delivered > total
        wait_for(lambda: len(sample_services.DONE) == delivered, timeout=60)  # the consumer saw each delivery
        handled = tally.handled()
        assert len(handled) == total and set(handled) == {row["message_id"] for row in _ids(engine)}
    finally:
        relay.terminate()
        relay.wait(10)
        engine.dispose()


def _ids(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(outbox.c.message_id))]


def test_nacked_rows_stay_unsent_and_go_out_once_the_broker_takes_them(pg_engine, amqp_uri):
    """A queue that is full and rejects publishes makes the broker nack: exactly the nacked rows stay unsent."""
    full = Queue(f"test.full.{uuid.uuid4().hex[:8]}", exchange=events_exchange("ledger"), routing_key="#",
                 durable=True, auto_delete=False,
                 queue_arguments={"x-max-length": 10, "x-overflow": "reject-publish"})
    with Connection(amqp_uri) as conn:
        events_exchange("ledger")(conn.default_channel).declare()
        full(conn.default_channel).declare()
    with pg_engine.begin() as conn:
        conn.execute(outbox.insert(), _rows(25))
    with pg_engine.connect() as conn:
        ids = [r.id for r in conn.execute(sa.select(outbox.c.id).order_by(outbox.c.id))]
    relay = OutboxRelay(pg_engine, amqp_uri, services=["ledger"], batch_size=25)
    try:
        assert relay.publish_batch() == 10  # the first ten fill the queue; the broker nacks the rest
        assert _unsent_ids(pg_engine) == ids[10:]
        assert _count(amqp_uri, full) == 10
        for expected, left in ((10, ids[20:]), (5, [])):
            _purge(amqp_uri, full)
            assert relay.publish_batch() == expected
            assert _unsent_ids(pg_engine) == left
        assert _count(amqp_uri, full) == 5
    finally:
        relay.close()


def _unsent_ids(engine) -> list[int]:
    with engine.connect() as conn:
        return [r.id for r in conn.execute(sa.select(outbox.c.id).where(outbox.c.sent_at.is_(None))
                                           .order_by(outbox.c.id))]


def _purge(amqp_uri: str, queue: Queue) -> None:
    with Connection(amqp_uri) as conn:
        queue(conn.default_channel).purge()


class StallingProxy:
    """A TCP proxy in front of the broker whose broker-to-relay direction can be held back: the broker
    receives and enqueues every publish, but its confirms do not reach the relay in time.

    It stops cleanly: its threads (green ones, under eventlet) leave their sockets before the sockets
    are closed. A socket closed under a waiting green thread left the hub listening on its file
    descriptor, and the next test's socket that got the same number failed with "Second simultaneous
    read on fileno"."""

    def __init__(self, amqp_uri: str) -> None:
        parts = urlsplit(amqp_uri)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 5672)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        port = self.server.getsockname()[1]
        self.uri = urlunsplit((parts.scheme, f"{parts.username}:{parts.password}@127.0.0.1:{port}", parts.path,
                               parts.query, parts.fragment))
        self.stalled = threading.Event()
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            broker = socket.create_connection(self.upstream)
            self.sockets += [client, broker]
            for args in ((client, broker, False), (broker, client, True)):
                thread = threading.Thread(target=self._pump, args=args, daemon=True)
                self.threads.append(thread)
                thread.start()

    def _pump(self, source: socket.socket, target: socket.socket, from_broker: bool) -> None:
        try:
            while data := source.recv(65536):
                while from_broker and self.stalled.is_set() and not self.closed.is_set():
                    time.sleep(0.01)
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed.set()
        for sock in self.sockets:  # wakes every pump waiting in recv (end of stream)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self.threads:
            thread.join(timeout=5)
        self.server.close()
        for sock in self.sockets:
            sock.close()


def test_rows_without_a_confirm_in_time_stay_unsent_and_are_republished(pg_engine, amqp_uri, raw_queue):
    """The broker takes the batch but its confirms are held up (a stalled network): after
    ``confirm_timeout_s`` the relay gives up on the batch, marks nothing, reconnects, republishes."""
    with pg_engine.begin() as conn:
        conn.execute(outbox.insert(), _rows(20))
    proxy = StallingProxy(amqp_uri)
    relay = OutboxRelay(pg_engine, proxy.uri, services=["ledger"], batch_size=50)
    relay.confirm_timeout_s = 0.5
    try:
        relay._ensure_channel()  # connected and in confirm mode before the network stalls
        proxy.stalled.set()
        resume = threading.Timer(2.0, proxy.stalled.clear)
        resume.start()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            relay.publish_batch()
        assert time.monotonic() - started >= relay.confirm_timeout_s
        resume.join()
        assert _unsent(pg_engine) == 20  # nothing marked sent without its confirm ...
        wait_for(lambda: _count(amqp_uri, raw_queue) == 20)  # ... though the broker holds every message
        assert drain(relay) == 20  # a new channel: all republished, confirmed, marked
        assert _unsent(pg_engine) == 0
        assert _count(amqp_uri, raw_queue) == 40  # duplicates, which consumers absorb; nothing lost
    finally:
        relay.close()
        proxy.close()


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


def _consume_all(amqp_uri: str, queue: Queue) -> list:
    with Connection(amqp_uri) as conn:
        channel = conn.default_channel
        messages = []
        while (message := channel.basic_get(queue.name, no_ack=True)) is not None:
            messages.append(message)
        return messages


def _with_bodies(rows: list[dict]) -> list[dict]:
    """Rows of every kind of body: an event (its ``type`` a string), an audit record (no ``type``), a body whose
    ``type`` is not a string, a body that is not an object, and a secret (a single-use token)."""
    event, record, odd, listed, secret = rows
    return [event, {**record, "body": {"audit_id": record["message_id"], "service": "ledger", "fields": ["é"]}},
            {**odd, "body": {"type": 5, "text": "na\u00efve \u2603"}}, {**listed, "body": [1, "two", None]},
            {**secret, "headers": {SECRET_HEADER: "1"}, "body": {"type": "ledger.reset_requested.v1", "token": "s3"}}]


def test_a_body_goes_out_as_the_json_text_stored_and_a_secret_is_wiped_as_it_is_marked_sent(pg_engine, amqp_uri,
                                                                                              raw_queue):
    rows = _with_bodies(_rows(5))
    with pg_engine.begin() as conn:
        conn.execute(outbox.insert(), rows)
        stored = {r.message_id: r.body for r in conn.execute(
            sa.select(outbox.c.message_id, sa.cast(outbox.c.body, sa.Text).label("body")))}
    relay = OutboxRelay(pg_engine, amqp_uri, services=["ledger"])
    try:
        assert drain(relay) == 5
    finally:
        relay.close()
    messages = {m.properties["message_id"]: m for m in _consume_all(amqp_uri, raw_queue)}
    assert set(messages) == {r["message_id"] for r in rows}
    for row in rows:
        message = messages[row["message_id"]]
        text = message.body.decode("utf-8") if isinstance(message.body, bytes) else message.body  # (utf-8)
        assert text == stored[row["message_id"]]  # the stored text, character for character
        assert json.loads(message.body) == row["body"]
        assert message.properties["content_type"] == "application/json"
        assert message.properties["delivery_mode"] == 2
        assert message.properties["application_headers"] == row["headers"]
        body = row["body"]
        expected_type = body["type"] if isinstance(body, dict) and isinstance(body.get("type"), str) else None
        assert message.properties.get("type") == expected_type
    with pg_engine.connect() as conn:
        after = {r.message_id: r for r in conn.execute(sa.select(outbox))}
    assert all(r.sent_at is not None for r in after.values())
    assert after[rows[4]["message_id"]].body == WIPED_BODY  # delivered, then not kept at rest
    assert after[rows[0]["message_id"]].body == rows[0]["body"]


def test_a_batch_on_postgresql_is_two_statements_outside_any_transaction_and_an_idle_poll_one(pg_engine, amqp_uri,
                                                                                              raw_queue):
    """Reading the rows and marking them sent are one round trip each: no BEGIN before them, no COMMIT or
    ROLLBACK after; the pooled connection is handed back to transactions as it was."""
    with pg_engine.begin() as conn:
        conn.execute(outbox.insert(), _with_bodies(_rows(5)))
    statements: list[tuple[str, bool]] = []
    ends: list[str] = []

    @sa.event.listens_for(pg_engine, "before_cursor_execute")
    def _statement(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append((statement.split()[0], conn.connection.dbapi_connection.autocommit))

    relay = OutboxRelay(pg_engine, amqp_uri, services=["ledger"])
    original_commit, original_rollback = pg_engine.dialect.do_commit, pg_engine.dialect.do_rollback

    def ended(name, fn):
        def wrapper(dbapi_conn, *args, **kwargs):
            raw = getattr(dbapi_conn, "dbapi_connection", dbapi_conn)
            if raw.get_transaction_status() != 0:  # a transaction was open: a round trip to end it
                ends.append(name)
            return fn(dbapi_conn, *args, **kwargs)
        return wrapper

    pg_engine.dialect.do_commit = ended("commit", original_commit)
    pg_engine.dialect.do_rollback = ended("rollback", original_rollback)
    try:
        relay._ensure_channel()
        assert relay.publish_batch() == 5
        assert statements == [("SELECT", True), ("UPDATE", True)] and ends == []
        statements.clear()
        assert relay.publish_batch() == 0
        assert statements == [("SELECT", True)] and ends == []
    finally:
        pg_engine.dialect.do_commit, pg_engine.dialect.do_rollback = original_commit, original_rollback
        sa.event.remove(pg_engine, "before_cursor_execute", _statement)
        relay.close()
    with pg_engine.connect() as conn:
        assert conn.connection.dbapi_connection.autocommit is False
        assert conn.execute(sa.select(sa.func.count()).where(outbox.c.sent_at.is_(None))).scalar() == 0


def test_a_batch_reaches_the_socket_in_one_write(pg_engine, amqp_uri, raw_queue):
    with pg_engine.begin() as conn:
        conn.execute(outbox.insert(), _rows(25))
    relay = OutboxRelay(pg_engine, amqp_uri, services=["ledger"])
    try:
        transport = relay._ensure_channel().connection.transport
        sent = transport._write
        writes: list[int] = []

        def counted(data) -> None:
            writes.append(len(data))
            sent(data)

        transport._write = counted
        assert relay.publish_batch() == 25
        assert len(writes) == 1  # 25 messages: three frames each, one system call for all
        assert transport._write is counted  # the hook is handed back
    finally:
        relay.close()
    assert _count(amqp_uri, raw_queue) == 25


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self._write = self.sock_sendall

    def sock_sendall(self, data) -> None:
        self.written.append(bytes(data))

    def write(self, data) -> None:
        self._write(data)


def test_coalesced_writes_send_the_same_bytes_in_order_once_and_nothing_of_a_failed_block():
    transport = _Transport()
    reused = bytearray(4)
    with coalesced_writes(transport):
        for chunk in (b"abcd", b"efgh", b"ijkl"):
            reused[:] = chunk  # py-amqp hands views of one buffer it fills again for the next frame
            transport.write(memoryview(reused))
        assert transport.written == []
    assert transport.written == [b"abcdefghijkl"]
    assert transport._write == transport.sock_sendall
    transport.written.clear()
    with pytest.raises(RuntimeError), coalesced_writes(transport):
        transport.write(b"half a batch")
        raise RuntimeError("publishing failed")
    assert transport.written == [] and transport._write == transport.sock_sendall
    with coalesced_writes(transport):  # more than COALESCE_BYTES: written as it goes, in order
        for n in range(3):
            transport.write(bytes([n]) * (COALESCE_BYTES // 2 + 1))
    assert b"".join(transport.written) == b"".join(bytes([n]) * (COALESCE_BYTES // 2 + 1) for n in range(3))
    assert len(transport.written) == 2


def test_the_relay_on_sqlite_publishes_marks_and_wipes(tmp_path, amqp_uri, raw_queue):
    engine = create_engine(f"sqlite:///{tmp_path / 'relay.sqlite3'}")
    kernel_metadata.create_all(engine, tables=[outbox])
    rows = _with_bodies(_rows(5))
    with engine.begin() as conn:
        conn.execute(outbox.insert(), rows)
    relay = OutboxRelay(engine, amqp_uri, services=["ledger"])
    try:
        assert drain(relay) == 5
    finally:
        relay.close()
    messages = {m.properties["message_id"]: m for m in _consume_all(amqp_uri, raw_queue)}
    assert {k: json.loads(m.body) for k, m in messages.items()} == {r["message_id"]: r["body"] for r in rows}
    assert messages[rows[0]["message_id"]].properties["type"] == "ledger.account_opened.v1"
    assert "type" not in messages[rows[2]["message_id"]].properties
    with engine.connect() as conn:
        after = {r.message_id: r for r in conn.execute(sa.select(outbox))}
    assert all(r.sent_at is not None for r in after.values())
    assert after[rows[4]["message_id"]].body == WIPED_BODY
    engine.dispose()
