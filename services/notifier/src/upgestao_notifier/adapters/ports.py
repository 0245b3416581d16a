"""What the notifier's use cases need from storage and from the world outside, as protocols.

Repositories (``uow.deliveries``, ``uow.suppressions``) are built on a unit of work: SQL in
:mod:`.sql_repositories`, in memory in :mod:`.memory_repositories`. The world outside: the owning
services' notices (:class:`NoticeSource`), the SMTP server (:class:`Mailer`), the templates
(:class:`Renderer`) and the sink or server that can say whether a Message-ID was accepted
(:class:`AcceptanceLookup`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Protocol

from upgestao_kernel.unit_of_work import UnitOfWorkPort

FILTERS = ("event_id", "campaign_id", "recipient_id", "status")
ACCEPTED = "notifier.accept"  # the consumer name under which an event whose notice was handled is claimed


@dataclass(frozen=True)
class DeliveryRecord:
    id: str
    event_id: str
    event_type: str
    kind: str
    source: str
    campaign_id: str | None
    recipient_id: str
    message_id: str
    status: str
    attempts: int
    last_code: int | None
    last_error: str | None
    confirmed: bool | None
    created_at: datetime
    updated_at: datetime
    attempt_started_at: datetime | None
    sent_at: datetime | None
    next_attempt_at: datetime | None
    version: int

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> DeliveryRecord:
        return cls(**{f.name: row[f.name] for f in fields(cls)})


Cursor = tuple[datetime, str]  # (created_at, id) of the last row of the previous page


class Deliveries(Protocol):
    def event_done(self, event_id: str) -> bool:
        """Every delivery the event asked for was queued (its :data:`ACCEPTED` claim is stored)."""

    def get_many(self, ids: list[str]) -> dict[str, DeliveryRecord]: ...

    def due(self, now: datetime, limit: int) -> list[DeliveryRecord]:
        """Soft-failed deliveries whose next attempt is due, oldest first."""

    def stale(self, before: datetime, limit: int) -> list[DeliveryRecord]:
        """Deliveries claimed (``sending``) before ``before``, or queued before it and never claimed."""

    def page(self, filters: Mapping[str, str], limit: int, after: Cursor | None) -> list[DeliveryRecord]:
        """Newest first (created_at, id descending)."""

    def counts(self, campaign_id: str) -> tuple[dict[str, int], datetime | None, datetime | None]:
        """Deliveries of a campaign per status, the first created_at and the last updated_at."""


class Suppressions(Protocol):
    def suppressed(self, address_hashes: list[str]) -> set[str]: ...


class NotifierUnitOfWork(UnitOfWorkPort, Protocol):
    deliveries: Deliveries
    suppressions: Suppressions


@dataclass(frozen=True)
class Recipient:
    id: str
    to: str  # the address: held in memory for the attempt, never stored, logged or published here
    locale: str
    name: str | None
    vars: Mapping[str, Any]


@dataclass(frozen=True)
class Notice:
    id: str
    kind: str
    campaign_id: str | None
    data: Mapping[str, Any]
    recipients: list[Recipient]
    next: str | None


class NoticeGone(Exception):
    """The owning service no longer holds the notice (404): nothing to send."""


class NoticeSource(Protocol):
    def fetch(self, source: str, notice_id: str, *, recipient_id: str | None = None,
              cursor: str | None = None) -> Notice:
        """The owning service's ``notice`` RPC (audited there with purpose ``notification``). Raises
        :class:`NoticeGone`, or any other error when the owner cannot answer now (retried)."""


class SendResult(Protocol):
    status: str  # "sent" | "soft_failed" | "hard_failed"
    code: int | None
    error: str | None


class Mailer(Protocol):
    def send(self, message: EmailMessage, *, sender: str, to: str) -> SendResult: ...


class Rendered(Protocol):
    subject: str
    text: str
    html: str


class Renderer(Protocol):
    def render(self, kind: str, locale: str, data: Mapping[str, object]) -> Rendered: ...


class AcceptanceLookup(Protocol):
    def __call__(self, message_id: str) -> bool | None:
        """True/False when the sink or server can tell whether it accepted the Message-ID; None otherwise."""
