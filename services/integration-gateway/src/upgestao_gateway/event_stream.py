"""A service's events as every gateway replica reads them: a RabbitMQ stream that knows when it is current.

The access stream (identity's revocations, :mod:`upgestao_gateway.access.stream`) and the push stream
(messaging's events, :mod:`upgestao_gateway.push.stream`) work alike, and so share this module:

* one service's topic exchange ``<source>.events`` is bound, for the event types the gateway needs, to a
  stream queue (:func:`events_stream_queue`): a stream is not consumed away, so every replica reads every
  event; retention is by age and size, in segments small enough for the age to bite;
* on attach the reader publishes a sentinel (``{"type": <sentinel>, "nonce": ...}``, confirmed) straight to
  the stream; when its own sentinel comes back, everything published before the attach has been read: the
  view is *current* (:meth:`SentinelStream.wait_current`), until the connection is lost;
* only the source's broker user may write its exchange; a message in the stream from anyone else (the
  default exchange reaches a stream by its name) is refused (:meth:`SentinelStream.sent_by_source`): a forged
  revocation, or a forged message, would otherwise be believed.

What a reader does with an event stays in its subclass.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import amqp
import eventlet
from amqp.exceptions import PreconditionFailed
from eventlet.event import Event
from kombu import Connection, Queue, binding
from upgestao_kernel.broker_identity import service_of_user
from upgestao_kernel.consumers.stream import StreamConsumer
from upgestao_kernel.logging import get_logger
from upgestao_kernel.topology import declare_publishing, events_exchange

log = get_logger(__name__)

SEGMENT_BYTES = 8_000_000  # retention drops whole segments only: small enough for max-age to bite


class StreamRetention(Protocol):
    """How long and how much a stream keeps (both settings classes have these)."""

    @property
    def events_max_age(self) -> str: ...

    @property
    def events_max_bytes(self) -> int: ...


def events_stream_queue(name: str, source: str, event_types: Iterable[str], retention: StreamRetention) -> Queue:
    """The stream queue ``name``, bound to ``source``'s events exchange for each of ``event_types``."""
    exchange = events_exchange(source)
    return Queue(
        name,
        bindings=[binding(exchange, routing_key=event_type) for event_type in event_types],
        durable=True,
        auto_delete=False,
        queue_arguments={
            "x-queue-type": "stream",
            "x-max-age": retention.events_max_age,
            "x-max-length-bytes": retention.events_max_bytes,
            "x-stream-max-segment-size-bytes": min(SEGMENT_BYTES, retention.events_max_bytes),
        },
    )


def declare_events_stream(connection: Connection, queue: Queue, source: str, differ_event: str) -> None:
    """Declare ``source``'s exchange, the stream ``queue`` and its bindings (idempotent).

    A stream declared earlier with other arguments (a changed retention) is used as it is, with a warning
    (``differ_event``): its arguments cannot change in place.
    """
    channel = connection.channel()
    try:
        declare_publishing(channel, [source])
        try:
            queue(channel).declare()
        except PreconditionFailed as exc:
            log.warning(differ_event, queue=queue.name, reason=str(exc)[:300])
            channel = connection.channel()
            Queue(queue.name, bindings=queue.bindings, passive=True)(channel).declare()
    finally:
        channel.close()


def json_object(message: amqp.Message) -> Mapping[str, Any] | None:
    """The message's body as a JSON object; None when it is not one (not UTF-8, not JSON, not an object)."""
    try:
        raw = message.body.decode("utf-8") if isinstance(message.body, bytes) else message.body
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, Mapping) else None


class SentinelStream(StreamConsumer):
    """A stream reader that knows when it is current: its own sentinel, published on attach, has come back.

    Subclasses set :attr:`source`, :attr:`sentinel` and :attr:`log_prefix`, and call :meth:`sentinel_returned`
    and :meth:`sent_by_source` from :meth:`handle`.
    """

    source: str  # the only service whose events the stream carries
    sentinel: str  # the sentinel's type: no service's event type
    log_prefix: str  # "<log_prefix>.stream_current", "<log_prefix>.event_refused"
    confirm_timeout_s = 10.0
    # the sender is checked (the message's broker-verified user_id), unless every process of this platform
    # shares one broker user (UPGESTAO_BROKER_SHARED_USER, never in production)
    check_sender = True

    def __init__(self, amqp_uri: str, queue: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__(amqp_uri, queue)
        self._clock = clock
        self._current = False
        self._became_current = Event()
        self._nonce: str | None = None

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

    def detached(self) -> None:
        """Stale until the next sentinel comes back."""
        if self._current:
            self._current = False
            self._became_current = Event()

    def attached(self, connection: Connection) -> None:
        """Publish the sentinel (confirmed): when it comes back, the view is current."""
        self._nonce = uuid.uuid4().hex
        body = json.dumps({"type": self.sentinel, "nonce": self._nonce})
        channel = connection.channel()
        channel.basic_publish_confirm(
            amqp.Message(body, content_type="application/json"),
            exchange="", routing_key=self.queue, mandatory=True, confirm_timeout=self.confirm_timeout_s,
        )
        channel.close()

    def sentinel_returned(self, body: Mapping[str, Any], **log_fields: Any) -> None:
        """A sentinel (``body``) came back: this reader's own (not another replica's) makes the view current."""
        if body.get("nonce") == self._nonce and not self._current:
            self._current = True
            self._became_current.send(True)
            log.info(f"{self.log_prefix}.stream_current", queue=self.queue, **log_fields)

    def sent_by_source(self, message: amqp.Message, body: Mapping[str, Any]) -> bool:
        """False (logged, with the event's type only) if someone other than :attr:`source` wrote ``message``."""
        if not self.check_sender or service_of_user((message.properties or {}).get("user_id")) == self.source:
            return True
        log.warning(f"{self.log_prefix}.event_refused", reason=f"not sent by {self.source}",
                    event_type=str(body.get("type"))[:80])
        return False
