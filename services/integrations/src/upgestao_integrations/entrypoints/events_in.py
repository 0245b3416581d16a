"""Events in: the other services' events that may become webhooks, taken a batch at a time.

Each source has its durable quorum queue, named as when one nameko worker handled one event
(``integrations.on_messaging_event``, ``integrations.on_identity_event``,
``integrations.on_erasure_requested``: a platform updated from that finds what waited there), read by the
kernel's :class:`~upgestao_kernel.consumers.batch.BatchConsumer`: up to ``INTEGRATIONS_EVENTS_BATCH``
events are handled in one transaction (:func:`..service_layer.fanout.accept_many`: each claimed by its id,
so a redelivered one queues nothing) and acked only after its commit; then the dispatcher is woken.

What is parked on ``<queue>.parked`` (confirmed by the broker before the ack), never handled:

* a message that is no event (:func:`parse_event`);
* an event whose sender may not have sent it (:func:`admission`): the message's AMQP ``user_id``, which
  RabbitMQ checks against the publishing connection's user, must be the source's broker user, or this
  service's own (a parked message replayed), or nobody's service (an operator); and its type must be one
  this queue is bound for, so a source cannot speak for another one by dropping an event straight into
  its queue through the default exchange;
* an event the database refuses (:func:`refused`: the batch is then stored one event at a time to find it).

The database or the broker away: nothing is acked, the batch is taken again after a back-off.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import sqlalchemy as sa
from kombu import Connection
from nameko.extensions import DependencyProvider
from upgestao_kernel.broker_identity import service_of_user
from upgestao_kernel.broker_permissions import shares_one_user
from upgestao_kernel.config import load_settings
from upgestao_kernel.consumers import GreenStop
from upgestao_kernel.consumers.batch import BatchConsumer, BatchHandler
from upgestao_kernel.context import RequestContext
from upgestao_kernel.events import EventEnvelope, Subscription
from upgestao_kernel.eventstore import ConcurrencyError
from upgestao_kernel.logging import get_logger
from upgestao_kernel.nameko_ext import Database
from upgestao_kernel.topology import consumer_queue, declare_publishing, events_exchange, parking_queue

from ..adapters.sql_repositories import with_sql_repositories
from ..service_layer import fanout
from ..settings import load_integrations_settings
from .dispatcher import IntegrationsRuntime

log = get_logger(__name__)

SERVICE = "integrations"
SYSTEM = "system"
MAX_EVENT_ID = 36  # webhook_messages.event_id (a UUID)

# handler -> (source service, the event types its queue ``integrations.<handler>`` is bound for)
SOURCES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "on_messaging_event": ("messaging", fanout.MESSAGING_EVENTS),
    "on_identity_event": ("identity", fanout.IDENTITY_EVENTS),
    "on_erasure_requested": ("privacy", fanout.PRIVACY_EVENTS),
}

# the catalogue (docs/events.md) reads these
MESSAGING_EVENTS_IN = Subscription(service=SERVICE, handler="EventsIn", events=fanout.MESSAGING_EVENTS,
                                   via="batches from queue `integrations.on_messaging_event`")
IDENTITY_EVENTS_IN = Subscription(service=SERVICE, handler="EventsIn", events=fanout.IDENTITY_EVENTS,
                                  via="batches from queue `integrations.on_identity_event`")
PRIVACY_EVENTS_IN = Subscription(service=SERVICE, handler="EventsIn", events=fanout.PRIVACY_EVENTS,
                                 via="batches from queue `integrations.on_erasure_requested`")


class NotAnEvent(ValueError):
    park_reason = "the message is not an event"


class NotTheSource(ValueError):
    park_reason = "the event was not sent by its source service's broker user"


class NotThisQueue(ValueError):
    park_reason = "the event is not of a type this queue is bound for"


def queue_name(handler: str) -> str:
    return f"{SERVICE}.{handler}"


def parse_event(body: bytes) -> list[EventEnvelope]:
    """The event a message holds (a list of one), or :class:`NotAnEvent` (a ``ValueError``: parked)."""
    try:
        message = json.loads(body)
        envelope = EventEnvelope.from_message(message)
    except (KeyError, TypeError, AttributeError, ValueError, RecursionError) as exc:
        raise NotAnEvent(type(exc).__name__) from None
    event_id = envelope.event_id
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID or not isinstance(envelope.type, str) \
            or not isinstance(envelope.data, Mapping):
        raise NotAnEvent("event_id, type or data")
    return [envelope]


def admission(source: str, event_types: Sequence[str], *,
              check_sender: bool) -> Callable[[EventEnvelope, str | None], None]:
    """The check of each event of ``source``'s queue against its message's broker-checked ``user_id``
    (not made where every process shares one broker user, never in production: it cannot be told)."""
    types = frozenset(event_types)

    def admit(envelope: EventEnvelope, user_id: str | None) -> None:
        if envelope.type not in types:
            raise NotThisQueue(envelope.type[:200])
        sender = service_of_user(user_id)
        if check_sender and sender is not None and sender not in (source, SERVICE):
            raise NotTheSource(sender)

    return admit


def refused(exc: BaseException) -> bool:
    """An error that blames the events of the batch, not the database being away (a lost connection, a
    deadlock, a version moved by the dispatcher meanwhile: the batch is taken again later)."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return False
    return not isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError,
                                sa.exc.DisconnectionError, ConcurrencyError, OSError))


