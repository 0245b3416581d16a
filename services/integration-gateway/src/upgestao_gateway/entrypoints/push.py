"""The live push in a nameko container: ``GatewayService.push = LivePush()``.

:class:`LivePush` builds, per container, the replay ring, the push-events stream reader, the hub and the
``GET /v1/stream`` endpoint (:mod:`upgestao_gateway.push`), and hands the endpoint to the gateway's web
server, which calls it for the stream's path before its routing. It starts the stream reader and the hub's
dispatcher in managed green threads, and closes every socket (1001) when the container stops.

Sockets are authenticated by the service's authenticator, the one every route uses (identity's tokens,
with the access-events view of revoked sessions), and messaging is asked through the container's RPC path,
the one the routes' calls take (:class:`ContainerMessaging`), as the system: the dispatcher works outside any
worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import eventlet
from nameko.exceptions import ConfigurationError
from nameko.extensions import DependencyProvider
from prometheus_client.core import GaugeMetricFamily
from upgestao_kernel.broker_permissions import shares_one_user
from upgestao_kernel.context import system_context
from upgestao_kernel.logging import get_logger
from upgestao_kernel.metrics import add_source

from ..access.authentication import Authenticator, AuthenticatorFactory, NoAuthenticator
from ..access.web_session import CookieSessionAuthenticator
from ..push.connection import StreamEndpoint
from ..push.hub import PushHub
from ..push.protocol import PATH
from ..push.ring import ReplayRing
from ..push.settings import PushSettings, load_push_settings
from ..push.stream import PushEventsStream
from .dependencies import AccessControl
from .http.server import GatewayWebServer
from .nameko_rpc import DeadlineReplyListener, NamekoTransport, RpcPublisher

log = get_logger(__name__)

PUSH_VIEW_TIMEOUT_S = 5.0


class _SystemCall:
    """What :class:`NamekoTransport` reads of a worker: the context data its call carries (here the system's)."""

    def __init__(self) -> None:
        self.context_data = system_context().to_context_data()


class ContainerMessaging:
    """``messaging.push_view`` through the container's RPC path: the publisher of the routes' calls (made once per
    container) and the container's reply listener (its reply queue, consumed without acknowledgements), not a
    standalone proxy with a connection, a reply queue and an acknowledgement per reply of its own. Each call is
    the system's, with a request id of its own, and its message expires with its deadline."""

    def __init__(self, reply_listener: DeadlineReplyListener, publisher: RpcPublisher,
                 timeout_s: float = PUSH_VIEW_TIMEOUT_S) -> None:
        self._reply_listener = reply_listener
        self._publisher = publisher
        self.timeout_s = timeout_s

    def push_view(self, items: list[dict], viewers: list[str]) -> Mapping[str, Any]:
        """messaging's answer; ``TimeoutError`` when none comes in time (an ordinary failure the dispatcher
        retries: eventlet's own ``Timeout`` is no ``Exception`` and would end its thread), the reply then
        forgotten."""
        transport = NamekoTransport(_SystemCall(), self._reply_listener, self._publisher)
        reply = None
        deadline = eventlet.Timeout(self.timeout_s)
        try:
            reply = transport.send("messaging", "push_view", (), {"items": items, "viewers": viewers},
                                   expiration_s=self.timeout_s, idempotency_key=None)
            return reply.result()
        except eventlet.Timeout as exc:
            if exc is not deadline:
                raise
            if reply is not None:
                transport.forget(reply)
            raise TimeoutError(f"messaging.push_view: no answer within {self.timeout_s:g}s") from None
        finally:
            deadline.cancel()


class LivePush(DependencyProvider):
    """``self.push`` in a worker: the container's :class:`~upgestao_gateway.push.hub.PushHub`."""

    server = GatewayWebServer()
    access = AccessControl()
    reply_listener = DeadlineReplyListener()  # shared: the one the routes' calls (the Rpc dependency) use

    hub: PushHub | None = None
    stream: PushEventsStream | None = None
    messaging: Any = None
    settings: PushSettings | None = None

    def __init__(self, messaging_factory: Callable[[Mapping[str, Any]], Any] | None = None) -> None:
        """``messaging_factory(config)``: what the hub asks ``push_view`` of, instead of :class:`ContainerMessaging`."""
        self._messaging_factory = messaging_factory

    def setup(self) -> None:
        config = self.container.config
        self.settings = settings = load_push_settings()
        ring = ReplayRing(settings.window_events, settings.window_s)
        if self._messaging_factory is not None:
            self.messaging = self._messaging_factory(config)
        else:
            self.messaging = ContainerMessaging(self.reply_listener, RpcPublisher(config))
        authenticator = self._authenticator()
        revocations = self.access if self.access.enabled else None
        self.stream = PushEventsStream(config["AMQP_URI"], settings, ring, lambda: self.hub.wake())
        self.stream.check_sender = not shares_one_user(os.environ.get("UPGESTAO_ENV", "local"))
        self.hub = PushHub(settings, ring, self.messaging, revocations, wait_current=self.stream.wait_current)
        self.server.upgrades[PATH] = StreamEndpoint(self.hub, settings, authenticator)

    def _authenticator(self) -> Authenticator:
        """The service's authenticator, as the routes bind it (:class:`GatewayRoute.setup`)."""
        declared = getattr(self.container.service_cls, "authenticator", None) or NoAuthenticator()
        authenticator = declared.bind(self.access) if isinstance(declared, AuthenticatorFactory) else declared
        if not isinstance(authenticator, Authenticator):
            raise ConfigurationError(f"{self.container.service_cls.__name__}.authenticator has no "
                                     "authenticate(request)")
        if isinstance(authenticator, CookieSessionAuthenticator):  # bearer tokens only: the privacy centre's
            return authenticator.bearer  # session cookie is for its pages' requests, not for a WebSocket
        return authenticator

    def _spawn(self, fn: Callable[[], None]):
        return self.container.spawn_managed_thread(fn, identifier=f"gateway.push.{fn.__name__}")

    def start(self) -> None:
        self.stream.start(self._spawn)
        self.hub.start(self._spawn)
        self._remove_source = add_source(self._connections)

    def _connections(self) -> list:
        """``upgestao_websocket_connections``: this process's open sockets, read at scrape time."""
        family = GaugeMetricFamily("upgestao_websocket_connections", "Open WebSocket connections (GET /v1/stream).")
        family.add_metric([], self.hub.sockets if self.hub is not None else 0)
        return [family]

    def stop(self) -> None:
        remove = getattr(self, "_remove_source", None)
        if remove is not None:
            remove()
            self._remove_source = None
        self.server.upgrades.pop(PATH, None)
        if self.hub is not None:
            self.hub.stop()
        if self.stream is not None:
            self.stream.stop()
        if self.messaging is not None and hasattr(self.messaging, "close"):
            self.messaging.close()

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx) -> PushHub | None:
        return self.hub
