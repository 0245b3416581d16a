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

The sentinel, the sender's check and the stream's declaration are shared with the push stream
(:mod:`upgestao_gateway.event_stream`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import amqp
from kombu import Connection, Queue

from ..event_stream import SentinelStream, declare_events_stream, events_stream_queue, json_object
from ..settings import AccessSettings

SOURCE = "identity"  # the only service whose events this stream carries

QUEUE = "gateway.access-events"
SESSION_REVOKED = "identity.session_revoked.v1"
ROLE_PERMISSIONS_CHANGED = "identity.role_permissions_changed.v1"
EVENT_TYPES = (SESSION_REVOKED, ROLE_PERMISSIONS_CHANGED)
SENTINEL = "gateway.caught_up"


def access_events_queue(settings: AccessSettings) -> Queue:
    return events_stream_queue(QUEUE, SOURCE, EVENT_TYPES, settings)


def declare_access_events(connection: Connection, settings: AccessSettings) -> None:
    """Declare identity's exchange, the stream and its bindings (idempotent).

    A stream declared earlier with other arguments (a changed retention) is
    used as it is, with a warning: its arguments cannot change in place.
    """
    declare_events_stream(connection, access_events_queue(settings), SOURCE, "access.stream_arguments_differ")


class AccessEventsStream(SentinelStream):
    """Reads ``gateway.access-events``; hands each event to ``handle(body)``."""

    source = SOURCE
    sentinel = SENTINEL
    log_prefix = "access"
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
        super().__init__(amqp_uri, QUEUE, clock)
        self.settings = settings
        self._handle = handle

    def declare(self, connection: Connection) -> None:
        declare_access_events(connection, self.settings)

    def initial_offset(self) -> datetime:
        """One token lifetime (+60 s) back: every revocation whose tokens may still be valid."""
        return datetime.fromtimestamp(self._clock(), UTC) - timedelta(seconds=self.settings.revocation_retention_s)

    def handle(self, message: amqp.Message) -> None:
        body = json_object(message)
        if body is None:
            raise ValueError("not a JSON object")
        if body.get("type") == SENTINEL:
            self.sentinel_returned(body, offset=self.last_offset)
        elif self.sent_by_source(message, body):
            # only identity's broker user may write identity.events; anyone else who reached the stream
            # (the default exchange takes a queue's name) could forge a revocation, or a role's permissions
            self._handle(body)
