"""The push-events stream: how every gateway replica hears messaging's events.

messaging's relay publishes its events on the topic exchange ``messaging.events`` (routing key = event type).
The push-relevant types (:data:`EVENT_TYPES`) are bound to the RabbitMQ *stream* queue
``gateway.push-events``: a stream is not consumed away, so every replica reads every event, each under the
same offset -- the event's sequence id. A replica attaches at (now - the replay window) and so can serve a
client that reconnects to it after having been served by another.

As the access-events stream does (both are :class:`~upgestao_gateway.event_stream.SentinelStream`), it
publishes a confirmed sentinel when it attaches; when the sentinel comes back, everything published before the
attach has been read and the ring's floor and head are known: the view is *current*, and clients may resume.

Only messaging's broker user may write ``messaging.events``; a message in the stream from anyone else (the
default exchange reaches a stream by its name) is not pushed: a forged event would otherwise make the
gateway push what messaging never said.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import amqp
from kombu import Connection, Queue

from ..event_stream import SentinelStream, declare_events_stream, events_stream_queue, json_object
from .ring import ReplayRing
from .settings import PushSettings

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


def push_events_queue(settings: PushSettings) -> Queue:
    return events_stream_queue(QUEUE, SOURCE, EVENT_TYPES, settings)


def declare_push_events(connection: Connection, settings: PushSettings) -> None:
    """Declare messaging's exchange, the stream and its bindings (idempotent; a stream declared earlier with
    other arguments is used as it is, with a warning: its arguments cannot change in place)."""
    declare_events_stream(connection, push_events_queue(settings), SOURCE, "push.stream_arguments_differ")


class PushEventsStream(SentinelStream):
    """Reads ``gateway.push-events`` into ``ring``; calls ``on_event()`` after each event kept."""

    source = SOURCE
    sentinel = SENTINEL
    log_prefix = "push"
    connection_name = f"gateway {QUEUE}"
    lost_event = "push.stream_lost"
    unreadable_event = "push.event_unreadable"

    def __init__(self, amqp_uri: str, settings: PushSettings, ring: ReplayRing, on_event: Callable[[], None],
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(amqp_uri, QUEUE, clock)
        self.settings = settings
        self.ring = ring
        self._on_event = on_event

    def declare(self, connection: Connection) -> None:
        declare_push_events(connection, self.settings)

    def initial_offset(self) -> datetime:
        """The replay window back: what a reconnecting client may ask for."""
        return datetime.fromtimestamp(self._clock(), UTC) - timedelta(seconds=self.settings.window_s)

    def handle(self, message: amqp.Message) -> None:
        properties = message.properties or {}
        offset = (properties.get("application_headers") or {}).get("x-stream-offset")
        if not isinstance(offset, int):
            raise ValueError("a stream message without its offset")
        body = json_object(message)
        if body is None:
            self.ring.observe(offset)  # unreadable: its offset was read all the same
            raise ValueError("not a JSON object")
        if body.get("type") == SENTINEL:
            self.ring.observe(offset)
            self.sentinel_returned(body, offset=offset, events=len(self.ring))
            self._on_event()
        elif not self.sent_by_source(message, body):
            self.ring.observe(offset)
        elif body.get("type") in EVENT_TYPES and self.ring.append(offset, body) is not None:
            self._on_event()
        else:
            self.ring.observe(offset)
