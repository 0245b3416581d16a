"""From an event that asks for mail to one e-mail per recipient, exactly once.

1. :meth:`Dispatcher.accept` (an event arrived): ask the owning service for the notice (``notice`` RPC,
   audited there with purpose ``notification``), then queue one delivery per recipient in one
   transaction (the delivery's id is derived from (event id, recipient id): a redelivered event finds
   them queued already) and attempt the queued ones at once. The event is acked only after this
   returns: every delivery it asked for is stored with its outcome or its next attempt.
2. An attempt: claim (``sending``, the attempt counted and audited as ``notify``, committed), then the
   SMTP transaction, then its outcome (committed in small batches). A claim is an event appended at
   the delivery's version, so two workers never attempt the same delivery.
3. :meth:`Dispatcher.sweep` (a timer): attempts due soft failures again (asking the owner for the
   notice again: the address is never stored here) and settles claims left by a process that died
   inside the SMTP transaction (the sink says whether it accepted the Message-ID; where nobody can
   tell, the at-most-once rule: taken as sent, unconfirmed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from upgestao_kernel.eventstore import ConcurrencyError
from upgestao_kernel.logging import get_logger

from ..adapters.metrics import INTERRUPTED, email_attempt
from ..adapters.mime import build_message, message_id_for
from ..adapters.ports import (
    ACCEPTED,
    AcceptanceLookup,
    DeliveryRecord,
    Mailer,
    Notice,
    NoticeGone,
    NoticeSource,
    NotifierUnitOfWork,
    Recipient,
    Renderer,
)
from ..domain.addresses import address_hash
from ..domain.deliveries import (
    NOTICE_GONE,
    QUEUED,
    SENDING,
    SOFT_FAILED,
    Delivery,
    DeliveryRefused,
    delivery_id_for,
)
from ..domain.events import AddressSuppressed, NoticeUnavailable
from ..domain.kinds import BY_EVENT_TYPE, KINDS, Kind
from ..settings import NotifierSettings

log = get_logger(__name__)

PURPOSE = "notification"
PLATFORM_NAME = "UpGestão"
COMPLETE_EVERY = 20  # outcomes committed together, at most (the window a crash leaves to the sweeper)


class NoticeMismatch(ValueError):
    """The owner's notice is not of the kind the event's type asks for: the event is parked, nothing sent."""

    park_reason = "the notice is not of the kind its event announces"


def serial_map(fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
    return map(fn, items)


@dataclass(frozen=True)
class Outcome:
    """An attempt that ended before or around the mailer (the mailer's own outcomes look the same)."""

    status: str
    code: int | None
    error: str | None


@dataclass(frozen=True)
class Attempt:
    record: DeliveryRecord  # as claimed: status sending, version and attempts moved on
    recipient: Recipient
    data: Mapping[str, Any]  # the notice's kind-level values


@dataclass
class Dispatcher:
    unit_of_work: Callable[[], NotifierUnitOfWork]
    notices: NoticeSource
    mailer: Mailer
    renderer: Renderer
    settings: NotifierSettings
    now: Callable[[], datetime]
    accepted: AcceptanceLookup | None = None
    concurrently: Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]] = field(default=serial_map)

    # -- an event arrived ---------------------------------------------------------------------

    def accept(self, event_id: str, event_type: str) -> int:
        """Queue and attempt every delivery the event asks for; returns how many were attempted."""
        kind = BY_EVENT_TYPE.get(event_type)
        if kind is None:
            return 0
        attempted, cursor = 0, None
        while True:
            try:
                notice = self.notices.fetch(kind.source, event_id, cursor=cursor)
            except NoticeGone:
                self._notice_gone(kind, event_id, event_type)
                return attempted
            if notice.kind != kind.name:  # never a reset token in another message's words
                raise NoticeMismatch(f"{event_type} announced a {kind.name} notice")
            last = not notice.next
            claimed = self._queue_and_claim(kind, event_id, event_type, notice, last=last)
            if claimed is None:
                return attempted  # delivered again: its deliveries exist (the sweeper carries on with them)
            attempted += self._attempt(kind, claimed, finished=event_id if last else None)
            if last:
                return attempted
            cursor = notice.next

    def _queue_and_claim(self, kind: Kind, event_id: str, event_type: str, notice: Notice, *,
                         last: bool) -> list[Attempt] | None:
        """One transaction: the page's deliveries queued and, unless suppressed, claimed for their first
        attempt (audited); ``None`` when the event was handled before. With ``last`` and nothing to send,
        the event is marked handled here too."""
        by_id = {delivery_id_for(event_id, r.id): r for r in notice.recipients}
        now = self.now()
        with self.unit_of_work() as uow:
            if uow.deliveries.event_done(event_id):
                return None
            existing = uow.deliveries.get_many(list(by_id)) if by_id else {}
            hashes = {did: address_hash(self.settings.suppression_key, r.to) for did, r in by_id.items()}
            suppressed = uow.suppressions.suppressed(sorted(set(hashes.values()))) if not kind.security else set()
            claimed: list[Attempt] = []
            for did, recipient in by_id.items():
                if did in existing:
                    continue  # queued by an earlier delivery of this event: the sweeper owns it now
                message_id = message_id_for(event_id, recipient.id, self.settings.message_id_domain)
                delivery = Delivery.queue(event_id=event_id, event_type=event_type, kind=kind.name,
                                          source=kind.source, recipient_id=recipient.id,
                                          campaign_id=notice.campaign_id, message_id=message_id)
                if hashes[did] in suppressed:
                    delivery.suppress()
                    uow.save(delivery)
                    continue
                delivery.start_attempt()
                uow.save(delivery)
                self._audit_use(uow, kind, did, recipient)
                record = DeliveryRecord(
                    id=did, event_id=event_id, event_type=event_type, kind=kind.name, source=kind.source,
                    campaign_id=notice.campaign_id, recipient_id=recipient.id, message_id=message_id,
                    status=SENDING, attempts=delivery.attempts, last_code=None, last_error=None, confirmed=None,
                    created_at=now, updated_at=now, attempt_started_at=now, sent_at=None, next_attempt_at=None,
                    version=delivery.version)
                claimed.append(Attempt(record, recipient, notice.data))
            if last and not claimed:
                uow.claim(ACCEPTED, event_id)
        return claimed

    def _notice_gone(self, kind: Kind, event_id: str, event_type: str) -> None:
        with self.unit_of_work() as uow:
            stream = f"notice-{event_id}"
            if uow.stream_version(stream) == 0:
                uow.record(stream, 0, [NoticeUnavailable(event_type=event_type, source=kind.source)
                                       .new_event(event_id)])
        log.info("notifier.notice_unavailable", kind=kind.name, event_id=event_id)

    # -- attempts ---------------------------------------------------------------------------

    def _retry_attempts(self, kind: Kind, attempts: list[Attempt]) -> int:
        """Claim (due or stale-queued deliveries, with their recipient asked again), then send and record."""
        claimed: list[Attempt] = []
        for chunk in _chunks(attempts, self.settings.batch):
            claimed += self._claim(kind, chunk)
        return self._attempt(kind, claimed)

    def _attempt(self, kind: Kind, claimed: list[Attempt], *, finished: str | None = None) -> int:
        """Send claimed deliveries and record their outcomes (``finished``: the event whose last page this
        is, marked handled with the last outcomes)."""
        outcomes = self.concurrently(lambda a: (a, self._send(kind, a)), claimed)
        pending: list[tuple[Attempt, Any]] = []
        for outcome in outcomes:
            pending.append(outcome)
            if len(pending) >= COMPLETE_EVERY:
                self._complete(pending)
                pending = []
        if pending or finished:
            self._complete(pending, finished=finished)
        return len(claimed)

    def _claim(self, kind: Kind, attempts: list[Attempt]) -> list[Attempt]:
        try:
            with self.unit_of_work() as uow:
                return [self._claim_one(uow, kind, a) for a in attempts if a.record.status in (QUEUED, SOFT_FAILED)]
        except (ConcurrencyError, DeliveryRefused):
            if len(attempts) == 1:
                return []  # another worker claimed it first
            return [c for a in attempts for c in self._claim(kind, [a])]  # find which one, claim the rest

    def _claim_one(self, uow: NotifierUnitOfWork, kind: Kind, attempt: Attempt) -> Attempt:
        r = attempt.record
        delivery = _snapshot(r)
        delivery.start_attempt()
        uow.save(delivery)
        self._audit_use(uow, kind, r.id, attempt.recipient)
        claimed = DeliveryRecord.of({**r.__dict__, "status": SENDING, "attempts": delivery.attempts,
                                     "version": delivery.version})
        return Attempt(claimed, attempt.recipient, attempt.data)

    @staticmethod
    def _audit_use(uow: NotifierUnitOfWork, kind: Kind, delivery_id: str, recipient: Recipient) -> None:
        """The address (and the name) about to be used for an attempt: audited in the claim's transaction."""
        fields = ["email"] + (["full_name"] if recipient.name else [])
        uow.audit_access(action="notify", resource_type="email", resource_id=delivery_id, subject_id=recipient.id,
                         fields=fields, purpose=f"{PURPOSE}: {kind.name}")

    def _send(self, kind: Kind, attempt: Attempt) -> Any:
        """The attempt's outcome, never an exception: a claimed delivery must get one, or a process that is
        alive would leave it ``sending`` for the sweeper to settle as if it had died inside SMTP."""
        try:
            message = self._message(kind, attempt)
        except Exception as exc:  # noqa: BLE001 - a notice the template cannot say: permanent for this data
            log.error("notifier.message_not_made", delivery_id=attempt.record.id, kind=kind.name,
                      error=type(exc).__name__)
            return Outcome("hard_failed", None, f"the message could not be made ({type(exc).__name__})")
        try:
            return self.mailer.send(message, sender=self.settings.sender_address, to=attempt.recipient.to)
        except Exception as exc:  # noqa: BLE001 - the mailer classifies what it knows; the rest is retried
            log.error("notifier.send_error", delivery_id=attempt.record.id, kind=kind.name, error=type(exc).__name__)
            return Outcome("soft_failed", None, f"unexpected error ({type(exc).__name__})")

    def _complete(self, results: list[tuple[Attempt, Any]], *, finished: str | None = None) -> None:
        now = self.now()
        with self.unit_of_work() as uow:
            if finished is not None:
                uow.claim(ACCEPTED, finished)
            for attempt, result in results:
                delivery = _snapshot(attempt.record)
                if result.status == "sent":
                    delivery.sent(result.code)
                else:
                    permanent = result.status == "hard_failed"
                    delivery.failed(result.code, result.error or "failed", permanent=permanent,
                                    policy=self.settings.retry, now=now)
                    if permanent and result.code is not None and 500 <= result.code < 600:
                        self._suppress(uow, attempt, result.code)  # the server refused the address itself
                uow.save(delivery)
        for attempt, result in results:
            email_attempt(result.status)  # committed: counted (upgestao_email_attempts_total)
            if result.status != "sent":
                log.info("notifier.delivery_failed", delivery_id=attempt.record.id, kind=attempt.record.kind,
                         attempt=attempt.record.attempts, outcome=result.status, code=result.code)

    def _suppress(self, uow: NotifierUnitOfWork, attempt: Attempt, code: int | None) -> None:
        digest = address_hash(self.settings.suppression_key, attempt.recipient.to)
        uow.record(f"suppression-{digest}", None,
                   [AddressSuppressed(delivery_id=attempt.record.id, code=code).new_event(digest)])

    # -- the message --------------------------------------------------------------------------

    def _message(self, kind: Kind, attempt: Attempt) -> EmailMessage:
        recipient = attempt.recipient
        data = {**self._common(), **attempt.data, **recipient.vars,
                "recipient_name": recipient.name}
        data.update(self._links(kind, data))
        rendered = self.renderer.render(kind.name, recipient.locale, data)
        message = build_message(
            subject=rendered.subject, text=rendered.text, html=rendered.html, sender=self.settings.sender,
            to=recipient.to, message_id=attempt.record.message_id, security=kind.security,
            unsubscribe_url=None if kind.security else f"{self.settings.public_url}/privacy/preferences",
            extra_headers={"X-UpGestao-Delivery": attempt.record.id})
        if "List-Unsubscribe-Post" in message:
            del message["List-Unsubscribe-Post"]  # one-click unsubscribe is not offered: the page is
        return message

    def _common(self) -> dict[str, Any]:
        base = self.settings.public_url
        return {"platform_name": PLATFORM_NAME, "dpo_contact": self.settings.dpo_contact,
                "privacy_url": f"{base}/privacy", "support_url": f"{base}/privacy/contact"}

    def _links(self, kind: Kind, data: Mapping[str, Any]) -> dict[str, Any]:
        base = self.settings.public_url
        if kind.name == "password_reset":
            # in the fragment: never sent to a server, so never in an access log
            return {"reset_url": f"{base}/reset-password#token={data['reset_token']}"}
        if kind.name == "new_login":
            return {"sessions_url": f"{base}/me/sessions"}
        if kind.name == "policy_published" and not data.get("policy_url"):
            return {"policy_url": f"{base}/privacy/policy"}
        return {}

    # -- the timer ------------------------------------------------------------------------------

    def sweep(self) -> int:
        """Settle interrupted claims, then attempt what is due. Returns how many deliveries it touched."""
        now = self.now()
        with self.unit_of_work() as uow:
            stale = uow.deliveries.stale(now - timedelta(seconds=self.settings.stale_after_s), self.settings.batch)
            due = uow.deliveries.due(now, self.settings.batch)
        touched = self._settle([r for r in stale if r.status == SENDING])
        retry = due + [r for r in stale if r.status == QUEUED]
        by_event: dict[tuple[str, str], list[DeliveryRecord]] = {}
        for r in retry:
            by_event.setdefault((r.event_type, r.event_id), []).append(r)
        for (event_type, event_id), records in by_event.items():
            try:
                touched += self._retry(event_type, event_id, records)
            except Exception as exc:  # noqa: BLE001 - the owner away: these stay due, tried at the next sweep
                log.warning("notifier.retry_postponed", event_id=event_id, error=type(exc).__name__)
        return touched

    def _settle(self, records: list[DeliveryRecord]) -> int:
        if not records:
            return 0
        now = self.now()
        with self.unit_of_work() as uow:
            for r in records:
                delivery = _snapshot(r)
                verdict = self.accepted(r.message_id) if self.accepted is not None else None
                if verdict is False:
                    delivery.failed(None, "interrupted before the server accepted the message", permanent=False,
                                    policy=self.settings.retry, now=now)
                else:
                    delivery.settle_interrupted(verdict)
                uow.save(delivery)
                log.warning("notifier.claim_settled", delivery_id=r.id, kind=r.kind,
                            verdict={True: "accepted", False: "not_accepted", None: "unknown"}[verdict])
        for _ in records:
            email_attempt(INTERRUPTED)
        return len(records)

    def _retry(self, event_type: str, event_id: str, records: list[DeliveryRecord]) -> int:
        kind = KINDS.get(records[0].kind)
        if kind is None:
            return 0
        attempts: list[Attempt] = []
        gone: list[DeliveryRecord] = []
        for r in records:
            try:
                notice = self.notices.fetch(r.source, event_id, recipient_id=r.recipient_id)
            except NoticeGone:
                gone.append(r)
                continue
            match = [x for x in notice.recipients if x.id == r.recipient_id]
            if match:
                attempts.append(Attempt(r, match[0], notice.data))
            else:
                gone.append(r)
        if gone:
            with self.unit_of_work() as uow:
                for r in gone:
                    delivery = _snapshot(r)
                    delivery.abandon(NOTICE_GONE)
                    uow.save(delivery)
        return self._retry_attempts(kind, attempts) + len(gone)


def _snapshot(r: DeliveryRecord) -> Delivery:
    return Delivery.at(r.id, version=r.version, status=r.status, attempts=r.attempts, event_id=r.event_id,
                       kind=r.kind, recipient_id=r.recipient_id, campaign_id=r.campaign_id)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
