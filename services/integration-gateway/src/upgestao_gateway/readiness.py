"""Readiness checks, run concurrently, each bounded by a timeout."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import eventlet
from eventlet.greenpool import GreenPool
from kombu import Connection
from upgestao_kernel.logging import get_logger

log = get_logger(__name__)

OK = "ok"
DOWN = "down"
SKIPPED = "skipped"  # not checked: it needs something that is down


def run_checks(checks: Mapping[str, Callable[[], object]], timeout_s: float) -> dict[str, str]:
    """``{name: "ok" | "down"}``; why a check failed goes to the logs only."""

    def run(name: str, check: Callable[[], object]) -> tuple[str, str]:
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


def check_broker(amqp_uri: str, timeout_s: float) -> None:
    """Open (and close) one AMQP connection: one attempt, so a refusing broker is down at once
    (kombu's ``connect()`` would retry after 2 s)."""
    with Connection(amqp_uri, connect_timeout=timeout_s) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, interval_max=0,
                                     timeout=timeout_s)


def expect_healthy(answer: object) -> None:
    if not isinstance(answer, Mapping) or answer.get("status") != OK:
        raise RuntimeError("unhealthy")
