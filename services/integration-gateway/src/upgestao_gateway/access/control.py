"""The gateway's access control, one per container: keys, role map, revocations.

``GatewayService.authenticator = JwtAuthentication()`` declares it; every
route entrypoint shares one :class:`AccessControl` (a nameko shared
extension), whose ``enable`` builds the container's :class:`JwtAuthenticator`
at setup. ``start()`` starts reading the access-events stream in a managed
green thread; ``stop()``/``kill()`` stop it. A service whose authenticator is
something else (tests) leaves it disabled: no stream, no connection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from nameko.extensions import DependencyProvider, SharedExtension
from upgestao_kernel.logging import get_logger

from .identity import IdentityClient
from .keys import PublicKeys
from .permissions import RolePermissions
from .revocations import RevocationList
from .settings import AccessSettings, load_access_settings
from .stream import ROLE_PERMISSIONS_CHANGED, SESSION_REVOKED, AccessEventsStream
from .tokens import BROKER_UNREACHABLE, LOADING, JwtAuthenticator

log = get_logger(__name__)


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

    def bind(self, access: AccessControl) -> JwtAuthenticator:
        return access.enable(self)


class AccessControl(SharedExtension):
    """Per-container state of the JWT authenticator (see the module docstring)."""

    settings: AccessSettings | None = None
    authenticator: JwtAuthenticator | None = None
    keys: PublicKeys | None = None
    permissions: RolePermissions | None = None
    revocations: RevocationList | None = None
    stream: AccessEventsStream | None = None

    @property
    def enabled(self) -> bool:
        return self.authenticator is not None

    def enable(self, declaration: JwtAuthentication) -> JwtAuthenticator:
        """Build the authenticator (once); raises ``ConfigError`` on a bad environment."""
        if self.authenticator is None:
            settings = load_access_settings()
            config = self.container.config
            identity = IdentityClient(config, declaration.identity_timeout_s)
            self.settings = settings
            self.keys = PublicKeys(identity.public_keys, settings.static_keys, declaration.key_refetch_interval_s)
            self.permissions = RolePermissions(identity.role_permissions, self._spawn,
                                               max_age_s=declaration.permissions_max_age_s)
            self.revocations = RevocationList(settings.revocation_retention_s)
            self.stream = AccessEventsStream(config["AMQP_URI"], settings, self.handle_event)
            self.authenticator = JwtAuthenticator(self.keys, self.permissions, self, declaration.caught_up_wait_s)
        return self.authenticator

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

    def expect_current(self, timeout_s: float) -> None:
        """Readiness: raises unless the access-events view is current."""
        if not self.wait_current(timeout_s):
            raise RuntimeError(f"access events not read up to date: {self.stale_reason()}")

    # -- events

    def handle_event(self, body: Mapping[str, Any]) -> None:
        event_type = body.get("type")
        data = body.get("data") if isinstance(body.get("data"), Mapping) else {}
        if event_type == SESSION_REVOKED:
            session_id = data.get("session_id")
            if not isinstance(session_id, str) or not session_id:
                log.warning("access.event_invalid", type=event_type, event_id=body.get("event_id"))
                return
            if self.revocations.revoke(session_id, _epoch(body.get("occurred_at"))):
                log.info("access.session_revoked", session_id=session_id, reason=data.get("reason"))
        elif event_type == ROLE_PERMISSIONS_CHANGED:
            log.info("access.role_permissions_changed", role=data.get("role"))
            self.permissions.invalidate()


def _epoch(occurred_at: Any) -> float | None:
    """Epoch seconds of an envelope's ``occurred_at``; ``None`` (now) when absent or unreadable."""
    if not isinstance(occurred_at, str):
        return None
    try:
        moment = datetime.fromisoformat(occurred_at)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class Access(DependencyProvider):
    """``self.access`` in a worker: the container's :class:`AccessControl` (readiness)."""

    control = AccessControl()

    def get_dependency(self, worker_ctx) -> AccessControl:
        return self.control
