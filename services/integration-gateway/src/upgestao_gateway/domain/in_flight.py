"""Idempotency keys of the requests this gateway process is carrying out right now.

A client that sends a write again with the same ``Idempotency-Key`` while the first is still running
(a timeout on its side, a retry loop too eager) is answered ``409 idempotency-key-in-use`` with
``Retry-After`` (draft-ietf-httpapi-idempotency-key-header, "concurrent requests") instead of a
second request racing the first down to the service. Only keys the client gave count (a key the
gateway draws is unique); a key is scoped to its caller (``actor_id:key``, the request's
``idempotency_base``), so two callers never block each other.

Per process: two replicas each let one through, and the services' keyed requests
(:mod:`upgestao_kernel.keyed_requests`) still make that one effect -- the loser waits and answers the
winner's reply.
"""

from __future__ import annotations


class InFlightKeys:
    """The set of keys in flight. Not thread-safe: one per process, used from green threads."""

    def __init__(self) -> None:
        self._keys: set[str] = set()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def claim(self, key: str) -> bool:
        """Take ``key``; False when a request holding it is still in flight."""
        if key in self._keys:
            return False
        self._keys.add(key)
        return True

    def release(self, key: str) -> None:
        """The request holding ``key`` is answered."""
        self._keys.discard(key)