def context_of(source: str) -> Callable[[EventEnvelope], RequestContext]:
    """The context of the work an event causes: the system acts, in the event's correlation, caused by it
    (what a nameko worker of the event's message had)."""
    def context(envelope: EventEnvelope) -> RequestContext:
        made = RequestContext.from_proof({"correlation_id": envelope.correlation_id}, None, source)
        return replace(made, actor_id=SYSTEM, actor_role=SYSTEM, causation_id=envelope.event_id)

    return context


def declaring(handler: str) -> Callable[[Any], None]:
    source, event_types = SOURCES[handler]
    queue = consumer_queue(queue_name(handler), events_exchange(source), event_types)

    def declare(channel) -> None:
        declare_publishing(channel)
        events_exchange(source)(channel).declare()
        queue(channel).declare()
        parking_queue(queue.name)(channel).declare()

    return declare


class EventsIn(DependencyProvider):
    """Runs one batch consumer per source in managed threads; wakes the dispatcher when messages were queued."""

    def setup(self) -> None:
        base = load_settings(self.container.service_name)
        settings = load_integrations_settings(base)
        check_sender = not shares_one_user(base.env)
        if not check_sender:
            log.warning("integrations.sender_unchecked", reason="every process shares one broker user")
        self.amqp_uri = self.container.config["AMQP_URI"]
        self._stop = GreenStop()
        self._threads: list = []
        self.consumers = [
            BatchConsumer(
                self.amqp_uri, queue_name(handler),
                BatchHandler(parse=parse_event, store=partial(self._store, handler, context_of(source)),
                             refuses=refused, admit=admission(source, event_types, check_sender=check_sender)),
                declare=declaring(handler), batch_size=settings.events_batch, prefetch=2 * settings.events_batch,
                name=f"integrations.{handler}", stop=self._stop)
            for handler, (source, event_types) in SOURCES.items()
        ]
        with Connection(self.amqp_uri) as conn:
            for handler in SOURCES:
                declaring(handler)(conn.default_channel)

    def start(self) -> None:
        for consumer in self.consumers:
            self._threads.append(self.container.spawn_managed_thread(consumer.run, identifier=consumer.name))

    def stop(self) -> None:
        self._stop.stop_loops(self._threads)

    def kill(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.kill()

    def _dependency(self, cls: type) -> Any:
        return next(d for d in self.container.dependencies if isinstance(d, cls))

    def _store(self, handler: str, context: Callable[[EventEnvelope], RequestContext],
               envelopes: Sequence[EventEnvelope]) -> None:
        with with_sql_repositories(self._dependency(Database).unit_of_work()) as uow:
            accepted = fanout.accept_many(uow, queue_name(handler), envelopes, context)
        log.debug("integrations.events_accepted", queue=queue_name(handler), handled=accepted.handled,
                  duplicates=accepted.duplicates, messages=accepted.messages)
        if accepted.messages:
            self._dependency(IntegrationsRuntime).wake()
