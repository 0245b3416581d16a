"""``RolePermissions``: which permissions a role grants, asked of identity and cached.

Roles are identity's data; a service checks a permission again after the
gateway (defence in depth): privacy ``audit.read``, the notifier ``notifications.read``.
The answer is cached ``CACHE_S`` seconds per process; when identity cannot answer, the caller
gets 503 (never a guess). An API key's role (``apikey:<id>``, issue 15) the cached map does not know (a
key issued a moment ago) makes the map be fetched once more, unless a fetch started since the call began
(which knows every role whose token existed then); concurrent calls share that fetch.
"""

from __future__ import annotations

import time

from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider
from nameko.standalone.rpc import ClusterRpcProxy

from ..errors import ServiceError
from ..logging import get_logger

log = get_logger(__name__)

CACHE_S = 5.0
API_KEY_ROLE_PREFIX = "apikey:"  # identity's synthetic roles of API keys' principals (issue 15)
TIMEOUT_S = 5.0


class RolePermissions(DependencyProvider):
    def setup(self) -> None:
        self._lock = Semaphore()
        self._roles: dict[str, frozenset[str]] = {}
        self._expires = 0.0
        self._fetched_at = float("-inf")  # when the fetch of the cached map started

    def _fetch(self) -> dict[str, frozenset[str]]:
        with ClusterRpcProxy(self.container.config, timeout=TIMEOUT_S) as cluster:
            document = cluster.identity.role_permissions()
        return {name: frozenset(perms) for name, perms in document["roles"].items()}

    def permissions_of(self, role: str | None) -> frozenset[str]:
        asked_at = time.monotonic()
        if asked_at >= self._expires:
            with self._lock:
                if time.monotonic() >= self._expires:
                    self._refresh()
        role = role or ""
        if role.startswith(API_KEY_ROLE_PREFIX) and role not in self._roles:  # a key newer than the map: once more
            with self._lock:
                if role not in self._roles and self._fetched_at < asked_at:
                    self._refresh()
        return self._roles.get(role, frozenset())

    def _refresh(self) -> None:
        started = time.monotonic()
        try:
            self._roles = self._fetch()
        except Exception as exc:  # noqa: BLE001 - identity away or too slow
            log.warning("role_permissions_unavailable", service=self.container.service_name,
                        error=type(exc).__name__)
            raise ServiceError("service-unavailable", "Permissions cannot be checked right now.",
                               503) from None
        self._fetched_at = started
        self._expires = time.monotonic() + CACHE_S

    def get_dependency(self, worker_ctx) -> RolePermissions:
        return self
