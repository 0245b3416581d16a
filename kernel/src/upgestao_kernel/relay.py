"""Outbox relay: publishes unsent outbox rows with publisher confirms.

Order of operations per batch: read unsent rows, publish them all with
``mandatory=True`` on a channel in confirm mode (pipelined: the broker's acks
are awaited once for the whole batch, not one round trip per message), then
mark the acked rows sent. A relay killed after a confirm but before the mark
republishes those rows when it restarts: duplicates are possible (consumers
are idempotent by message id), loss is not. A row the broker nacks, or does
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
from collections.abc import Sequence

import amqp
import sqlalchemy as sa
from kombu import Connection as AmqpConnection
from sqlalchemy.engine import Engine

from .consumers.backoff import BackoffLoop, Stop
from .consumers.publishing import wait_for_confirms
from .db import read_only
from .events import utcnow
from .logging import get_logger
from .outbox import SECRET_HEADER, WIPED_BODY
from .schema import outbox
from .topology import declare_publishing

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
    ) -> None:
        self.engine = engine
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
        with self.engine.connect() as conn:
            rows = read_only(conn).execute(
                sa.select(outbox).where(outbox.c.sent_at.is_(None)).order_by(outbox.c.id).limit(self.batch_size)
            ).all()
        if not rows:
            return 0
        channel = self._ensure_channel()
        confirmed: list[int] = []
        secret = {row.id for row in rows if (row.headers or {}).get(SECRET_HEADER)}
        message_ids = {row.id: row.message_id for row in rows}
        self._acked = []
        try:
            for row in rows:
                channel.basic_publish(_message(row), exchange=row.exchange, routing_key=row.routing_key,
                                      mandatory=True)
                self._delivery_tag += 1
                self._unconfirmed[self._delivery_tag] = row.id
            wait_for_confirms(self._connection, self._unconfirmed, self.confirm_timeout_s)
            self.confirmed_batches += 1
            if self.crash_after_confirm is not None and self.confirmed_batches >= self.crash_after_confirm:
                _crash(len(self._acked), self.confirmed_batches)
        except Exception:
            self._abandon()
            raise
        finally:
            for row_id in self._acked:
                if message_ids[row_id] in self._returned:  # acked, but returned unroutable: retry
                    self._returned.discard(message_ids[row_id])
                    continue
                confirmed.append(row_id)
            self._acked = []
            self._mark_sent(confirmed, secret)
        return len(confirmed)

    def _mark_sent(self, ids: list[int], secret: set[int] = frozenset()) -> None:
        if not ids:
            return
        now = utcnow()
        with self.engine.begin() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                conn.execute(outbox.update().where(outbox.c.id.in_(chunk)).values(sent_at=now))
            wipe = [i for i in ids if i in secret]
            if wipe:  # a secret (e.g. a reset token) must not stay at rest once delivered
                conn.execute(outbox.update().where(outbox.c.id.in_(wipe)).values(body=WIPED_BODY))

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

        def step() -> float:
            nonlocal last_work
            published = self.publish_batch()
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


def _message(row) -> amqp.Message:
    """The AMQP message of an outbox row: JSON as kombu would encode it, persistent."""
    body = row.body
    properties = {
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "application_headers": dict(row.headers or {}),
        "delivery_mode": 2,
        "message_id": row.message_id,
    }
    if isinstance(body, dict) and isinstance(body.get("type"), str):
        properties["type"] = body["type"]
    return amqp.Message(json.dumps(body, separators=(",", ":")).encode("utf-8"), **properties)


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
