"""The gateway's nameko dependencies: access control and RPC, one per container.

* :class:`AccessControl` holds the container's access control: identity's keys,
  the role map, the revocation list and the access-events stream.
  ``GatewayService.authenticator = JwtAuthentication()`` declares it; every
  route entrypoint shares one :class:`AccessControl` (a nameko shared
  extension), whose ``enable`` builds the container's
  :class:`~upgestao_gateway.access.tokens.JwtAuthenticator` at setup.
  ``start()`` starts reading the access-events stream in a managed green
  thread; ``stop()``/``kill()`` stop it. A service whose authenticator is
  something else (tests) leaves it disabled: no stream, no connection.
* :class:`Access` gives a worker ``self.access`` (readiness, and routes that
  revoke sessions tell the revocation list at once; the web session routes verify the cookie's token
  and derive its CSRF token through ``self.access.web``);
* :class:`Readiness` gives a worker ``self.readiness``: the container's readiness cache (one check per
  few seconds however often ``/readyz`` is asked);
* :class:`Rpc` gives a worker ``self.rpc``: calls to any service, each bounded
  by a deadline (:mod:`upgestao_gateway.adapters.rpc`);
* :class:`RateLimiting` (shared by every route entrypoint) counts each signed-in principal's requests
  against its quota (``GATEWAY_RATE_LIMIT_*``) before its route runs; :class:`IdempotencyInFlight` holds
  the client-given ``Idempotency-Key`` of the writes being carried out (a concurrent retry is a 409);
  both per process;
* ``Config`` (nameko's) and ``Database`` (the kernel's: the gateway's own
  database, where refusals are audited) complete what the service declares,
  so that the service module itself imports no nameko.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider, SharedExtension
from nameko.standalone.rpc import ClusterRpcProxy
from upgestao_kernel.broker_permissions import shares_one_user
from upgestao_kernel.config import load_settings
from upgestao_kernel.context import system_context
from upgestao_kernel.nameko_ext import Database

from ..access.api_keys import ApiKeyAuthenticator
from ..access.events import apply_access_event
from ..access.stream import AccessEventsStream
from ..access.tokens import BROKER_UNREACHABLE, LOADING, JwtAuthenticator
from ..access.web_session import CookieSessionAuthenticator
from ..adapters.identity import IdentityClient
from ..adapters.rpc import RpcClient
from ..domain.in_flight import InFlightKeys
from ..domain.principal import Principal
from ..domain.rate_limits import Decision, RateLimiter
from ..domain.revocations import RevocationList
from ..service_layer.public_keys import PublicKeys
from ..service_layer.readiness import ReadinessCache
from ..service_layer.role_permissions import RolePermissions
from ..settings import (
    AccessSettings,
    RateLimitSettings,
    WebSessionSettings,
    load_access_settings,
    load_rate_limit_settings,
    load_web_session_settings,
)
from .nameko_rpc import DeadlineReplyListener, NamekoTransport, RpcPublisher

__all__ = ["Access", "AccessControl", "Config", "Database", "IdempotencyInFlight", "JwtAuthentication",
           "RateLimiting", "Readiness", "Rpc"]

API_KEY_ROLE_PREFIX = "apikey:"  # an API key's principal has the role apikey:<key id>


def standalone_proxy(config: Mapping[str, Any]) -> Callable[[float], Any]:
    """Opens nameko's standalone RPC proxy (its own connection and reply queue; green under eventlet),
    with the system's context data: identity's keys and role map are fetched outside any worker."""
    config = dict(config)

    def connect(timeout_s: float) -> ClusterRpcProxy:
        return ClusterRpcProxy(config, context_data=system_context().to_context_data(), timeout=timeout_s)

    return connect


class JwtAuthentication:
    """``GatewayService.authenticator``: accept the identity service's access tokens.

    The timings are for tests; production uses the defaults.
    """

    def __init__(
        self,
        *,
        key_refetch_interval_s: float = 5.0,
        permissions_max_age_s: float = 60.0,
        caught_up_wait_s: float = 5.0,
        identity_timeout_s: float = 5.0,
    ) -> None:
        self.key_refetch_interval_s = key_refetch_interval_s
        self.permissions_max_age_s = permissions_max_age_s
        self.caught_up_wait_s = caught_up_wait_s
        self.identity_timeout_s = identity_timeout_s

    def bind(self, access: AccessControl) -> CookieSessionAuthenticator:
        return access.enable(self)


class AccessControl(SharedExtension):
    """Per-container state of the JWT authenticator (see the module docstring)."""

    settings: AccessSettings | None = None
    authenticator: ApiKeyAuthenticator | None = None
    # bearer credentials as ``authenticator`` checks them, else the privacy centre's session cookie (with the
    # CSRF check of its writes): what the routes use
    web: CookieSessionAuthenticator | None = None
    web_settings: WebSessionSettings = WebSessionSettings()
    keys: PublicKeys | None = None
    permissions: RolePermissions | None = None
    revocations: RevocationList | None = None
    stream: AccessEventsStream | None = None

    @property
    def enabled(self) -> bool:
        return self.authenticator is not None

    def enable(self, declaration: JwtAuthentication) -> CookieSessionAuthenticator:
        """Build the authenticator (once); raises ``ConfigError`` on a bad environment."""
        if self.authenticator is None:
            settings = load_access_settings()
            self.web_settings = load_web_session_settings()
            config = self.container.config
            identity = IdentityClient(standalone_proxy(config), declaration.identity_timeout_s)
            self.settings = settings
            self.keys = PublicKeys(identity.public_keys, settings.static_keys, declaration.key_refetch_interval_s)
            self.permissions = RolePermissions(identity.role_permissions, self._spawn,
                                               max_age_s=declaration.permissions_max_age_s)
            self.revocations = RevocationList(settings.revocation_retention_s)
            self.stream = AccessEventsStream(config["AMQP_URI"], settings, self.handle_event)
            self.stream.check_sender = not shares_one_user(os.environ.get("UPGESTAO_ENV", "local"))
            tokens = JwtAuthenticator(self.keys, self.permissions, self, declaration.caught_up_wait_s)
            # API keys (issue 15) are exchanged with identity for tokens; every other bearer is a JWT
            self.authenticator = ApiKeyAuthenticator(tokens, identity.exchange_api_key, self,
                                                     declaration.caught_up_wait_s)
            self.web = CookieSessionAuthenticator(self.authenticator, tokens.principal_of,
                                                  lambda: self.web_settings.key)
        return self.web

    def _spawn(self, fn: Callable[[], None]):
        return self.container.spawn_managed_thread(fn, identifier=f"gateway.access.{fn.__name__}")

    # -- nameko life cycle

    def start(self) -> None:
        if self.stream is not None:
            self.stream.start(self._spawn)

    def stop(self) -> None:
        if self.stream is not None:
            self.stream.stop()

    def kill(self) -> None:
        self.stop()

    # -- the revocation view (JwtAuthenticator's RevocationView)

    def wait_current(self, timeout_s: float) -> bool:
        return self.stream is not None and self.stream.wait_current(timeout_s)

    def is_revoked(self, session_id: str) -> bool:
        return self.revocations is not None and self.revocations.is_revoked(session_id)

    def stale_reason(self) -> str:
        """Why the view is not current: the broker is unreachable, or it is still being read."""
        if self.stream is not None and self.stream.broker_unreachable:
            return BROKER_UNREACHABLE
        return LOADING

    def revoked_here(self, session_ids) -> None:
        """Sessions this gateway just had identity revoke: refused here at once, before the
        event reaches the stream (other replicas learn them from it)."""
        if self.revocations is None:
            return
        for session_id in session_ids or ():
            if isinstance(session_id, str) and session_id:
                self.revocations.revoke(session_id)
                if self.authenticator is not None:  # an API key's id: its cached token goes too
                    self.authenticator.forget_key(session_id)

    def expect_current(self, timeout_s: float) -> None:
        """Readiness: raises unless the access-events view is current."""
        if not self.wait_current(timeout_s):
            raise RuntimeError(f"access events not read up to date: {self.stale_reason()}")

    # -- events

    def handle_event(self, body: Mapping[str, Any]) -> None:
        apply_access_event(body, self.revocations, self.permissions)


class Access(DependencyProvider):
    """``self.access`` in a worker: the container's :class:`AccessControl` (readiness)."""

    control = AccessControl()

    def get_dependency(self, worker_ctx) -> AccessControl:
        return self.control


