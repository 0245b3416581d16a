"""The integrations service's own series (issue 18): webhook attempts by outcome (counted once each attempt's
outcome is committed) and the webhook messages by state (read at scrape time,
:class:`~upgestao_kernel.state_counts.StateCounts`). ``failed`` is counted as an active state, exactly at
every scrape: a failed message may be retried (or resent) at any later time; ``succeeded``, ``aborted`` and
``canceled`` come from a count every 10 minutes plus what settled since (a resend of one of them is counted
twice until the next count). Label values are the domain's fixed states and outcomes only."""

from __future__ import annotations

from upgestao_kernel.metrics import counter
from upgestao_kernel.state_counts import StateCounts

from ..domain.messages import ABORTED, CANCELED, DELIVERING, FAILED, OUTCOMES, PENDING, SUCCEEDED
from .tables import webhook_messages

WEBHOOK_ATTEMPTS = counter("upgestao_webhook_attempts_total",
                           "Webhook attempts by outcome: succeeded, failed (an HTTP error answer), aborted (the "
                           "receiver asked to stop), timeout, refused (the address not allowed), error (no answer).",
                           ["outcome"])
for _outcome in OUTCOMES:
    WEBHOOK_ATTEMPTS.labels(outcome=_outcome)


def webhook_attempt(outcome: str) -> None:
    WEBHOOK_ATTEMPTS.labels(outcome=outcome if outcome in OUTCOMES else "other").inc()


message_states = StateCounts(
    "upgestao_webhook_messages",
    "Webhook messages by state: pending, delivering, failed (retried later or for good), succeeded, aborted, "
    "canceled.",
    state_column=webhook_messages.c.status, changed_column=webhook_messages.c.updated_at,
    active=[PENDING, DELIVERING, FAILED], settled=[SUCCEEDED, ABORTED, CANCELED])
