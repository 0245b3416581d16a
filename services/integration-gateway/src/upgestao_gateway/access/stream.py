"""The access-events stream: how every gateway replica learns revocations.

Identity publishes ``identity.session_revoked.v1`` and
``identity.role_permissions_changed.v1`` on the topic exchange
``identity.events``. Both are bound to the RabbitMQ *stream* queue
``gateway.access-events``: a stream is not consumed away, so every replica
reads every message, and a replica that starts reads back far enough
(``now - (longest token TTL + 60 s)``) to know every revocation whose tokens may
still be valid.

:class:`AccessEventsStream` reads it in a green thread:

* on attach it publishes a sentinel (``{"type": "gateway.caught_up", "nonce":
  ...}``, confirmed) straight to the stream; when that sentinel comes back,
  everything published before the attach has been read: the view is
  *current*. Until then (and after a lost connection until the next sentinel)
  :meth:`wait_current` makes authenticated requests wait;
* each message is acknowledged (a stream consumer's credit) and its offset
  remembered; after a lost connection it reconnects with back-off and resumes
  at the last offset + 1 (the kernel's
  :class:`~upgestao_kernel.consumers.stream.StreamConsumer` does the reading).
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

from ..settings import AccessSettings

log = get_logger(__name__)
SOURCE = "identity"  # the only service whose events this stream carries

QUEUE = "gateway.access-events"
SESSION_REVOKED = "identity.session_revoked.v1"
ROLE_PERMISSIONS_CHANGED = "identity.role_permissions_changed.v1"
EVENT_TYPES = (SESSION_REVOKED, ROLE_PERMISSIONS_CHANGED)
SENTINEL = "gateway.caught_up"
# Retention drops whole segments only: keep them small enough for max-age to bite.
SEGMENT_BYTES = 8_000_000


def access_events_queue(settings: AccessSettings) -> Queue:
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


def declare_access_events(connection: Connection, settings: AccessSettings) -> None:
    """Declare identity's exchange, the stream and its bindings (idempotent).

    A stream declared earlier with other arguments (a changed retention) is
    used as it is, with a warning: its arguments cannot change in place.
    """
    queue = access_events_queue(settings)
    channel = connection.channel()
    try:
        declare_publishing(channel, ["identity"])
        try:
            queue(channel).declare()
        except PreconditionFailed as exc:
            log.warning("access.stream_arguments_differ", queue=QUEUE, reason=str(exc)[:300])
            channel = connection.channel()
            passive = Queue(QUEUE, bindings=queue.bindings, passive=True)
            passive(channel).declare()
    finally:
        channel.close()


class AccessEventsStream(StreamConsumer):
    """Reads ``gateway.access-events``; hands each event to ``handle(body)``."""

    confirm_timeout_s = 10.0
    connection_name = f"gateway {QUEUE}"
    lost_event = "access.stream_lost"
    unreadable_event = "access.event_unreadable"

    def __init__(
        self,
        amqp_uri: str,
        settings: AccessSettings,
        handle: Callable[[Mapping[str, Any]], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(amqp_uri, QUEUE)
        self.settings = settings
        self._handle = handle
        self._clock = clock
        self._current = False
        self._became_current = Event()
        self._nonce: str | None = None

    # -- the view ------------------------------------------------------------

    @property
    def current(self) -> bool:
        return self._current

    def wait_current(self, timeout_s: float) -> bool:
        """True once everything published before the (last) attach has been read.

        Does not wait while the broker is unreachable: nothing could change that sooner.
        """
        if self._current:
            return True
        if timeout_s > 0 and not self.broker_unreachable:
            with eventlet.Timeout(timeout_s, False):
                self._became_current.wait()
        return self._current

    def _mark_current(self) -> None:
        if not self._current:
            self._current = True
            self._became_current.send(True)
            log.info("access.stream_current", queue=QUEUE, offset=self.last_offset)

    def detached(self) -> None:
        """Stale until the next sentinel comes back."""
        if self._current:
            self._current = False
            self._became_current = Event()

    # -- reading -------------------------------------------------------------

    def declare(self, connection: Connection) -> None:
        declare_access_events(connection, self.settings)

    def initial_offset(self) -> datetime:
        """One token lifetime (+60 s) back: every revocation whose tokens may still be valid."""
        return datetime.fromtimestamp(self._clock(), UTC) - timedelta(seconds=self.settings.revocation_retention_s)

    def attached(self, connection: Connection) -> None:
        """Publish the sentinel (confirmed): when it comes back, the view is current."""
        self._nonce = uuid.uuid4().hex
        body = json.dumps({"type": SENTINEL, "nonce": self._nonce})
        channel = connection.channel()
        channel.basic_publish_confirm(
            amqp.Message(body, content_type="application/json"),
            exchange="", routing_key=QUEUE, mandatory=True, confirm_timeout=self.confirm_timeout_s,
        )
        channel.close()

    # the sender is checked (the message's broker-verified user_id), unless every process of this platform
    # shares one broker user (UPGESTAO_BROKER_SHARED_USER, never in production)
    check_sender = True

    def handle(self, message: amqp.Message) -> None:
        raw = message.body.decode("utf-8") if isinstance(message.body, bytes) else message.body
        body = json.loads(raw)
        if not isinstance(body, Mapping):
            raise ValueError("not a JSON object")
        if body.get("type") == SENTINEL:
            if body.get("nonce") == self._nonce:
                self._mark_current()
        elif self.check_sender and service_of_user((message.properties or {}).get("user_id")) != SOURCE:
            # only identity's broker user may write identity.events; anyone else who reached the stream
            # (the default exchange takes a queue's name) could forge a revocation, or a role's permissions
            log.warning("access.event_refused", reason="not sent by identity", event_type=str(body.get("type"))[:80])
        else:
            self._handle(body)
