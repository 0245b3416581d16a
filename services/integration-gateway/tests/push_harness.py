"""What the push tests (``test_push_stream.py``) and the push frame fuzz (``fuzz/test_fuzz_stream_frames.py``)
share: the gateway with the live push and a short key refetch, its hub, a free port, and messaging's events
published as messaging's broker user publishes them (confirmed, mandatory)."""

from __future__ import annotations

import uuid

from kombu import Connection, Producer
from nameko.containers import ServiceContainer
from upgestao_gateway.entrypoints.dependencies import JwtAuthentication
from upgestao_gateway.entrypoints.push import LivePush
from upgestao_gateway.service import GatewayService
from upgestao_kernel.events import SYSTEM_ACTOR, EventEnvelope, new_id, utcnow
from upgestao_kernel.listen_ports import free_port  # noqa: F401 (the push tests take it from here)
from upgestao_kernel.testing import service_amqp_uri


class PushGateway(GatewayService):
    authenticator = JwtAuthentication(key_refetch_interval_s=0.3)
    push = LivePush()


def hub_of(gateway: ServiceContainer):
    """The push hub of a running :class:`PushGateway` container."""
    return next(dep for dep in gateway.dependencies if isinstance(dep, LivePush)).hub


def publish_event(amqp_uri: str, event_type: str, data: dict, as_service: str | None = "messaging") -> None:
    """An event on ``<as_service>.events`` as that service's broker user (None: the vhost's own user, on
    ``messaging.events``), confirmed."""
    uri = service_amqp_uri(amqp_uri, as_service) if as_service else amqp_uri
    exchange = "messaging.events" if as_service in ("messaging", None) else f"{as_service}.events"
    envelope = EventEnvelope(
        event_id=new_id(), stream_id=f"message-{uuid.uuid4().hex[:8]}", version=1, type=event_type,
        occurred_at=utcnow(), actor=SYSTEM_ACTOR, correlation_id=None, causation_id=None, data=data,
    )
    with Connection(uri, transport_options={"confirm_publish": True}) as connection:
        Producer(connection.default_channel, serializer="json").publish(
            envelope.to_message(), exchange=exchange, routing_key=event_type, delivery_mode=2, mandatory=True,
            retry=False)
