"""Calls to the identity service from outside any worker (key and role-map fetches).

Each call opens a connection of its own (``connect(timeout_s)``: nameko's
standalone ``ClusterRpcProxy`` in production, given by
:func:`upgestao_gateway.entrypoints.dependencies.standalone_proxy`) and is
bounded by ``timeout_s`` end to end, connection included. These calls are
rare (first need, a key rotation, a role-map change or once a minute, an API key's exchange once per
token lifetime), so a connection per call costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import eventlet
from upgestao_kernel.errors import ServiceError

IDENTITY = "identity"


class IdentityUnavailable(Exception):
    def __init__(self, method: str, reason: str) -> None:
        self.method = method
        self.reason = reason
        super().__init__(f"{IDENTITY}.{method}: {reason}")


class IdentityClient:
    def __init__(self, connect: Callable[[float], AbstractContextManager[Any]], timeout_s: float = 5.0) -> None:
        self._connect = connect
        self.timeout_s = timeout_s

    def call(self, method: str, *args: Any) -> Any:
        """``identity.<method>(*args)``; raises :class:`IdentityUnavailable` on any failure but identity's own
        answer (a :class:`ServiceError`, raised as it is)."""
        deadline = eventlet.Timeout(self.timeout_s)
        try:
            with self._connect(self.timeout_s) as proxy:
                return getattr(getattr(proxy, IDENTITY), method)(*args)
        except ServiceError:
            raise
        except eventlet.Timeout as exc:
            if exc is not deadline:
                raise
            raise IdentityUnavailable(method, f"no reply within {self.timeout_s}s") from None
        except Exception as exc:  # unknown service, broker down, remote error: all mean "not now"
            raise IdentityUnavailable(method, type(exc).__name__) from None
        finally:
            deadline.cancel()

    def public_keys(self) -> Any:
        return self.call("public_keys")

    def role_permissions(self) -> Any:
        return self.call("role_permissions")

    def exchange_api_key(self, key: str) -> Any:
        """An access token for an API key's principal (issue 15): one call per key and token lifetime."""
        return self.call("exchange_api_key", key)
