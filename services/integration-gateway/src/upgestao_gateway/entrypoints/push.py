"""The live push in a nameko container: ``GatewayService.push = LivePush()``.

:class:`LivePush` builds, per container, the replay ring, the push-events stream reader, the hub and the
``GET /v1/stream`` endpoint (:mod:`upgestao_gateway.push`), and hands the endpoint to the gateway's web
server, which calls it for the stream's path before its routing. It starts the stream reader and the hub's
dispatcher in managed green threads, and closes every socket (1001) when the container stops.

Sockets are authenticated by the service's authenticator, the one every route uses (identity's tokens,
with the access-events view of revoked sessions), and messaging is asked over a standalone RPC proxy of its
own (:class:`StandaloneMessaging`): the dispatcher works outside any worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import eventlet
from nameko.exceptions import ConfigurationError
from nameko.extensions import DependencyProvider
from nameko.standalone.rpc import ClusterRpcProxy
from upgestao_kernel.broker_permissions import shares_one_user
from upgestao_kernel.context import system_context
from upgestao_kernel.logging import get_logger

from ..access.authentication import Authenticator, AuthenticatorFactory, NoAuthenticator
from ..push.connection import StreamEndpoint
from ..push.hub import PushHub
from ..push.protocol import PATH
from ..push.ring import ReplayRing
from ..push.settings import PushSettings, load_push_settings
from ..push.stream import PushEventsStream
from .dependencies import AccessControl
from .http.server import GatewayWebServer

log = get_logger(__name__)

PUSH_VIEW_TIMEOUT_S = 5.0


class StandaloneMessaging:
    """``messaging.push_view`` over one standalone proxy, kept open between calls (the dispatcher calls it
    for every batch: a connection per call would cost more than the call) and opened again after a
    failure. One caller at a time: the hub's dispatcher."""

    def __init__(self, config: Mapping[str, Any], timeout_s: float = PUSH_VIEW_TIMEOUT_S) -> None:
        self._config = dict(config)
        self.timeout_s = timeout_s
        self._standalone: ClusterRpcProxy | None = None
        self._proxy: Any = None

    def push_view(self, items: list[dict], viewers: list[str]) -> Mapping[str, Any]:
        """messaging's answer; ``TimeoutError`` when none comes in time (an ordinary failure the dispatcher
        retries: eventlet's own ``Timeout`` is no ``Exception`` and would end its thread)."""
        deadline = eventlet.Timeout(self.timeout_s)
        try:
            if self._proxy is None:
                self._standalone = ClusterRpcProxy(self._config, timeout=self.timeout_s,
                                                   context_data=system_context().to_context_data())
                self._proxy = self._standalone.start()
            return self._proxy.messaging.push_view(items=items, viewers=viewers)
        except eventlet.Timeout as exc:
            self.close()
            if exc is not deadline:
                raise
            raise TimeoutError(f"messaging.push_view: no answer within {self.timeout_s:g}s") from None
        except Exception:
            self.close()  # a connection that failed once is opened again for the next call
            raise
        finally:
            deadline.cancel()

    def close(self) -> None:
        standalone, self._standalone, self._proxy = self._standalone, None, None
        if standalone is not None:
            try:
                with eventlet.Timeout(1.0, False):
                    standalone.stop()
            except Exception:  # already broken: nothing to close politely
                pass


class LivePush(DependencyProvider):
    """``self.push`` in a worker: the container's :class:`~upgestao_gateway.push.hub.PushHub`."""

    server = GatewayWebServer()
    access = AccessControl()

    hub: PushHub | None = None
    stream: PushEventsStream | None = None
    messaging: StandaloneMessaging | None = None
    settings: PushSettings | None = None

    def __init__(self, messaging_factory: Callable[[Mapping[str, Any]], Any] | None = None) -> None:
        self._messaging_factory = messaging_factory or StandaloneMessaging

    def setup(self) -> None:
        config = self.container.config
        self.settings = settings = load_push_settings()
        ring = ReplayRing(settings.window_events, settings.window_s)
        self.messaging = self._messaging_factory(config)
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
        return authenticator

    def _spawn(self, fn: Callable[[], None]):
        return self.container.spawn_managed_thread(fn, identifier=f"gateway.push.{fn.__name__}")

    def start(self) -> None:
        self.stream.start(self._spawn)
        self.hub.start(self._spawn)

    def stop(self) -> None:
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
