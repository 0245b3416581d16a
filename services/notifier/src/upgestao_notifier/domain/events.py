"""The notifier's events, each declared once: what its event log stores and what leaves the service.

A delivery is one e-mail to one recipient for one event (stream ``delivery-<id>``, the id derived
from the event id and the recipient id, so the same pair is always the same stream). Published views
carry ids, the kind and the state: never an address, a name, a token or a body. ``docs/events.md`` is
generated from these declarations (``python scripts/event_catalogue.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from upgestao_kernel.events import DomainEvent


class NotifierEvent(DomainEvent, abstract=True, service="notifier"):
    """An event of the notifier (published on ``notifier.events``)."""


# -- deliveries: stream ``delivery-<id>``


@dataclass(frozen=True)
class DeliveryQueued(NotifierEvent, subject="delivery_id", publishes=False):
    """An e-mail was asked for: one recipient of the notice announced by event ``event_id``. Kept inside
    the notifier (its first attempt follows in the same transaction; the outcomes are published)."""

    event_id: str
    event_type: str
    kind: str
    source: str  # the service that owns the notice (and is asked for its contents)
    recipient_id: str
    message_id: str  # the Message-ID every attempt carries, derived from (event id, recipient id)
    campaign_id: str | None = None


@dataclass(frozen=True)
class DeliveryAttemptStarted(NotifierEvent, subject="delivery_id", publishes=False):
    """The delivery was claimed for attempt ``attempt``: the SMTP transaction starts after this commits."""

    attempt: int


@dataclass(frozen=True)
class DeliverySent(NotifierEvent, subject="delivery_id",
                   publishes=("delivery_id", "event_id", "kind", "campaign_id", "recipient_id", "attempt")):
    """The server accepted the message (``confirmed``), or, after a crash inside the SMTP transaction, it
    is taken as sent under the at-most-once rule (``confirmed`` false: nobody could tell)."""

    attempt: int
    code: int | None
    confirmed: bool
    event_id: str
    kind: str
    recipient_id: str
    campaign_id: str | None = None


@dataclass(frozen=True)
class DeliverySoftFailed(NotifierEvent, subject="delivery_id", publishes=False):
    """A temporary failure (4xx, connection, timeout): tried again at ``next_attempt_at``."""

    attempt: int
    code: int | None
    error: str  # the reply code and a short reason: never the body or the address
    next_attempt_at: str  # ISO 8601


@dataclass(frozen=True)
class DeliveryHardFailed(NotifierEvent, subject="delivery_id",
                         publishes=("delivery_id", "event_id", "kind", "campaign_id", "recipient_id", "code")):
    """A permanent failure (5xx, every attempt spent, the notice gone): not tried again."""

    attempt: int
    code: int | None
    error: str
    event_id: str
    kind: str
    recipient_id: str
    campaign_id: str | None = None


@dataclass(frozen=True)
class DeliverySuppressed(NotifierEvent, subject="delivery_id",
                         publishes=("delivery_id", "event_id", "kind", "campaign_id", "recipient_id")):
    """Not sent: the address bounced permanently before (its keyed hash is on the suppression list)."""

    event_id: str
    kind: str
    recipient_id: str
    campaign_id: str | None = None


# -- the suppression list: stream ``suppression-<address hash>``


@dataclass(frozen=True)
class AddressSuppressed(NotifierEvent, subject="address_hash", publishes=False):
    """A server refused an address permanently; later mail to it is not sent (except security mail).
    The address is kept only as a keyed hash (HMAC-SHA256 under the notifier's suppression key)."""

    delivery_id: str
    code: int | None


# -- notices that could not be fetched: stream ``notice-<event id>``


@dataclass(frozen=True)
class NoticeUnavailable(NotifierEvent, subject="event_id", publishes=False):
    """The owning service no longer holds the notice the event announced (it expired or was withdrawn:
    a reset spent by a new password): nothing to send, and the event is done."""

    event_type: str
    source: str
