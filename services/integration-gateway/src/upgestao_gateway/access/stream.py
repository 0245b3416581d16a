"""The access-events stream: how every gateway replica learns revocations.

Identity publishes ``identity.session_revoked.v1`` and
``identity.role_permissions_changed.v1`` on the topic exchange
``identity.events``. Both are bound to the RabbitMQ *stream* queue
``gateway.access-events``: a stream is not consumed away, so every replica
reads every message, and a replica that starts reads back far enough
(``now - (token TTL + 60 s)``) to know every revocation whose tokens may
still be valid.

:class:`AccessEventsStream` reads it in a green thread:

* on attach it publishes a sentinel (``{"type": "gateway.caught_up", "nonce":
  ...}``, confirmed) straight to the stream; when that sentinel comes back,
  everything published before the attach has been read: the view is
  *current*. Until then (and after a lost connection until the next sentinel)
  :meth:`wait_current` makes authenticated requests wait;
* each message is acknowledged (a stream consumer's credit) and its offset
  remembered; after a lost connection it reconnects with back-off and resumes
  at the last offset + 1.
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
from greenlet import GreenletExit
from kombu import Connection, Queue, binding
from upgestao_kernel.logging import get_logger
from upgestao_kernel.topology import declare_publishing, events_exchange

from .settings import AccessSettings

log = get_logger(__name__)

QUEUE = "gateway.access-events"
SESSION_REVOKED = "identity.session_revoked.v1"
ROLE_PERMISSIONS_CHANGED = "identity.role_permissions_changed.v1"
EVENT_TYPES = (SESSION_REVOKED, ROLE_PERMISSIONS_CHANGED)
SENTINEL = "gateway.caught_up"
# Retention drops whole segments only: keep them small enough for max-age to bite.
SEGMENT_BYTES = 8_000_000


def access_events_queue(settings: AccessSettings) -> Queue:
    exchange = events_exchange("identity")
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


class AccessEventsStream:
    """Reads ``gateway.access-events``; hands each event to ``handle(body)``."""

    prefetch_count = 500
    heartbeat_s = 10
    poll_s = 1.0
    connect_timeout_s = 5.0
    confirm_timeout_s = 10.0
    backoff_initial_s = 0.2
    backoff_max_s = 2.0  # a broker back from a restart is noticed within this

    def __init__(
        self,
        amqp_uri: str,
        settings: AccessSettings,
        handle: Callable[[Mapping[str, Any]], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.amqp_uri = amqp_uri
        self.settings = settings
        self._handle = handle
        self._clock = clock
        self._connection: Connection | None = None
        self._thread = None
        self._stopping = False
        self._current = False
        self._became_current = Event()
        self._nonce: str | None = None
        self.last_offset: int | None = None
        self.attaches = 0  # successful attaches (reconnections show here)
        self._broker_unreachable = False  # the last connection attempt failed, or the connection was lost

    # -- the view ------------------------------------------------------------

    @property
    def current(self) -> bool:
        return self._current

    @property
    def broker_unreachable(self) -> bool:
        """The broker cannot be reached now (not merely: the view is still being read)."""
        return self._broker_unreachable

    def wait_current(self, timeout_s: float) -> bool:
        """True once everything published before the (last) attach has been read.

        Does not wait while the broker is unreachable: nothing could change that sooner.
        """
        if self._current:
            return True
        if timeout_s > 0 and not self._broker_unreachable:
            with eventlet.Timeout(timeout_s, False):
                self._became_current.wait()
        return self._current

    def _mark_current(self) -> None:
        if not self._current:
            self._current = True
            self._became_current.send(True)
            log.info("access.stream_current", queue=QUEUE, offset=self.last_offset)

    def _mark_stale(self) -> None:
        if self._current:
            self._current = False
            self._became_current = Event()

    # -- life cycle ----------------------------------------------------------

    def start(self, spawn: Callable[[Callable[[], None]], Any]) -> None:
        self._stopping = False
        self._thread = spawn(self.run)

    def stop(self) -> None:
        """Stop reading: the green thread ends (its connection closed) before this returns."""
        self._stopping = True
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.kill()
            with eventlet.Timeout(2.0, False):  # closing the connection is itself bounded (1 s)
                try:
                    thread.wait()
                except GreenletExit:
                    pass
        self._close()
        self._mark_stale()

    def run(self) -> None:
        """Read until stopped; reconnect with back-off. Never raises (a managed thread)."""
        delay = self.backoff_initial_s
        while not self._stopping:
            attaches = self.attaches
            try:
                self._consume()
            except Exception as exc:
                if self._stopping:
                    break
                self._broker_unreachable = True
                log.warning("access.stream_lost", queue=QUEUE, error=type(exc).__name__, reason=str(exc)[:200],
                            retry_in_s=delay, offset=self.last_offset)
            finally:
                self._mark_stale()
                self._close()
            if self.attaches > attaches:
                delay = self.backoff_initial_s
            eventlet.sleep(delay)
            delay = min(delay * 2, self.backoff_max_s)

    # -- reading -------------------------------------------------------------

    def start_offset(self) -> int | datetime:
        """Where to (re)attach: after the last message read, else one token lifetime (+60 s) back."""
        if self.last_offset is not None:
            return self.last_offset + 1
        since = datetime.fromtimestamp(self._clock(), UTC) - timedelta(seconds=self.settings.revocation_retention_s)
        return since

    def _consume(self) -> None:
        connection = Connection(
            self.amqp_uri, heartbeat=self.heartbeat_s, connect_timeout=self.connect_timeout_s,
            transport_options={"client_properties": {"connection_name": f"gateway {QUEUE}"}},
        )
        self._connection = connection
        connection.connect()
        self._broker_unreachable = False
        declare_access_events(connection, self.settings)

        channel = connection.channel()
        channel.basic_qos(0, self.prefetch_count, False)
        channel.basic_consume(
            QUEUE, callback=lambda message: self._on_message(channel, message),
            arguments={"x-stream-offset": self.start_offset()},
        )
        self.attaches += 1
        self._publish_sentinel(connection)
        while not self._stopping:
            try:
                connection.drain_events(timeout=self.poll_s)
            except TimeoutError:
                pass
            connection.heartbeat_check()

    def _publish_sentinel(self, connection: Connection) -> None:
        self._nonce = uuid.uuid4().hex
        body = json.dumps({"type": SENTINEL, "nonce": self._nonce})
        channel = connection.channel()
        channel.basic_publish_confirm(
            amqp.Message(body, content_type="application/json"),
            exchange="", routing_key=QUEUE, mandatory=True, confirm_timeout=self.confirm_timeout_s,
        )
        channel.close()

    def _on_message(self, channel, message) -> None:
        offset = (message.properties.get("application_headers") or {}).get("x-stream-offset")
        try:
            raw = message.body.decode("utf-8") if isinstance(message.body, bytes) else message.body
            body = json.loads(raw)
            if not isinstance(body, Mapping):
                raise ValueError("not a JSON object")
            if body.get("type") == SENTINEL:
                if body.get("nonce") == self._nonce:
                    self._mark_current()
            else:
                self._handle(body)
        except Exception as exc:  # one unreadable message must not stop the stream
            log.warning("access.event_unreadable", queue=QUEUE, offset=offset, error=type(exc).__name__)
        finally:
            if isinstance(offset, int):
                self.last_offset = offset
            channel.basic_ack(message.delivery_tag)

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            with eventlet.Timeout(1.0, False):
                connection.release()
        except Exception:  # already broken: nothing to close politely
            pass
        finally:
            connection.collect()
