"""Outbox relay: publishes unsent outbox rows with publisher confirms.

Order of operations per batch: read unsent rows, publish them all with
``mandatory=True`` on a channel in confirm mode (pipelined: the broker's acks
are awaited once for the whole batch, not one round trip per message), then
mark the acked rows sent. A row's body goes out as the JSON text stored, never
decoded and encoded again, and the batch's frames reach the socket in one write
(:func:`coalesced_writes`), not one per message. On PostgreSQL a batch holds one
pooled connection outside any transaction: reading the rows is one round trip,
marking them sent another (one statement, atomic by itself), an idle poll one.
A relay killed after a confirm but before the mark republishes those rows
when it restarts: duplicates are possible (consumers are idempotent by
message id), loss is not. A row the broker nacks, or does
not ack within ``confirm_timeout_s``, stays unsent and is retried.
Unroutable messages go to the alternate exchange; a message the broker still
returns is left unsent and retried.

For fault-injection tests, ``crash_after_confirm=N`` (the setting
``UPGESTAO_RELAY_CRASH_AFTER_CONFIRM``, refused in production) makes the
process exit (``os._exit``, status :data:`CRASH_EXIT_STATUS`, no clean-up)
right after the broker confirmed its N-th batch and before that batch is
marked sent: the window in which a crash must cause duplicates, never loss.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import amqp
import sqlalchemy as sa
from kombu import Connection as AmqpConnection
from sqlalchemy.engine import Connection, Engine

from .consumers.backoff import BackoffLoop, Stop
from .consumers.publishing import wait_for_confirms
from .db import read_only
from .events import utcnow
from .logging import get_logger
from .outbox import SECRET_HEADER, WIPED_BODY
from .schema import outbox
from .topology import declare_publishing
from .tracing import publish_spans

log = get_logger(__name__)


class OutboxRelay:
    def __init__(
        self,
        engine: Engine,
        amqp_uri: str,
        services: Sequence[str] = (),
        batch_size: int = 500,
        poll_interval_s: float = 0.05,
        crash_after_confirm: int | None = None,
        metrics_service: str | None = None,
    ) -> None:
        """``metrics_service``: count confirmed rows and failed passes under this service's label
        (``upgestao_relay_published_total``, ``upgestao_relay_publish_failures_total``); ``None``: uncounted."""
        self.engine = engine
        self.metrics_service = metrics_service
        self.amqp_uri = amqp_uri
        self.services = tuple(services)
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.confirm_timeout_s = 10.0
        self._connection: AmqpConnection | None = None
        self._channel = None
        self._returned: set[str] = set()
        self._unconfirmed: dict[int, int] = {}  # delivery tag -> outbox row id, awaiting the broker
        self._acked: list[int] = []
        self._delivery_tag = 0
        self._loop: BackoffLoop | None = None
        self.crash_after_confirm = crash_after_confirm
        self.confirmed_batches = 0
        self.last_pass_at: float | None = None  # monotonic time the last pass completed (the readiness probe)

    # -- broker ---------------------------------------------------------
    def _ensure_channel(self):
        if self._channel is None:
            conn = AmqpConnection(self.amqp_uri)
            conn.connect()  # fail fast: run() owns the back-off
            channel = conn.channel()
            channel.events["basic_return"].add(self._on_return)
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            declare_publishing(channel, self.services)
            channel.confirm_select()
            self._connection, self._channel = conn, channel
            self._delivery_tag = 0  # the broker numbers confirms per channel, from 1
            self._unconfirmed.clear()
        return self._channel

    def _on_return(self, exc, exchange, routing_key, message) -> None:
        message_id = message.properties.get("message_id")
        self._returned.add(message_id)
        log.error("relay.message_returned", exchange=exchange, routing_key=routing_key, message_id=message_id)

    def _settled(self, tag: int, multiple: bool) -> list[int]:
        tags = [t for t in self._unconfirmed if t <= tag] if multiple else [tag]
        return [self._unconfirmed.pop(t) for t in tags if t in self._unconfirmed]

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._acked.extend(self._settled(tag, multiple))

    def _on_nack(self, tag: int, multiple: bool) -> None:
        nacked = self._settled(tag, multiple)
        log.error("relay.message_nacked", rows=len(nacked))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.release()
        self._connection = self._channel = None
        self._unconfirmed.clear()

    def _abandon(self) -> None:
        """Drop the connection after a failed batch without AMQP's closing handshake: its state is
        unknown, and a graceful close on a stalled network would hold the relay until TCP gives up,
        however short ``confirm_timeout_s``. Rows not confirmed by then stay unsent and go out again."""
        if self._connection is not None:
            try:
                self._connection.collect()
            except Exception as exc:  # the socket is going away either way
                log.warning("relay.abandon_failed", error=type(exc).__name__)
        self._connection = self._channel = None
        self._unconfirmed.clear()

    # -- work -----------------------------------------------------------
    def publish_batch(self) -> int:
        """Publish up to ``batch_size`` unsent rows; returns how many were confirmed."""
        if self.engine.dialect.name != "postgresql":
            with self.engine.connect() as conn:
                rows = read_only(conn).execute(_UNSENT, {"limit": self.batch_size}).all()
            return self._publish(rows, self._mark_sent_in_transaction) if rows else 0
        with self.engine.connect() as conn, _outside_transaction(conn):
            rows = conn.execute(_UNSENT, {"limit": self.batch_size}).all()
            return self._publish(rows, lambda ids, secret: _mark_sent_pg(conn, ids, secret)) if rows else 0

    def _publish(self, rows: Sequence, mark_sent) -> int:
        """Publish ``rows`` (read by :data:`_UNSENT`), await the confirms, ``mark_sent(ids, secret ids)``."""
        channel = self._ensure_channel()
        confirmed: list[int] = []
        secret = {row.id for row in rows if (row.headers or {}).get(SECRET_HEADER)}
        message_ids = {row.id: row.message_id for row in rows}
        self._acked = []
        traced = publish_spans()  # a producer span per traced row (tracing on)
        failure: BaseException | None = None
        try:
            with coalesced_writes(channel.connection.transport):
                for row in rows:
                    headers = None if traced is None else traced.headers(
                        row.id, row.exchange, row.routing_key, row.message_id, row.headers)
                    channel.basic_publish(_message(row, headers), exchange=row.exchange,
                                          routing_key=row.routing_key, mandatory=True)
                    self._delivery_tag += 1
                    self._unconfirmed[self._delivery_tag] = row.id
            wait_for_confirms(self._connection, self._unconfirmed, self.confirm_timeout_s)
            self.confirmed_batches += 1
            if self.crash_after_confirm is not None and self.confirmed_batches >= self.crash_after_confirm:
                _crash(len(self._acked), self.confirmed_batches)
        except Exception as exc:
            failure = exc
            self._abandon()
            raise
        finally:
            for row_id in self._acked:
                if message_ids[row_id] in self._returned:  # acked, but returned unroutable: retry
                    self._returned.discard(message_ids[row_id])
                    continue
                confirmed.append(row_id)
            self._acked = []
            if traced is not None:
                traced.end(confirmed, failure)
            if confirmed:
                mark_sent(confirmed, secret)
        return len(confirmed)

    def _mark_sent_in_transaction(self, ids: list[int], secret: set[int]) -> None:
        """SQLite: the marks (500 ids a statement, its limit of parameters) and the wipes in one transaction."""
        now = utcnow()
        with self.engine.begin() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                conn.execute(outbox.update().where(outbox.c.id.in_(chunk)).values(sent_at=now))
            wipe = [i for i in ids if i in secret]
            if wipe:  # a secret (e.g. a reset token) must not stay at rest once delivered
                conn.execute(outbox.update().where(outbox.c.id.in_(wipe)).values(body=WIPED_BODY))

    @property
    def broker_connected(self) -> bool | None:
        """Whether the broker connection the relay holds is up; ``None`` when it holds none (an idle relay
        connects with its first rows; a failed batch drops its connection)."""
        if self._connection is None:
            return None
        return bool(self._connection.connected)

    @property
    def failures(self) -> int:
        """Consecutive failed batches (broker or database down)."""
        return self._loop.failures if self._loop is not None else 0

    def run(self, stop: Stop | None = None) -> None:
        """Publish until ``stop`` is set; back off on broker or database errors (at most 2 s)."""
        stop = stop or threading.Event()
        # An idle relay polls less often (each poll is a query): after IDLE_AFTER_S
        # without work, at 4x the interval (at most 250 ms), back to the interval
        # as soon as a row shows up.
        idle_interval = max(self.poll_interval_s, min(4 * self.poll_interval_s, 0.25))
        last_work = time.monotonic()

        published_counter = failures_counter = None
        if self.metrics_service is not None:
            from .metrics import RELAY_FAILURES, RELAY_PUBLISHED

            published_counter = RELAY_PUBLISHED.labels(service=self.metrics_service)
            failures_counter = RELAY_FAILURES.labels(service=self.metrics_service)

        def step() -> float:
            nonlocal last_work
            try:
                published = self.publish_batch()
            except Exception:
                if failures_counter is not None:
                    failures_counter.inc()
                raise
            if published and published_counter is not None:
                published_counter.inc(published)
            self.last_pass_at = time.monotonic()
            if published:
                last_work = time.monotonic()
            if published >= self.batch_size:
                return 0  # more rows are waiting
            # A partial batch means the outbox is drained: wait for the next rows to gather
            # (one batch per interval, not one round of queries and confirms per message).
            return idle_interval if time.monotonic() - last_work > IDLE_AFTER_S else self.poll_interval_s

        log.info("relay.started", services=list(self.services))
        self._loop = BackoffLoop(step, stop=stop, event="relay.publish_failed")
        self._loop.run()
        self.close()
        log.info("relay.stopped")


IDLE_AFTER_S = 2.0
CRASH_EXIT_STATUS = 86  # the crash hook's exit status: a test knows the kill hit its window


def _crash(confirmed_rows: int, batches: int) -> None:
    """The fault-injection hook: die at once, like ``kill -9`` after the broker's confirm."""
    log.warning("relay.crash_hook", confirmed_rows=confirmed_rows, batches=batches, exit_status=CRASH_EXIT_STATUS)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(CRASH_EXIT_STATUS)


