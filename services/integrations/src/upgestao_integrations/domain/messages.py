"""A webhook message: one webhook to one integration, from queued to a final state.

States: ``pending`` (queued, its attempt due at ``next_attempt_at``), ``delivering`` (claimed for an attempt:
the POST runs after the claim commits), ``succeeded``, ``failed`` (``next_attempt_at`` set: a retry is
scheduled; None: failed for good), ``aborted`` (the receiver said ``webhook-delivery: abort-message``) and
``canceled`` (its data gone, or the person erased). A resend queues a failed, aborted or succeeded message
again, with the same id (the Standard Webhooks ``webhook-id``). Every attempt is kept: its number, times,
status code, outcome, duration and a short error, never the body.

A claim is a lease, not an event: the claiming transaction marks the message's row ``delivering`` (its
``claimed_at`` and attempt count) only where it is still ``pending`` or ``failed``, and on PostgreSQL holds the
row locked from the due query on, so two dispatchers (two replicas) never both attempt one message. The attempt
enters the log once, when it ends: :class:`WebhookAttemptFinished` carries its number, start and end, and is
appended at the version the claim read (a resend or cancel in between makes it a conflict, not a second
truth). A lease adds nothing to the message's history: a claim left by a process that died is settled as a
failed attempt and retried (at least once); a read model rebuilt from the log shows the message as it was
before the claim. Logs written when claims were events (:class:`WebhookAttemptStarted`) replay as before.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from upgestao_kernel.events import Aggregate

from .events import (
    WebhookAttemptFinished,
    WebhookMessageCanceled,
    WebhookMessageQueued,
    WebhookMessageRequeued,
)

PENDING = "pending"
DELIVERING = "delivering"
SUCCEEDED = "succeeded"
FAILED = "failed"
ABORTED = "aborted"
CANCELED = "canceled"
STATUSES = (PENDING, DELIVERING, SUCCEEDED, FAILED, ABORTED, CANCELED)
OUTCOMES = ("succeeded", "failed", "aborted", "timeout", "refused", "error")
RESENDABLE = frozenset({FAILED, ABORTED, SUCCEEDED})
_NAMESPACE = uuid.UUID("0f6a3c52-9d1e-4b7a-8e25-3c9d7b1a4e60")
ERROR_CHARS = 300


def message_id_for(event_id: str, integration_id: str) -> str:
    """The same (event, integration) is always the same message (a redelivered event finds it queued)."""
    return "msg_" + uuid.uuid5(_NAMESPACE, f"{event_id}:{integration_id}").hex


class MessageRefused(Exception):
    """The transition is not possible from the message's state (another worker got there first)."""


class WebhookMessage(Aggregate):
    stream_type = "webhook_message"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.status: str | None = None
        self.attempts = 0
        self.integration_id = ""
        self.next_attempt_at: str | None = None

    @classmethod
    def queue(cls, *, integration_id: str, event_type: str, event_id: str, source_event_type: str,
              subject_id: str | None, occurred_at: datetime, data: dict[str, Any]) -> WebhookMessage:
        message = cls(message_id_for(event_id, integration_id))
        message.trigger(WebhookMessageQueued(integration_id=integration_id, event_type=event_type, event_id=event_id,
                                             source_event_type=source_event_type, subject_id=subject_id,
                                             occurred_at=occurred_at.isoformat(), refs=dict(data)))
        return message

    @classmethod
    def at(cls, id: str, *, version: int, status: str, attempts: int, integration_id: str,
           next_attempt_at: datetime | None = None) -> WebhookMessage:
        """The message as its read model row holds it (the row keeps the stream's version)."""
        message = cls(id)
        message.version, message.status, message.attempts = version, status, attempts
        message.integration_id = integration_id
        message.next_attempt_at = next_attempt_at.isoformat() if next_attempt_at else None
        return message

    def start_attempt(self) -> int:
        """Take the message for its next attempt (a lease: the caller stores it on the row, see the module's
        docstring); the attempt's number."""
        if self.status not in (PENDING, FAILED):
            raise MessageRefused(self.status)
        self.status, self.attempts, self.next_attempt_at = DELIVERING, self.attempts + 1, None
        return self.attempts

    def finish(self, *, outcome: str, started_at: datetime, finished_at: datetime, status_code: int | None,
               duration_ms: float | None, error: str | None, next_attempt_at: datetime | None,
               shared_fields: list[str] | None = None, shared_subject_id: str | None = None) -> None:
        """The attempt's outcome: succeeded, aborted, or failed (retried at ``next_attempt_at``, or for good)."""
        if self.status != DELIVERING:
            raise MessageRefused(self.status)
        if outcome not in OUTCOMES:
            raise ValueError(outcome)
        status = SUCCEEDED if outcome == "succeeded" else ABORTED if outcome == "aborted" else FAILED
        self.trigger(WebhookAttemptFinished(
            attempt=self.attempts, status=status, outcome=outcome, started_at=started_at.isoformat(),
            finished_at=finished_at.isoformat(), status_code=status_code,
            duration_ms=None if duration_ms is None else round(float(duration_ms), 1),
            error=None if error is None else error[:ERROR_CHARS],
            next_attempt_at=next_attempt_at.isoformat() if status == FAILED and next_attempt_at else None,
            shared_fields=sorted(shared_fields or []) if status == SUCCEEDED else [],
            shared_subject_id=shared_subject_id if status == SUCCEEDED and shared_fields else None))

    def cancel(self, reason: str) -> bool:
        """False when already final (nothing to cancel)."""
        if self.status not in (PENDING, FAILED, DELIVERING) or (self.status == FAILED and not self.next_attempt_at):
            return False
        self.trigger(WebhookMessageCanceled(reason=reason[:ERROR_CHARS]))
        return True

    def requeue(self, reason: str) -> None:
        if self.status not in RESENDABLE:
            raise MessageRefused(self.status)
        self.trigger(WebhookMessageRequeued(reason=reason))

    # -- state from events

    def when_webhook_message_queued(self, integration_id, **_) -> None:
        self.status, self.integration_id = PENDING, integration_id

    def when_webhook_attempt_started(self, attempt, started_at) -> None:  # logs from before claims were leases
        self.status, self.attempts, self.next_attempt_at = DELIVERING, attempt, None

    def when_webhook_attempt_finished(self, attempt, status, next_attempt_at=None, **_) -> None:
        self.status, self.attempts, self.next_attempt_at = status, attempt, next_attempt_at

    def when_webhook_message_canceled(self, reason) -> None:
        self.status, self.next_attempt_at = CANCELED, None

    def when_webhook_message_requeued(self, reason) -> None:
        self.status, self.next_attempt_at = PENDING, None
