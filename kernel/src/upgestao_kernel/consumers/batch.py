"""Batch consumer: a durable queue taken up to N messages at a time, each batch handled
in one transaction (or a few, of at most ``max_items`` items each) and acked after its commit.
A message may carry several items (privacy's audit ingest: a batch of records); it is
admitted, parked and acked whole, its items stored with the others of its batch.

What makes it reliable:

* nothing is acked before the handler's transaction committed: a crash, a
  lost connection or a database away at any point leaves the batch in the
  queue, redelivered later (the handler must recognise a redelivered
  message: privacy's audit ingest dedupes by ``audit_id``);
* a message that can never be handled is *parked*, not redelivered forever:
  one that does not parse (``ValueError``; ``RecursionError`` for JSON nested
  too deep) and one the store refuses (``BatchHandler.refuses``: the batch is
  then stored one message at a time to find it). It goes to
  ``<queue>.parked`` with the error in :data:`~upgestao_kernel.parking.ERROR_HEADER`
  (a message of several items: whole, when any one of them is unreadable or refused),
  on a connection that waits for the broker's confirm, before being acked;
* a message whose sender may not say what it says is parked the same way:
  ``BatchHandler.admit`` judges each parsed item against the message's AMQP
  ``user_id``, which the broker guarantees is the publishing connection's user
  (:mod:`upgestao_kernel.user_id_stamp`); a header could be forged, it cannot;
* one batch is stored (in its own green thread) while the next one arrives,
  and acked on the consuming thread (``multiple``) once stored;
* it runs in a nameko managed thread on the back-off loop: broker or
  database trouble is waited out, the queue keeps what arrives meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import amqp
import eventlet
from kombu import Connection

from ..logging import get_logger
from ..metrics import EVENTS_HANDLED, consumer_outcomes
from ..parking import ERROR_HEADER, PARKED_AT_HEADER, QUEUE_HEADER, error_header, failure_reason
from ..topology import parking_queue_name
from ..tracing import consuming
from .backoff import BackoffLoop, GreenStop

log = get_logger(__name__)

T = TypeVar("T")

# What a message that can never be handled raises when parsed. json.JSONDecodeError is a ValueError;
# JSON nested too deep raises RecursionError, which left unparked made its batch a poison message.
UNREADABLE = (ValueError, RecursionError)
BATCH_WAIT_S = 0.02  # a partial batch is handled once no message arrived for this long


def describe_error(exc: BaseException) -> str:
    """The parked message's error: its type and a fixed reason (:func:`~upgestao_kernel.parking.error_header`),
    never its text, which a parser (``int(value)``) or a database writes from the message's values."""
    return error_header(exc)


def never(exc: BaseException) -> bool:
    return False


@dataclass(frozen=True)
class BatchHandler(Generic[T]):
    """What a batch consumer does with its messages.

    ``parse`` turns a message body into its items (one or more), raising one of
    :data:`UNREADABLE` for a message to park; ``store`` handles the items of a batch's
    messages in one transaction (raising: nothing is acked); ``refuses`` says whether a
    store error blames a message (then each message's items are stored alone and the
    refused message parked) rather than the infrastructure; ``describe`` words the error
    kept with a parked message (no values: a database error's text can quote a row);
    ``admit(item, user_id)``, when given, raises one of :data:`UNREADABLE` for an item
    its sender (the message's broker-checked ``user_id``, ``None`` if it has none) may
    not have sent: its message is parked with that reason, no item of it stored.
    """

    parse: Callable[[bytes], Sequence[T]]
    store: Callable[[Sequence[T]], None]
    refuses: Callable[[BaseException], bool] = never
    describe: Callable[[BaseException], str] = describe_error
    admit: Callable[[T, str | None], None] | None = None


