"""When to try a webhook again, and when to give up on an endpoint.

The schedule is Svix's: the first attempt at once, then after the n-th failure attempt n+1 waits
``RETRY_DELAYS_S[n]`` (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), each delay jittered by ±20 % so that
endpoints that failed together do not all come back at once; after the 8th failure the message has failed for
good. A ``Retry-After`` (seconds or an HTTP-date) is honoured as a lower bound (at most 10 h).

:func:`classify` reads one attempt's answer: a 2xx succeeded; ``410 Gone`` disables the endpoint at once;
a non-2xx answer carrying ``webhook-delivery: abort-message`` stops retrying that message; 429/502/503/504
slow the whole endpoint down (:class:`EndpointHealth`); anything else (a 3xx included: redirects are never
followed) is a failure. :class:`EndpointHealth` disables an endpoint failing for 5 days with its failures
spread over at least 12 h and no success in between.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal

RETRY_DELAYS_S: tuple[int, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(RETRY_DELAYS_S)
JITTER = 0.2
MAX_RETRY_AFTER_S = 10 * 3600.0

THROTTLING_STATUSES = frozenset({429, 502, 503, 504})
GONE_STATUS = 410
ABORT_HEADER = "webhook-delivery"
ABORT_VALUE = "abort-message"

DISABLE_AFTER = timedelta(days=5)
MIN_FAILURE_SPREAD = timedelta(hours=12)
THROTTLE_BASE_S = 1.0
THROTTLE_MAX_S = 60.0

OutcomeKind = Literal["succeeded", "failed", "gone", "aborted", "throttled"]
SUCCEEDED: OutcomeKind = "succeeded"
FAILED: OutcomeKind = "failed"
GONE: OutcomeKind = "gone"
ABORTED: OutcomeKind = "aborted"
THROTTLED: OutcomeKind = "throttled"
FINAL_KINDS = frozenset({SUCCEEDED, GONE, ABORTED})


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    retry_after_s: float | None = None

    @property
    def retryable(self) -> bool:
        return self.kind not in FINAL_KINDS


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP-date); None when absent or bad.

    A date in the past is 0; the result is capped at 10 h (an endpoint cannot park a message for days)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return min(float(int(text)), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT; "-0000" parses naive
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER_S)


def classify(status_code: int | None, headers: Mapping[str, str], error: str | None,
             now: datetime | None = None) -> Outcome:
    """What one attempt's answer means (``status_code`` None: no answer, ``error`` says why)."""
    if status_code is None:
        return Outcome(FAILED)
    if 200 <= status_code < 300:
        return Outcome(SUCCEEDED)
    if status_code == GONE_STATUS:
        return Outcome(GONE)
    abort = _header(headers, ABORT_HEADER)
    if abort is not None and abort.strip().lower() == ABORT_VALUE:
        return Outcome(ABORTED)
    retry_after = parse_retry_after(_header(headers, "retry-after"), now)
    if status_code in THROTTLING_STATUSES:
        return Outcome(THROTTLED, retry_after)
    return Outcome(FAILED, retry_after)


def next_attempt_at(attempt_number: int, now: datetime, outcome: Outcome, rng: random.Random) -> datetime | None:
    """When to make attempt ``attempt_number + 1`` after attempt ``attempt_number`` ended in ``outcome``.

    None when there is none: the outcome is final (succeeded, gone, aborted) or every attempt is spent."""
    if attempt_number < 1:
        raise ValueError("attempts are numbered from 1")
    if not outcome.retryable or attempt_number >= MAX_ATTEMPTS:
        return None
    delay = RETRY_DELAYS_S[attempt_number] * rng.uniform(1 - JITTER, 1 + JITTER)
    if outcome.retry_after_s is not None:
        delay = max(delay, min(outcome.retry_after_s, MAX_RETRY_AFTER_S))
    return now + timedelta(seconds=delay)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _parse(text: Any) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass
class EndpointHealth:
    """One endpoint's run of failures (since its last success) and its throttle; pure, serialisable."""

    failing_since: datetime | None = None
    last_failure_at: datetime | None = None
    failures: int = 0
    last_success_at: datetime | None = None
    throttle_level: int = 0
    throttled_until: datetime | None = None

    def record_success(self, now: datetime) -> None:
        self.failing_since = None
        self.last_failure_at = None
        self.failures = 0
        self.last_success_at = now
        self.throttle_level = 0
        self.throttled_until = None

    def record_failure(self, now: datetime) -> None:
        if self.failing_since is None:
            self.failing_since = now
        self.last_failure_at = now if self.last_failure_at is None else max(self.last_failure_at, now)
        self.failures += 1

    def record_throttle(self, now: datetime, retry_after_s: float | None = None) -> datetime:
        """A 429/502/503/504: hold every attempt to this endpoint back (1 s, 2 s, 4 s… up to 60 s, or the
        ``Retry-After``, at most 10 h). Returns the time until which the endpoint is held."""
        self.throttle_level += 1
        if retry_after_s is not None:
            wait = min(max(retry_after_s, 0.0), MAX_RETRY_AFTER_S)
        else:
            wait = min(THROTTLE_BASE_S * 2 ** min(self.throttle_level - 1, 16), THROTTLE_MAX_S)
        until = now + timedelta(seconds=wait)
        self.throttled_until = until if self.throttled_until is None else max(self.throttled_until, until)
        return self.throttled_until

    def record(self, now: datetime, outcome: Outcome) -> None:
        """Account for one attempt's outcome (an abort is the receiver's choice: neither success nor failure;
        ``gone`` disables the endpoint, which the caller does)."""
        if outcome.kind == SUCCEEDED:
            self.record_success(now)
        elif outcome.kind == THROTTLED:
            self.record_failure(now)
            self.record_throttle(now, outcome.retry_after_s)
        elif outcome.kind == FAILED:
            self.record_failure(now)

    def is_throttled(self, now: datetime) -> bool:
        return self.throttled_until is not None and now < self.throttled_until

    def should_disable(self, now: datetime) -> bool:
        """Failing for 5 days or more, with failures spread over 12 h or more, and no success since."""
        if self.failing_since is None or self.last_failure_at is None:
            return False
        return (now - self.failing_since >= DISABLE_AFTER
                and self.last_failure_at - self.failing_since >= MIN_FAILURE_SPREAD)

    def to_dict(self) -> dict[str, Any]:
        return {
            "failing_since": _iso(self.failing_since),
            "last_failure_at": _iso(self.last_failure_at),
            "failures": self.failures,
            "last_success_at": _iso(self.last_success_at),
            "throttle_level": self.throttle_level,
            "throttled_until": _iso(self.throttled_until),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> EndpointHealth:
        raw = raw or {}
        return cls(
            failing_since=_parse(raw.get("failing_since")),
            last_failure_at=_parse(raw.get("last_failure_at")),
            failures=int(raw.get("failures") or 0),
            last_success_at=_parse(raw.get("last_success_at")),
            throttle_level=int(raw.get("throttle_level") or 0),
            throttled_until=_parse(raw.get("throttled_until")),
        )