# The unsent rows, oldest first: the body as the JSON text stored (what the row's writer encoded; sent as it
# is, never decoded and encoded again) and, decoded apart, the body's "type" (a message's AMQP type).
_UNSENT = (
    sa.select(outbox.c.id, outbox.c.message_id, outbox.c.exchange, outbox.c.routing_key, outbox.c.headers,
              sa.cast(outbox.c.body, sa.Text).label("body"), outbox.c.body["type"].label("type"))
    .where(outbox.c.sent_at.is_(None)).order_by(outbox.c.id).limit(sa.bindparam("limit"))
)
# PostgreSQL: sent, in one statement outside any transaction (atomic by itself); the secret rows' bodies wiped
# by the same statement, so that no row is ever sent and unwiped, nor wiped and unsent.
_MARK_SENT_PG = sa.text("UPDATE outbox SET sent_at = :now WHERE id = ANY(:ids)")
_MARK_SENT_AND_WIPE_PG = sa.text(
    "UPDATE outbox SET sent_at = :now, body = CASE WHEN id = ANY(:wipe) THEN CAST(:wiped AS json) ELSE body END"
    " WHERE id = ANY(:ids)")


@contextmanager
def _outside_transaction(conn: Connection) -> Iterator[None]:
    """``conn`` (PostgreSQL) with the driver's autocommit flag: each statement its only round trip (no BEGIN,
    no ROLLBACK), set and cleared on the connection itself as :mod:`.keyed_requests` does."""
    raw = conn.connection.dbapi_connection
    raw.autocommit = True
    try:
        yield
    finally:
        if not raw.closed:
            raw.autocommit = False