class BatchConsumer(Generic[T]):
    """Consumes ``queue`` in batches of up to ``batch_size`` messages with ``prefetch`` unacked messages;
    a batch's items go to ``store`` in calls of at most ``max_items`` items (a message is never split:
    one of more items than that is stored alone), all of them before its messages are acked."""

    def __init__(self, amqp_uri: str, queue: str, handler: BatchHandler[T], *,
                 declare: Callable[[Any], None], batch_size: int, prefetch: int, name: str,
                 batch_wait_s: float = BATCH_WAIT_S, stop: GreenStop | None = None,
                 max_items: int | None = None) -> None:
        self.amqp_uri = amqp_uri
        self.queue = queue
        self.handler = handler
        self.declare = declare
        self.batch_size = batch_size
        self.prefetch = prefetch
        self.name = name
        self.batch_wait_s = batch_wait_s
        self.stop = stop or GreenStop()
        self.max_items = max_items
        # upgestao_events_handled_total{service, consumer}: the queue's service, the name without it
        self.service = queue.split(".", 1)[0]
        self.consumer = name.removeprefix(f"{self.service}.")
        consumer_outcomes(self.service, self.consumer)

    def _count(self, outcome: str, n: int = 1) -> None:
        if n:
            EVENTS_HANDLED.labels(service=self.service, consumer=self.consumer, outcome=outcome).inc(n)

    def run(self) -> None:
        """Consume until ``stop`` is set, reconnecting with back-off (a managed green thread)."""
        BackoffLoop(self.consume, stop=self.stop, event=f"{self.name}_failed", level="error",
                    describe=lambda exc: {"error": self.handler.describe(exc)}).run()

    def consume(self) -> None:
        """One connection's life: collect deliveries into batches, store one while the next
        arrives, ack each once stored. Returns when stopped; raises when the broker or the
        store fails (nothing of an unstored batch acked: all redelivered)."""
        pending: list[amqp.Message] = []
        storing = None  # (green thread, last delivery tag of its batch)
        with Connection(self.amqp_uri) as conn:
            conn.connect()
            channel = conn.channel()
            self.declare(channel)
            parking_conn = Connection(self.amqp_uri, transport_options={"confirm_publish": True})
            parking = parking_conn.channel()
            channel.basic_qos(0, self.prefetch, False)
            channel.basic_consume(self.queue, callback=pending.append, no_ack=False)
            try:
                while not self.stop.is_set():
                    quiet = False
                    try:
                        conn.drain_events(timeout=self.batch_wait_s if pending or storing else 0.5)
                    except TimeoutError:
                        quiet = True
                    if storing is not None and storing[0].dead:
                        try:
                            storing[0].wait()  # re-raises a failed store: nothing acked, all redelivered
                        except Exception:
                            self._count("retried", storing[2])
                            raise
                        channel.basic_ack(storing[1], multiple=True)
                        storing = None
                    ready = len(pending) >= self.batch_size or (quiet and pending)
                    if storing is None and ready:
                        batch = pending[: self.batch_size]
                        del pending[: len(batch)]
                        storing = (eventlet.spawn(self.handle, parking, batch), batch[-1].delivery_tag, len(batch))
            finally:
                if storing is not None:
                    try:
                        storing[0].wait()  # let a commit in progress finish: its batch is redelivered anyway
                    except Exception:  # noqa: BLE001 - already failing: the back-off loop logs and retries
                        pass
                parking_conn.release()

    def handle(self, parking, messages: Sequence[amqp.Message]) -> None:
        """Park the unreadable, store the rest in one transaction, or one per ``max_items`` items
        (the caller acks afterwards); each message in a consumer span of its trace (tracing on)."""
        with consuming(messages, self.queue):
            self._handle(parking, messages)

    def _handle(self, parking, messages: Sequence[amqp.Message]) -> None:
        parsed: list[tuple[amqp.Message, Sequence[T]]] = []
        for message in messages:
            try:
                items = self.handler.parse(message.body)
                if self.handler.admit is not None:
                    user_id = message.properties.get("user_id")
                    for item in items:
                        self.handler.admit(item, user_id)
                parsed.append((message, items))
            except UNREADABLE as exc:
                self.park(parking, message, exc)
        for group in self._groups(parsed):
            self._store(parking, group)

    def _groups(self, parsed: list[tuple[amqp.Message, Sequence[T]]]) -> list[list[tuple[amqp.Message, Sequence[T]]]]:
        """``parsed`` cut into runs of at most ``max_items`` items (one message each run at least)."""
        if self.max_items is None:
            return [parsed] if parsed else []
        groups: list[list[tuple[amqp.Message, Sequence[T]]]] = []
        count = 0
        for entry in parsed:
            if not groups or count + len(entry[1]) > self.max_items:
                groups.append([])
                count = 0
            groups[-1].append(entry)
            count += len(entry[1])
        return groups

    def _store(self, parking, parsed: Sequence[tuple[amqp.Message, Sequence[T]]]) -> None:
        try:
            self.handler.store([item for _, items in parsed for item in items])
            self._count("handled", len(parsed))
        except Exception as exc:
            if not self.handler.refuses(exc):
                raise  # the store is away: nothing acked, everything redelivered later
            self._store_one_by_one(parking, parsed)

    def _store_one_by_one(self, parking, parsed: Sequence[tuple[amqp.Message, Sequence[T]]]) -> None:
        """A batch the store refused: find the message it refuses, park it, store the rest."""
        for message, items in parsed:
            try:
                self.handler.store(list(items))
                self._count("handled")
            except Exception as exc:
                if not self.handler.refuses(exc):
                    raise
                self.park(parking, message, exc)

    def park(self, parking, message: amqp.Message, exc: BaseException) -> None:
        """Put ``message`` on ``<queue>.parked`` with the error; returns once the broker confirmed it."""
        headers = dict(message.properties.get("application_headers") or {})
        headers[ERROR_HEADER] = self.handler.describe(exc)
        headers[QUEUE_HEADER] = self.queue
        headers[PARKED_AT_HEADER] = datetime.now(UTC).isoformat()
        parking.basic_publish(
            amqp.Message(message.body, content_type=message.properties.get("content_type"),
                         delivery_mode=2, message_id=message.properties.get("message_id"),
                         application_headers=headers),
            exchange="", routing_key=parking_queue_name(self.queue))  # confirm mode: waits for the ack
        self._count("parked")
        log.warning(f"{self.name}_parked", queue=self.queue, message_id=message.properties.get("message_id"),
                    error=type(exc).__name__, reason=failure_reason(exc))
