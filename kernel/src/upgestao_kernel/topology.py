"""Exchanges and queues, declared the same way by every publisher and consumer.

Each service publishes its facts on the topic exchange ``<service>.events``
(routing key = event type) and audit records on the topic exchange ``audit``
(routing key ``audit.<service>.<action>``). Every exchange has the alternate
exchange ``upgestao.unrouted``: a message no queue is bound for lands in the
``upgestao.unrouted`` queue instead of vanishing.

A reliable consumer owns a durable queue ``<service>.<handler>``, a delay
queue per retry (``<queue>.retry.<n>``: TTL, then dead-lettered back to the
consumer's queue through the default exchange, so only that consumer sees
the retry) and a parking queue ``<queue>.parked``.

A service's broker user may not read ``upgestao.unrouted`` nor declare it
(:mod:`upgestao_kernel.broker_permissions`): the provisioning (``make up``,
the tests' vhosts) declares it as an administrator with
:func:`declare_unrouted`; publishers declare their exchanges only, naming it
as their alternate exchange (which needs write on it, not more). Importing
this module installs the ``user_id`` stamp (:mod:`upgestao_kernel.user_id_stamp`):
everything that reaches the broker imports it.
"""

from __future__ import annotations

from collections.abc import Sequence

from kombu import Exchange, Queue, binding

from . import user_id_stamp  # noqa: F401  (every publish carries the connection's user_id)

UNROUTED = "upgestao.unrouted"
AUDIT_EXCHANGE = "audit"

unrouted_exchange = Exchange(UNROUTED, type="fanout", durable=True)
unrouted_queue = Queue(UNROUTED, exchange=unrouted_exchange, routing_key="", durable=True)


def events_exchange_name(service: str) -> str:
    return f"{service}.events"


def topic_exchange(name: str) -> Exchange:
    return Exchange(name, type="topic", durable=True, arguments={"alternate-exchange": UNROUTED})


def events_exchange(service: str) -> Exchange:
    return topic_exchange(events_exchange_name(service))


def audit_exchange() -> Exchange:
    return topic_exchange(AUDIT_EXCHANGE)


def audit_routing_key(service: str, action: str) -> str:
    return f"audit.{service}.{action}"


def consumer_queue(name: str, exchange: Exchange, routing_keys: Sequence[str]) -> Queue:
    return Queue(
        name,
        bindings=[binding(exchange, routing_key=key) for key in routing_keys],
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )


def retry_queue_name(queue: str, attempt: int) -> str:
    return f"{queue}.retry.{attempt}"


def parking_queue_name(queue: str) -> str:
    return f"{queue}.parked"


def retry_queue(queue: str, attempt: int, delay_ms: int) -> Queue:
    return Queue(
        retry_queue_name(queue, attempt),
        durable=True,
        queue_arguments={
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": queue,
        },
    )


def parking_queue(queue: str) -> Queue:
    return Queue(parking_queue_name(queue), durable=True)


def declare_unrouted(channel) -> None:
    """Declare the unrouted catch-all (exchange, queue, binding): the provisioning's, as an administrator."""
    unrouted_exchange(channel).declare()
    unrouted_queue(channel).declare()


def declare_shared(channel) -> None:
    """What the provisioning declares as an administrator: the unrouted catch-all and ``audit``, which no
    publisher may configure (deleting ``audit`` would drop the audit log's binding: every record after
    it would go unrouted)."""
    declare_unrouted(channel)
    audit_exchange()(channel).declare()


def exchange_exists(channel, name: str) -> bool:
    """Whether exchange ``name`` exists (a passive declare needs no permission), asked on a channel of
    its own: the broker closes the channel that asked about a missing exchange."""
    from amqp.exceptions import NotFound

    probe = channel.connection.channel()
    try:
        probe.exchange_declare(name, "topic", passive=True)
        return True
    except NotFound:
        return False
    finally:
        if getattr(probe, "is_open", False):
            probe.close()


def declare_publishing(channel, services: Sequence[str] = ()) -> None:
    """Declare what a publisher needs: the audit and event exchanges (their alternate exchange,
    ``upgestao.unrouted``, is the provisioning's: :func:`declare_shared`). ``audit`` is declared only
    where it is missing (a development broker without provisioning): a service's user may not."""
    if not exchange_exists(channel, AUDIT_EXCHANGE):
        audit_exchange()(channel).declare()
    for service in services:
        events_exchange(service)(channel).declare()


def declare_consumer(channel, queue: Queue, retry_delays_ms: Sequence[int]) -> None:
    declare_publishing(channel)
    for bound in queue.bindings:
        bound.exchange(channel).declare()
    queue(channel).declare()
    for attempt, delay in enumerate(retry_delays_ms, start=1):
        retry_queue(queue.name, attempt, delay)(channel).declare()
    parking_queue(queue.name)(channel).declare()