class Readiness(DependencyProvider):
    """``self.readiness``: the container's :class:`ReadinessCache`, its answers reused for the service's
    ``readiness_max_age_s`` (2 s by default)."""

    cache: ReadinessCache | None = None

    def setup(self) -> None:
        self.cache = ReadinessCache(float(getattr(self.container.service_cls, "readiness_max_age_s", 2.0)))

    def get_dependency(self, worker_ctx) -> ReadinessCache:
        return self.cache


class Rpc(DependencyProvider):
    """``self.rpc``: calls to any service, each bounded by a deadline.

    The default deadline is ``UPGESTAO_RPC_TIMEOUT_S``, the retry budget of keyed calls
    ``UPGESTAO_RPC_RETRY_BUDGET_S`` (kernel settings).
    """

    reply_listener = DeadlineReplyListener()

    def __init__(self, timeout_s: float | None = None, retry_budget_s: float | None = None) -> None:
        self.timeout_s = timeout_s
        self.retry_budget_s = retry_budget_s

    def setup(self) -> None:
        settings = load_settings(self.container.service_name)
        if self.timeout_s is None:
            self.timeout_s = float(settings.rpc_timeout_s)
        if self.retry_budget_s is None:
            self.retry_budget_s = float(settings.rpc_retry_budget_s)
        self.publisher = RpcPublisher(self.container.config)

    def get_dependency(self, worker_ctx) -> RpcClient:
        return RpcClient(worker_ctx, NamekoTransport(worker_ctx, self.reply_listener, self.publisher),
                         self.timeout_s, self.retry_budget_s)


class RateLimiting(SharedExtension):
    """The container's :class:`~upgestao_gateway.domain.rate_limits.RateLimiter` and quotas, read from the
    environment at setup (a wrong value stops the start with a ``ConfigError``)."""

    settings: RateLimitSettings = RateLimitSettings()
    limiter: RateLimiter | None = None

    def setup(self) -> None:
        self.settings = load_rate_limit_settings()
        self.limiter = RateLimiter()

    def check(self, principal: Principal) -> Decision | None:
        """Count one request of ``principal``; None when its kind is not limited."""
        api_key = principal.role.startswith(API_KEY_ROLE_PREFIX)
        quota = self.settings.api_key if api_key else self.settings.user
        if quota is None or self.limiter is None:
            return None
        return self.limiter.check(("key:" if api_key else "user:") + principal.actor_id, quota)


class IdempotencyInFlight(SharedExtension):
    """The container's :class:`~upgestao_gateway.domain.in_flight.InFlightKeys`."""

    keys: InFlightKeys

    def setup(self) -> None:
        self.keys = InFlightKeys()
