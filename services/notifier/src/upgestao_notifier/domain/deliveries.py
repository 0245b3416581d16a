"""A delivery: one e-mail, for one event, to one recipient, from queued to a final state.

States, as Postal keeps them: ``queued`` (asked for), ``sending`` (claimed for an attempt: the SMTP
transaction runs after the claim commits), ``sent``, ``soft_failed`` (a 4xx or a connection error:
tried again after ``base × factor^(n-1)``, up to ``max_attempts``), ``hard_failed`` (a 5xx, the last
attempt spent, or the notice gone: never again) and ``suppressed`` (the address bounced before).

Exactly once per (event id, recipient): the delivery's id is derived from the pair, so the event
delivered again finds the same stream; a claim is an event appended at the stream's version, so two
workers cannot both attempt it; and a claim left ``sending`` by a process that died inside the SMTP
transaction is settled by :func:`settle_interrupted` (the sink or server says whether it accepted the
Message-ID, else the at-most-once rule: taken as sent, ``confirmed`` false, never sent again).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from upgestao_kernel.events import Aggregate

from .events import (
    DeliveryAttemptStarted,
    DeliveryHardFailed,
    DeliveryQueued,
    DeliverySent,
    DeliverySoftFailed,
    DeliverySuppressed,
)

QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
SOFT_FAILED = "soft_failed"
HARD_FAILED = "hard_failed"
SUPPRESSED = "suppressed"
STATUSES = (QUEUED, SENDING, SENT, SOFT_FAILED, HARD_FAILED, SUPPRESSED)
FINAL = frozenset({SENT, HARD_FAILED, SUPPRESSED})

_NAMESPACE = uuid.UUID("5b0c3f4e-7a61-4d0e-9a55-1c2f6a8e0b12")

NOTICE_GONE = "the notice is no longer available (expired or withdrawn)"
ATTEMPTS_SPENT = "every attempt failed"
INTERRUPTED_UNCONFIRMED = "interrupted during the SMTP transaction: not sent again (at most once)"


def delivery_id_for(event_id: str, recipient_id: str) -> str:
    """The same (event, recipient) is always the same delivery."""
    return str(uuid.uuid5(_NAMESPACE, f"{event_id}:{recipient_id}"))


@dataclass(frozen=True)
class RetryPolicy:
    """Soft failures wait ``base_s × factor^(n-1)`` after the n-th attempt (5 min × 1.3^n), and the
    ``max_attempts``-th failure is final."""

    base_s: float = 300.0
    factor: float = 1.3
    max_attempts: int = 18

    def delay_after(self, attempt: int) -> timedelta:
        return timedelta(seconds=self.base_s * self.factor ** max(attempt - 1, 0))


class DeliveryRefused(Exception):
    """The transition is not possible from the delivery's state (another worker got there first)."""


class Delivery(Aggregate):
    stream_type = "delivery"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.status: str | None = None
        self.attempts = 0
        self.event_id = ""
        self.kind = ""
        self.recipient_id = ""
        self.campaign_id: str | None = None

    @classmethod
    def queue(cls, *, event_id: str, event_type: str, kind: str, source: str, recipient_id: str,
              message_id: str, campaign_id: str | None = None) -> Delivery:
        delivery = cls(delivery_id_for(event_id, recipient_id))
        delivery.trigger(DeliveryQueued(event_id=event_id, event_type=event_type, kind=kind, source=source,
                                        recipient_id=recipient_id, message_id=message_id,
                                        campaign_id=campaign_id))
        return delivery

    @classmethod
    def at(cls, id: str, *, version: int, status: str, attempts: int, event_id: str, kind: str,
           recipient_id: str, campaign_id: str | None) -> Delivery:
        """The delivery as its read model row holds it (a snapshot: the row keeps the stream's version,
        so the next event is appended where the stream stands, or refused as a conflict)."""
        delivery = cls(id)
        delivery.version, delivery.status, delivery.attempts = version, status, attempts
        delivery.event_id, delivery.kind, delivery.recipient_id = event_id, kind, recipient_id
        delivery.campaign_id = campaign_id
        return delivery

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def _ids(self) -> dict:
        return {"event_id": self.event_id, "kind": self.kind, "recipient_id": self.recipient_id,
                "campaign_id": self.campaign_id}

    def start_attempt(self) -> int:
        if self.status not in (QUEUED, SOFT_FAILED):
            raise DeliveryRefused(self.status)
        self.trigger(DeliveryAttemptStarted(attempt=self.attempts + 1))
        return self.attempts

    def sent(self, code: int | None, *, confirmed: bool = True) -> None:
        self._must_be_sending()
        self.trigger(DeliverySent(attempt=self.attempts, code=code, confirmed=confirmed, **self._ids()))

    def failed(self, code: int | None, error: str, *, permanent: bool, policy: RetryPolicy, now: datetime) -> None:
        """A failed attempt: soft (tried again later) unless ``permanent`` or the attempts are spent."""
        self._must_be_sending()
        if permanent or self.attempts >= policy.max_attempts:
            reason = error if permanent else f"{ATTEMPTS_SPENT}: {error}"
            self.trigger(DeliveryHardFailed(attempt=self.attempts, code=code, error=reason[:300], **self._ids()))
        else:
            retry_at = now + policy.delay_after(self.attempts)
            self.trigger(DeliverySoftFailed(attempt=self.attempts, code=code, error=error[:300],
                                            next_attempt_at=retry_at.isoformat()))

    def abandon(self, error: str) -> None:
        """Give up without an SMTP transaction (the notice is gone): final."""
        if self.final:
            raise DeliveryRefused(self.status)
        self.trigger(DeliveryHardFailed(attempt=self.attempts, code=None, error=error, **self._ids()))

    def suppress(self) -> None:
        if self.status != QUEUED:
            raise DeliveryRefused(self.status)
        self.trigger(DeliverySuppressed(**self._ids()))

    def settle_interrupted(self, accepted: bool | None) -> None:
        """A claim whose process died inside the SMTP transaction. ``accepted``: what the sink or server
        says of the Message-ID (True/False), or None when nobody can tell: then at most once, taken as
        sent and flagged unconfirmed. Not accepted is a soft failure like any other (tried again)."""
        self._must_be_sending()
        if accepted is None:
            self.trigger(DeliverySent(attempt=self.attempts, code=None, confirmed=False, **self._ids()))
        elif accepted:
            self.sent(None, confirmed=True)
        else:
            raise ValueError("not accepted: record it with failed()")

    def _must_be_sending(self) -> None:
        if self.status != SENDING:
            raise DeliveryRefused(self.status)

    # -- state from events

    def when_delivery_queued(self, event_id, event_type, kind, source, recipient_id, message_id,
                             campaign_id=None) -> None:
        self.status, self.event_id, self.kind = QUEUED, event_id, kind
        self.recipient_id, self.campaign_id = recipient_id, campaign_id

    def when_delivery_attempt_started(self, attempt) -> None:
        self.status, self.attempts = SENDING, attempt

    def when_delivery_sent(self, **_) -> None:
        self.status = SENT

    def when_delivery_soft_failed(self, **_) -> None:
        self.status = SOFT_FAILED

    def when_delivery_hard_failed(self, **_) -> None:
        self.status = HARD_FAILED

    def when_delivery_suppressed(self, **_) -> None:
        self.status = SUPPRESSED
