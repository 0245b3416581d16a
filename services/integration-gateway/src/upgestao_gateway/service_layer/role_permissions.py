"""What each role may do: the identity service's map, cached by the gateway.

``identity.role_permissions()`` answers ``{"roles": {"admin": ["users.read",
...], ...}}``. The map is fetched at first need and kept; it is refetched

* when ``identity.role_permissions_changed.v1`` arrives (:meth:`invalidate`):
  requests then wait for the new map (bounded by the RPC deadline), so a
  withdrawn permission stops working at once;
* when it is older than ``max_age_s``: refreshed in the background while the
  cached map keeps serving.

A role absent from the map has no permissions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from upgestao_kernel.logging import get_logger

from ..domain.permissions import RoleMap, parse_role_permissions

log = get_logger(__name__)
API_KEY_ROLE_PREFIX = "apikey:"  # identity's synthetic roles of API keys (issue 15): one per usable key


class PermissionsUnavailable(Exception):
    """No role map is known and identity cannot be asked now."""


class RolePermissions:
    """``of(role)``: the permissions of a role, from a cached map.

    ``spawn(fn)`` starts a green thread and returns it (the container's
    managed threads, so a stopping gateway kills a refresh in flight);
    ``fetch()`` is the identity RPC.
    """

    def __init__(
        self,
        fetch: Callable[[], Any],
        spawn: Callable[[Callable[[], None]], Any],
        max_age_s: float = 60.0,
        retry_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._spawn = spawn
        self.max_age_s = max_age_s
        self.retry_s = retry_s
        self._clock = clock
        self._roles: RoleMap | None = None
        self._loaded_at = 0.0
        self._generation = 0  # bumped by invalidate()
        self._loaded_generation = 0
        self._failed_at: float | None = None
        self._inflight = None

    def of(self, role: str) -> frozenset[str]:
        if self._roles is None or self._invalidated():
            if not self._failed_recently():
                self._start_refresh().wait()
            if self._roles is None:
                raise PermissionsUnavailable("the role permissions cannot be fetched")
        elif self._clock() - self._loaded_at >= self.max_age_s and not self._failed_recently():
            self._start_refresh()
        return self._roles.get(role, frozenset())

    def invalidate(self) -> None:
        """The map changed at identity: fetch it again now, and make requests wait for it.

        Before the first fetch (events replayed at start) there is nothing to refresh.
        """
        self._generation += 1
        if self._roles is not None:
            self._start_refresh()

    def _invalidated(self) -> bool:
        return self._loaded_generation != self._generation

    def _failed_recently(self) -> bool:
        return self._failed_at is not None and self._clock() - self._failed_at < self.retry_s

    def _start_refresh(self):
        if self._inflight is None:
            self._inflight = self._spawn(self._refresh)
        return self._inflight

    def _refresh(self) -> None:
        """Never raises (a managed thread that raises kills the container)."""
        generation = self._generation
        try:
            roles = parse_role_permissions(self._fetch())
        except Exception as exc:
            self._failed_at = self._clock()
            log.warning("access.role_permissions_unavailable", error=type(exc).__name__,
                        reason=getattr(exc, "reason", "") or str(exc)[:200])
        else:
            self._roles = roles
            self._loaded_at = self._clock()
            self._loaded_generation = generation
            self._failed_at = None
            keys = sum(1 for name in roles if name.startswith(API_KEY_ROLE_PREFIX))
            log.info("access.role_permissions_loaded", api_keys=keys,  # API keys' roles counted, not listed
                     roles=sorted(name for name in roles if not name.startswith(API_KEY_ROLE_PREFIX)))
        finally:
            self._inflight = None
