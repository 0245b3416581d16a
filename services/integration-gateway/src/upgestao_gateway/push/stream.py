"""The push-events stream: how every gateway replica hears messaging's events.

messaging's relay publishes its events on the topic exchange ``messaging.events`` (routing key = event type).
The push-relevant types (:data:`EVENT_TYPES`) are bound to the RabbitMQ *stream* queue
``gateway.push-events``: a stream is not consumed away, so every replica reads every event, each under the
same offset -- the event's sequence id. A replica attaches at (now - the replay window) and so can serve a
client that reconnects to it after having been served by another.

As the access-events stream does (:mod:`upgestao_gateway.access.stream`), it publishes a confirmed sentinel
when it attaches; when the sentinel comes back, everything published before the attach has been read and
the ring's floor and head are known: the view is *current*, and clients may resume.

Only messaging's broker user may write ``messaging.events``; a message in the stream from anyone else (the
default exchange reaches a stream by its name) is not pushed: a forged event would otherwise make the
gateway push what messaging never said.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import amqp
import eventlet
from amqp.exceptions import PreconditionFailed
from eventlet.event import Event
from kombu import Connection, Queue, binding
from upgestao_kernel.broker_identity import service_of_user
from upgestao_kernel.consumers.stream import StreamConsumer
from upgestao_kernel.logging import get_logger
from upgestao_kernel.topology import declare_publishing, events_exchange

from .ring import ReplayRing
from .settings import PushSettings

log = get_logger(__name__)

SOURCE = "messaging"
QUEUE = "gateway.push-events"
SENTINEL = "gateway.push_caught_up"
EVENT_TYPES = (
    "messaging.message_created.v1",
    "messaging.message_edited.v1",
    "messaging.message_deleted.v1",
    "messaging.conversation_opened.v1",
    "messaging.conversation_status_changed.v1",
    "messaging.conversation_updated.v1",
    "messaging.conversation_assigned.v1",
    "messaging.conversation_read.v1",
)
SEGMENT_BYTES = 8_000_000  # retention drops whole segments: small enough for max-age to bite


def push_events_queue(settings: PushSettings) -> Queue:
    exchange = events_exchange(SOURCE)
    return Queue(
        QUEUE,
        bindings=[binding(exchange, routing_key=event_type) for event_type in EVENT_TYPES],
        durable=True,
        auto_delete=False,
        queue_arguments={
            "x-queue-type": "stream",
            "x-max-age": settings.events_max_age,
            "x-max-length-bytes": settings.events_max_bytes,
            "x-stream-max-segment-size-bytes": min(SEGMENT_BYTES, settings.events_max_bytes),
        },
    )


def declare_push_events(connection: Connection, settings: PushSettings) -> None:
    """Declare messaging's exchange, the stream and its bindings (idempotent; a stream declared earlier with
    other arguments is used as it is, with a warning: its arguments cannot change in place)."""
    queue = push_events_queue(settings)
    channel = connection.channel()
    try:
        declare_publishing(channel, [SOURCE])
        try:
            queue(channel).declare()
        except PreconditionFailed as exc:
            log.warning("push.stream_arguments_differ", queue=QUEUE, reason=str(exc)[:300])
            channel = connection.channel()
            Queue(QUEUE, bindings=queue.bindings, passive=True)(channel).declare()
    finally:
        channel.close()


class PushEventsStream(StreamConsumer):
    """Reads ``gateway.push-events`` into ``ring``; calls ``on_event()`` after each event kept."""

    confirm_timeout_s = 10.0
    connection_name = f"gateway {QUEUE}"
    lost_event = "push.stream_lost"
    unreadable_event = "push.event_unreadable"
    # the sender is checked unless every process shares one broker user (UPGESTAO_BROKER_SHARED_USER, never
    # in production)
    check_sender = True

    def __init__(self, amqp_uri: str, settings: PushSettings, ring: ReplayRing, on_event: Callable[[], None],
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(amqp_uri, QUEUE)
        self.settings = settings
        self.ring = ring
        self._on_event = on_event
        self._clock = clock
        self._current = False
        self._became_current = Event()
        self._nonce: str | None = None

    @property
    def current(self) -> bool:
        return self._current

    def wait_current(self, timeout_s: float) -> bool:
        """True once everything published before the (last) attach has been read; does not wait while the
        broker is unreachable."""
        if self._current:
            return True
        if timeout_s > 0 and not self.broker_unreachable:
            with eventlet.Timeout(timeout_s, False):
                self._became_current.wait()
        return self._current

    def detached(self) -> None:
        if self._current:
            self._current = False
            self._became_current = Event()

    def declare(self, connection: Connection) -> None:
        declare_push_events(connection, self.settings)

    def initial_offset(self) -> datetime:
        """The replay window back: what a reconnecting client may ask for."""
        return datetime.fromtimestamp(self._clock(), UTC) - timedelta(seconds=self.settings.window_s)

    def attached(self, connection: Connection) -> None:
        self._nonce = uuid.uuid4().hex
        body = json.dumps({"type": SENTINEL, "nonce": self._nonce})
        channel = connection.channel()
        channel.basic_publish_confirm(
            amqp.Message(body, content_type="application/json"),
            exchange="", routing_key=QUEUE, mandatory=True, confirm_timeout=self.confirm_timeout_s,
        )
        channel.close()

    def handle(self, message: amqp.Message) -> None:
        properties = message.properties or {}
        offset = (properties.get("application_headers") or {}).get("x-stream-offset")
        if not isinstance(offset, int):
            raise ValueError("a stream message without its offset")
        body = self._body(message)
        if body is None:
            self.ring.observe(offset)  # unreadable: its offset was read all the same
            raise ValueError("not a JSON object")
        if body.get("type") == SENTINEL:
            self.ring.observe(offset)
            if body.get("nonce") == self._nonce and not self._current:
                self._current = True
                self._became_current.send(True)
                log.info("push.stream_current", queue=QUEUE, offset=offset, events=len(self.ring))
            self._on_event()
        elif self.check_sender and service_of_user(properties.get("user_id")) != SOURCE:
            self.ring.observe(offset)
            log.warning("push.event_refused", reason="not sent by messaging", event_type=str(body.get("type"))[:80])
        elif body.get("type") in EVENT_TYPES and self.ring.append(offset, body) is not None:
            self._on_event()
        else:
            self.ring.observe(offset)

    @staticmethod
    def _body(message: amqp.Message) -> Mapping[str, Any] | None:
        try:
            raw = message.body.decode("utf-8") if isinstance(message.body, bytes) else message.body
            body = json.loads(raw)
        except ValueError:
            return None
        return body if isinstance(body, Mapping) else None
