"""Readiness: which of the gateway's dependencies answer now.

Checks run concurrently, each bounded by a timeout; why one failed goes to
the logs only. The broker is checked first, and alone: every other check
but the database goes through it, so without it they could only wait out
their timeouts (a stopped broker refuses at once: so does readiness).

A check costs a broker connection and an RPC to each service, and
``/readyz`` is public: :class:`ReadinessCache` makes a flood of it cost
nothing (issue 11, finding 12). An answer is reused while younger than
``max_age_s``, and one check at a time runs (single flight): whoever asks
while it runs waits for its result instead of starting another.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import eventlet
from eventlet.event import Event
from eventlet.greenpool import GreenPool
from upgestao_kernel.logging import get_logger

log = get_logger(__name__)

OK = "ok"
DOWN = "down"
SKIPPED = "skipped"  # not checked: it needs something that is down

Check = Callable[[], object]


def run_checks(checks: Mapping[str, Check], timeout_s: float) -> dict[str, str]:
    """``{name: "ok" | "down"}``; why a check failed goes to the logs only."""

    def run(name: str, check: Check) -> tuple[str, str]:
        try:
            with eventlet.Timeout(timeout_s):
                check()
            return name, OK
        except eventlet.Timeout:
            reason = f"no answer within {timeout_s}s"
        except Exception as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
        log.warning("readiness.check_failed", check=name, reason=reason)
        return name, DOWN

    pool = GreenPool(max(1, len(checks)))
    return dict(pool.starmap(run, checks.items()))


def assess(broker: Check, database: Check, through_broker: Mapping[str, Check], timeout_s: float) -> dict[str, str]:
    """The state of each dependency: ``broker`` first; when it is down, only ``database`` is checked
    and the checks that go through the broker are ``skipped``."""
    results = run_checks({"broker": broker}, timeout_s)
    checks = {"database": database, **through_broker}
    if results["broker"] == DOWN:
        results.update(run_checks({"database": database}, timeout_s))
        results.update({name: SKIPPED for name in checks if name not in results})
    else:
        results.update(run_checks(checks, timeout_s))
    return results


def unavailable(results: Mapping[str, str]) -> list[str]:
    """The dependencies that are down, by name."""
    return sorted(name for name, state in results.items() if state == DOWN)


def expect_healthy(answer: object) -> None:
    """A service's ``health()`` answer must say ``{"status": "ok"}``."""
    if not isinstance(answer, Mapping) or answer.get("status") != OK:
        raise RuntimeError("unhealthy")


@dataclass(frozen=True)
class Report:
    """One readiness check: each dependency's state, and the broker's catch-all queue depth (None:
    unknown). ``checked_at`` is the cache's clock."""

    checks: Mapping[str, str]
    unrouted_depth: int | None = None
    checked_at: float = 0.0
    down: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.down


class ReadinessCache:
    """The last :class:`Report`, reused while younger than ``max_age_s``; one check in flight at a time."""

    def __init__(self, max_age_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self._clock = clock
        self._report: Report | None = None
        self._in_flight: Event | None = None
        self.checks_run = 0  # how many checks were actually made (a flood must not raise it)

    def get(self, check: Callable[[], Report], fresh: bool = False) -> Report:
        """The cached report, or the one ``check()`` makes now (``fresh``: never the cached one; a check
        already in flight is shared all the same)."""
        report = self._report
        if not fresh and report is not None and self._clock() - report.checked_at < self.max_age_s:
            return report
        if self._in_flight is not None:
            return self._in_flight.wait()
        started = self._clock()
        self._in_flight = in_flight = Event()
        try:
            self.checks_run += 1
            made = check()
            report = Report(made.checks, made.unrouted_depth, started, unavailable(made.checks))
        except BaseException as exc:
            self._in_flight = None
            in_flight.send_exception(exc)
            raise
        self._report = report
        self._in_flight = None
        in_flight.send(report)
        return report
