"""Readiness: which of the gateway's dependencies answer now.

Checks run concurrently, each bounded by a timeout; why one failed goes to
the logs only. The broker is checked first, and alone: every other check
but the database goes through it, so without it they could only wait out
their timeouts (a stopped broker refuses at once: so does readiness).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import eventlet
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
