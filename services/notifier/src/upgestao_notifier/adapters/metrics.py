"""The notifier's own series (issue 18): e-mail attempts by outcome (counted once each attempt's outcome is
committed) and the deliveries by state (read at scrape time, :class:`~upgestao_kernel.state_counts.StateCounts`:
the active states exactly at every scrape, the final ones from a count every 10 minutes plus what settled since).
Label values are the domain's fixed states and outcomes only."""

from __future__ import annotations

from upgestao_kernel.metrics import counter
from upgestao_kernel.state_counts import StateCounts

from ..domain.deliveries import FINAL, HARD_FAILED, SENT, SOFT_FAILED, STATUSES
from .tables import deliveries

INTERRUPTED = "interrupted"  # a claim left by a process that died inside the SMTP transaction, settled by the sweep
ATTEMPT_OUTCOMES = (SENT, SOFT_FAILED, HARD_FAILED, INTERRUPTED)
EMAIL_ATTEMPTS = counter("upgestao_email_attempts_total",
                         "E-mail attempts by outcome: sent, soft_failed (tried again later), hard_failed (never "
                         "again), interrupted (the process died inside the SMTP transaction; settled by the sweep).",
                         ["outcome"])
for _outcome in ATTEMPT_OUTCOMES:
    EMAIL_ATTEMPTS.labels(outcome=_outcome)


def email_attempt(outcome: str) -> None:
    EMAIL_ATTEMPTS.labels(outcome=outcome if outcome in ATTEMPT_OUTCOMES else "other").inc()


delivery_states = StateCounts(
    "upgestao_email_deliveries",
    "E-mail deliveries by state: queued, sending, soft_failed (a retry due), sent, hard_failed, suppressed.",
    state_column=deliveries.c.status, changed_column=deliveries.c.updated_at,
    active=[s for s in STATUSES if s not in FINAL], settled=[s for s in STATUSES if s in FINAL])
