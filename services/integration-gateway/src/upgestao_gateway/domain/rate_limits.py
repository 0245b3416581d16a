"""Rate limits per principal: the generic cell rate algorithm (GCRA), one clock injected.

Each principal (a user, an API key) has a :class:`Quota`: ``per_minute`` requests a minute, at most
``burst`` of them at once. GCRA keeps one number per principal, its *theoretical arrival time*
(TAT): the moment its bucket would be full again if it sent nothing more. A request at ``now`` is
allowed when ``max(TAT, now) + interval - now <= burst * interval`` (the bucket holds one more), and
then pushes the TAT on by one interval. It is a token bucket of ``burst`` tokens refilled at
``per_minute``, without a timer or a refill loop.

:meth:`RateLimiter.check` answers a :class:`Decision` whose :meth:`~Decision.headers` are the IETF
draft's separate fields (draft-ietf-httpapi-ratelimit-headers): ``RateLimit-Limit`` the bucket's
size, ``RateLimit-Remaining`` what is left of it after this request, ``RateLimit-Reset`` the seconds
until it is full again; a refused request also gets ``Retry-After``, the seconds until one request is
allowed again. A refused request consumes nothing.

Memory is bounded: a principal whose TAT has passed has a full bucket, which is exactly what a
principal never seen has, so it is forgotten (idle principals are evicted as the limiter is used,
least recently seen first); beyond ``max_principals`` the least recently seen is forgotten even when
its bucket is not full (it gets a full one back: the limiter fails open rather than grow without
bound), counted in :attr:`RateLimiter.evicted_busy`.

One limiter per gateway process: each replica enforces its own quotas (see the gateway's README for
the cluster-wide limit this makes).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

# floating-point slack: 100 requests of 0.01 s must fill a bucket of 100, not refuse the last one
_EPSILON_S = 1e-9
DEFAULT_MAX_PRINCIPALS = 100_000


@dataclass(frozen=True)
class Quota:
    """``per_minute`` requests a minute, at most ``burst`` at once (both at least 1)."""

    per_minute: int
    burst: int

    def __post_init__(self) -> None:
        if self.per_minute < 1 or self.burst < 1:
            raise ValueError(f"a quota needs per_minute >= 1 and burst >= 1, got {self.per_minute}, {self.burst}")

    @property
    def interval_s(self) -> float:
        """The time one request's token takes to come back."""
        return 60.0 / self.per_minute

    @property
    def window_s(self) -> float:
        """The time an empty bucket takes to fill."""
        return self.burst * self.interval_s


@dataclass(frozen=True)
class Decision:
    """One request's answer: allowed or not, and what the client is told."""

    allowed: bool
    limit: int  # the bucket's size (the quota's burst)
    remaining: int  # requests left at once after this one
    reset_s: int  # whole seconds until the bucket is full again
    retry_after_s: int | None = None  # a refused request: whole seconds until one is allowed

    def headers(self) -> dict[str, str]:
        """The IETF draft's ``RateLimit-*`` fields (and ``Retry-After`` when refused)."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class RateLimiter:
    """GCRA over any number of principals (see the module docstring). Not thread-safe: one per process,
    used from green threads, which switch only at I/O."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 max_principals: int = DEFAULT_MAX_PRINCIPALS) -> None:
        if max_principals < 1:
            raise ValueError("max_principals must be at least 1")
        self._clock = clock
        self._max = max_principals
        self._tat: OrderedDict[str, float] = OrderedDict()  # least recently seen first
        self.evicted_busy = 0

    def __len__(self) -> int:
        return len(self._tat)

    def check(self, principal: str, quota: Quota) -> Decision:
        """Count one request of ``principal`` against ``quota``; a refused one is not counted."""
        now = self._clock()
        interval, window = quota.interval_s, quota.window_s
        tat = max(self._tat.get(principal, now), now)
        new_tat = tat + interval
        if new_tat - now > window + _EPSILON_S:
            retry_after = new_tat - window - now
            self._touch(principal, tat, now)
            return Decision(False, quota.burst, 0, _whole_seconds(tat - now), max(1, _whole_seconds(retry_after)))
        self._touch(principal, new_tat, now)
        remaining = math.floor((window - (new_tat - now)) / interval + _EPSILON_S)
        return Decision(True, quota.burst, max(0, min(quota.burst, remaining)), _whole_seconds(new_tat - now))

    def sweep(self) -> int:
        """Forget every principal whose bucket is full again; how many were forgotten."""
        now = self._clock()
        idle = [key for key, tat in self._tat.items() if tat <= now]
        for key in idle:
            del self._tat[key]
        return len(idle)

    def _touch(self, principal: str, tat: float, now: float) -> None:
        self._tat[principal] = tat
        self._tat.move_to_end(principal)
        # the least recently seen first: forget those whose bucket is full again (at most a few per call,
        # each forgotten once), then any beyond the bound
        while self._tat:
            oldest, oldest_tat = next(iter(self._tat.items()))
            if oldest_tat <= now and oldest != principal:
                del self._tat[oldest]
            elif len(self._tat) > self._max:
                del self._tat[oldest]
                self.evicted_busy += 1
            else:
                break


def _whole_seconds(seconds: float) -> int:
    """Seconds rounded up (a client told 0 would come back at once)."""
    return max(0, math.ceil(seconds - _EPSILON_S))
