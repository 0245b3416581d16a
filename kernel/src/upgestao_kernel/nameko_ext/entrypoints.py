"""``reliable_handler``: an event consumer that neither loses nor repeats work.

nameko's own ``event_handler`` acks a failed message away
(``requeue_on_error=False``) or requeues it in a hot loop. This entrypoint
instead republishes a failed message to a delay queue (back-off) and, after
the last attempt, to a parking queue with the error, then acks. Each handler
owns a durable queue ``<service>.<method>`` bound to the source's events
exchange. Handlers receive an :class:`EventEnvelope` and must do their work in
``self.db.handling(event)`` so a redelivered event is processed once.

It is the consumer toolkit's entry for one event at a time in a nameko service
(:mod:`upgestao_kernel.consumers` has the batch and stream consumers and the
back-off loop). Identity, messaging, the notifier and privacy consume the
others' events with it; the integrations, whose fan-out is worth batching,
take theirs with the batch consumer (``upgestao_integrations.entrypoints.events_in``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial

from kombu import Connection
from kombu.pools import producers
from nameko.exceptions import ContainerBeingKilled
from nameko.messaging import Consumer

from ..broker_permissions import shares_one_user
from ..config import load_settings
from ..events import EventEnvelope
from ..logging import get_logger
from ..metrics import EVENTS_HANDLED, consumer_outcomes
from ..parking import ATTEMPTS_HEADER, ERROR_HEADER, PARKED_AT_HEADER, QUEUE_HEADER, error_header, failure_reason
from ..topology import (
    consumer_queue,
    declare_consumer,
    events_exchange,
    parking_queue_name,
    retry_queue_name,
)
from .database import DUPLICATE_DELIVERY
from .principals import caller_service, stamp_caller

log = get_logger(__name__)


class NotTheSource(Exception):
    """An event whose ``user_id`` is not the broker user of the service whose events the handler takes."""

    park_reason = "the event was not sent by its source service's broker user"


class ReliableEventHandler(Consumer):
    # a handler is the service's own work because of a fact it heard: the system acts (see .principals)
    acts_as_system = True

    def __init__(self, source_service: str, event_types: str | Sequence[str], **kwargs) -> None:
        self.source_service = source_service
        self.event_types = [event_types] if isinstance(event_types, str) else list(event_types)
        super().__init__(queue=None, requeue_on_error=True, **kwargs)

    @property
    def queue_name(self) -> str:
        return f"{self.container.service_name}.{self.method_name}"

    def setup(self) -> None:
        settings = load_settings(self.container.service_name)
        # unless every process shares one broker user (never in production): then a sender cannot be told
        self.check_sender = not shares_one_user(settings.env)
        self.service = self.container.service_name
        self.retry_delays_ms = settings.retry_delays_ms
        self.max_attempts = settings.max_attempts
        self.amqp_uri = self.container.config["AMQP_URI"]
        self.queue = consumer_queue(self.queue_name, events_exchange(self.source_service), self.event_types)
        with Connection(self.amqp_uri) as conn:
            declare_consumer(conn.default_channel, self.queue, self.retry_delays_ms)
        self._publish_connection = Connection(self.amqp_uri, transport_options={"confirm_publish": True})
        consumer_outcomes(self.service, self.method_name)  # its series at 0 from the start
        super().setup()

    def handle_message(self, body, message) -> None:
        sender = caller_service(message)
        if self.check_sender and sender is not None and sender not in (self.source_service, self.service):
            # only the source's broker user writes its events exchange, and only this service moves its own
            # messages (retries, a replay by its CLI); another service that reached this queue (the default
            # exchange takes a queue's name) is parked, never handled. An operator's own user is nobody's
            # service: trusted like the administrator it is.
            self._reroute(message, NotTheSource(), final=True)
            return
        try:
            envelope = EventEnvelope.from_message(body)
        except (KeyError, TypeError, ValueError) as exc:
            self._reroute(message, exc, final=True)
            return
        prefix = f"{self.header_prefix}."
        context_data = stamp_caller({
            key[len(prefix):]: value for key, value in (message.headers or {}).items() if key.startswith(prefix)
        }, message)
        try:
            self.container.spawn_worker(
                self, (envelope,), {}, context_data=context_data,
                handle_result=partial(self.handle_result, message),
            )
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)

    def handle_result(self, message, worker_ctx, result=None, exc_info=None):
        if exc_info is None:  # acked below: handled, or a redelivery ``db.handling`` found processed already
            duplicate = getattr(worker_ctx, DUPLICATE_DELIVERY, False)
            EVENTS_HANDLED.labels(service=self.service, consumer=self.method_name,
                                  outcome="duplicate" if duplicate else "handled").inc()
        return super().handle_result(message, worker_ctx, result, exc_info)

    def handle_message_processed(self, message, result=None, exc_info=None) -> None:
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            return
        attempts = int((message.headers or {}).get(ATTEMPTS_HEADER, 1))
        self._reroute(message, exc_info[1], final=attempts >= self.max_attempts, attempts=attempts)

    def _reroute(self, message, exc: BaseException, *, final: bool, attempts: int = 1) -> None:
        """Send the message to its next delay queue or to parking, then ack it."""
        headers = dict(message.headers or {})
        headers[ERROR_HEADER] = error_header(exc)  # the type and a fixed reason: str(exc) may quote values
        headers[QUEUE_HEADER] = self.queue_name
        if final:
            target = parking_queue_name(self.queue_name)
            headers[PARKED_AT_HEADER] = datetime.now(UTC).isoformat()
        else:
            target = retry_queue_name(self.queue_name, attempts)
            headers[ATTEMPTS_HEADER] = attempts + 1
        try:
            with producers[self._publish_connection].acquire(block=True, timeout=10) as producer:
                producer.publish(
                    message.body,
                    exchange="",
                    routing_key=target,
                    headers=headers,
                    delivery_mode=2,
                    content_type=message.content_type,
                    content_encoding=message.content_encoding,
                    message_id=message.properties.get("message_id"),
                    retry=True,
                    retry_policy={"max_retries": 3},
                )
        except Exception as publish_error:  # broker trouble: leave it on the queue
            log.error("consumer.reroute_failed", queue=self.queue_name, error=type(publish_error).__name__)
            self.queue_consumer.requeue_message(message)
            return
        EVENTS_HANDLED.labels(service=self.container.service_name, consumer=self.method_name,
                              outcome="parked" if final else "retried").inc()
        log.warning(
            "consumer.parked" if final else "consumer.retry_scheduled",
            queue=self.queue_name, target=target, attempts=attempts, error=type(exc).__name__,
            reason=failure_reason(exc),
        )
        self.queue_consumer.ack_message(message)


reliable_handler = ReliableEventHandler.decorator