def _mark_sent_pg(conn: Connection, ids: list[int], secret: set[int]) -> None:
    wipe = [i for i in ids if i in secret]
    if wipe:  # a secret (e.g. a reset token) must not stay at rest once delivered
        conn.execute(_MARK_SENT_AND_WIPE_PG, {"now": utcnow(), "ids": ids, "wipe": wipe,
                                              "wiped": json.dumps(WIPED_BODY)})
    else:
        conn.execute(_MARK_SENT_PG, {"now": utcnow(), "ids": ids})


COALESCE_BYTES = 256 * 1024  # frames buffered before a write, at most


@contextmanager
def coalesced_writes(transport) -> Iterator[None]:
    """The frames py-amqp writes to ``transport`` meanwhile reach its socket in one write when the block
    ends (or every :data:`COALESCE_BYTES`), not one system call per message: the same bytes in the same
    order. A block that raises writes nothing more (its connection is abandoned). A transport without the
    write hook py-amqp's own have (``_write``) writes as usual."""
    if not hasattr(transport, "_write"):
        yield
        return
    write = transport._write
    own = "_write" in vars(transport)
    chunks: list[bytes] = []
    size = 0

    def buffered(data) -> None:
        nonlocal size
        chunks.append(bytes(data))  # a copy: py-amqp hands a view of a buffer it reuses for the next frame
        size += len(data)
        if size >= COALESCE_BYTES:
            flush()

    def flush() -> None:
        nonlocal size
        if chunks:
            data = b"".join(chunks)
            chunks.clear()
            size = 0
            transport._write = write
            try:
                transport.write(data)  # its error handling: a failed write marks the transport disconnected
            finally:
                transport._write = buffered

    transport._write = buffered
    try:
        yield
        flush()
    finally:
        if own:
            transport._write = write
        else:
            del transport._write


def _message(row, headers: dict | None = None) -> amqp.Message:
    """The AMQP message of an outbox row (read by :data:`_UNSENT`): its stored JSON text, persistent; its stored
    headers unless ``headers`` replace them (its producer span's ``traceparent``)."""
    properties = {
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "application_headers": dict(row.headers or {}) if headers is None else headers,
        "delivery_mode": 2,
        "message_id": row.message_id,
    }
    if type(row.type) is str:
        properties["type"] = row.type
    return amqp.Message(row.body.encode("utf-8"), **properties)


def drain(relay: OutboxRelay, timeout_s: float = 10.0) -> int:
    """Publish until the outbox is empty (tests, CLI). Returns rows published."""
    total = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = relay.publish_batch()
        total += n
        if n == 0:
            return total
    raise TimeoutError("outbox not drained in time")
