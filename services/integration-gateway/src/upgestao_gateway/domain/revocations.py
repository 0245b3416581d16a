"""Revoked sessions, kept in memory until their tokens must have expired.

A session revoked at ``t`` cannot have a token valid after ``t + TTL``
(plus the verification leeway): it is remembered until
``t + retention_s``, then forgotten. The gateway passes the longest lifetime
identity may ever issue (``upgestao_kernel.limits.MAX_ACCESS_TOKEN_TTL_S``)
+ 60 s, not the lifetime it is told identity uses today: a shorter
retention would let a revoked token in again before it expires. Memory is
bounded by the revocations of one such lifetime.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable


class RevocationList:
    def __init__(self, retention_s: float, clock: Callable[[], float] = time.time) -> None:
        self.retention_s = retention_s
        self._clock = clock
        self._forget_at: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []  # heap of (forget_at, session_id)

    def revoke(self, session_id: str, revoked_at: float | None = None) -> bool:
        """Remember ``session_id`` as revoked (at ``revoked_at``, epoch seconds; now by default).

        Returns False when the revocation is already too old to matter.
        """
        now = self._clock()
        forget_at = (now if revoked_at is None else revoked_at) + self.retention_s
        self._prune(now)
        if forget_at <= now:
            return False
        if forget_at > self._forget_at.get(session_id, 0.0):
            self._forget_at[session_id] = forget_at
            heapq.heappush(self._expiry, (forget_at, session_id))
        return True

    def is_revoked(self, session_id: str) -> bool:
        forget_at = self._forget_at.get(session_id)
        if forget_at is None:
            return False
        if forget_at <= self._clock():
            self._prune(self._clock())
            return False
        return True

    def __len__(self) -> int:
        self._prune(self._clock())
        return len(self._forget_at)

    def _prune(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            forget_at, session_id = heapq.heappop(self._expiry)
            if self._forget_at.get(session_id) == forget_at:
                del self._forget_at[session_id]
