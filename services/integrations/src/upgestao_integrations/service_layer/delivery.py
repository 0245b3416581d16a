"""Delivering due webhook messages: claim, open the data, sign, POST, record — in batches.

1. Settle claims left by a dead process (``delivering`` older than the timeout + 30 s): a failed attempt,
   retried with the same ``webhook-id`` (at least once).
2. Claim due messages of enabled, unthrottled endpoints (at most ``claimed_per_endpoint`` in flight each, and
   no more in all than ``concurrency x rounds``): one transaction leasing their rows (``delivering``, only where
   still pending or failed; on PostgreSQL the rows are ``SKIP LOCKED`` from the due query on), so two replicas
   never both attempt one message. A lease is no event: the attempt is appended once, with its outcome (5).
   A claim never outlives the stale window (``settings.stale_after_s`` covers the owners' answers and
   ``rounds`` POST timeouts).
3. Open the data through its owners' audited RPCs, one call per owner per integration in the batch
   (``identity.share_subjects``, ``messaging.share_messages``: the integration is the recipient of each
   share); a message whose data is gone (the owner answers None) is canceled, not sent.
4. Build each payload (only the integration's allowed fields), sign it with every valid secret (the
   current, and the previous during a rotation's overlap), POST them concurrently, at most ``per_endpoint``
   (8) at once to one endpoint in this process (a semaphore per endpoint). A message leaves the in-flight
   count when its POST is over, so the next wave of an endpoint is claimed and opened while the batch's other
   POSTs are still in flight (pipelined; still at most ``claimed_per_endpoint`` claimed and unposted).
5. Record the outcomes in one transaction: the retry schedule, the endpoint's health (410 disables at once,
   5 days of failures spread over 12 h disable), an abort stops the message, and a success that carried
   personal fields records who received whose data (``shared_subjects``).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from upgestao_kernel.eventstore import ConcurrencyError
from upgestao_kernel.logging import get_logger

from ..adapters.metrics import webhook_attempt
from ..adapters.secret_box import SecretBox
from ..domain import schedule
from ..domain.integrations import Integration, recipient_of
from ..domain.messages import DELIVERING, MessageRefused, WebhookMessage
from ..domain.payloads import build_payload
from ..domain.signing import webhook_headers
from ..settings import IntegrationsSettings

log = get_logger(__name__)

SUBJECT_TYPES = frozenset({"conversation.created", "message.created", "customer.created", "subject.updated"})
MESSAGE_TYPES = frozenset({"message.created", "message.edited", "message.deleted"})
PERSON_FIELDS = ("email", "name", "phone")
GONE = "the data is no longer available"
INTERRUPTED = "interrupted: the dispatcher stopped during the attempt"
OWNER_UNAVAILABLE = "the data's owner did not answer"


class Owners(Protocol):
    def share_subjects(self, subject_ids: list[str], fields: list[str], recipient: str, purpose: str) -> dict: ...

    def share_messages(self, message_ids: list[str], include_body: bool, recipient: str, purpose: str) -> dict: ...


class Sender(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Any: ...


def serial_map(fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
    return map(fn, items)


@dataclass
class Claimed:
    row: dict[str, Any]  # the message row as claimed (status delivering, version and attempts moved on)
    integration: dict[str, Any]
    secrets: list[str]
    started_at: datetime


@dataclass
class Prepared:
    claimed: Claimed
    body: bytes | None = None
    cancel: str | None = None  # the data is gone
    error: str | None = None  # the owner did not answer: a failed attempt
    shared_fields: list[str] = field(default_factory=list)
    shared_subject_id: str | None = None


@dataclass
class Result:
    prepared: Prepared
    status_code: int | None
    headers: dict[str, str]
    duration_ms: float | None
    error: str | None
    refused: str | None
    finished_at: datetime


@dataclass
class Deliverer:
    unit_of_work: Callable[[], Any]
    owners: Owners
    sender: Sender
    box: SecretBox
    settings: IntegrationsSettings
    now: Callable[[], datetime]
    rng: random.Random = field(default_factory=random.Random)
    concurrently: Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]] = field(default=serial_map)
    # messages claimed and not yet POSTed per integration in this process (shared by the batches a dispatcher
    # runs side by side: at most ``claimed_per_endpoint`` each)
    in_flight: dict[str, int] = field(default_factory=dict)
    batch_done: Callable[[], None] = lambda: None
    # a semaphore of n slots (the dispatcher gives eventlet's): at most ``per_endpoint`` POSTs per endpoint
    semaphore: Callable[[int], Any] = threading.BoundedSemaphore
    posting: dict[str, Any] = field(default_factory=dict)

    # -- one round ---------------------------------------------------------------------------

    def run_once(self) -> int:
        """Settle interrupted claims, then deliver one batch of due messages. Returns how many were attempted."""
        self.settle_stale()
        claimed = self.claim()
        if claimed:
            self.deliver(claimed)
        return len(claimed)

    def deliver(self, claimed: list[Claimed]) -> None:
        """Open, sign, POST and record a claimed batch (the dispatcher runs several side by side).

        Each message leaves the in-flight count as soon as its POST is over (or it is known it will not be
        sent), not when the whole batch is: the dispatcher claims and opens the next messages of an endpoint
        while the rest of this batch's POSTs are in flight, never holding more than ``claimed_per_endpoint``
        of it claimed and unposted (so the stale window is the same)."""
        pending = {id(c): c for c in claimed}

        def release(c: Claimed) -> None:
            if pending.pop(id(c), None) is not None:
                self._release([c])

        def send(p: Prepared) -> Result:
            try:
                return self._send(p)
            finally:
                release(p.claimed)  # its POST is over: the next one of its endpoint may be claimed

        try:
            prepared = self._prepare(claimed)
            for p in prepared:
                if p.body is None:
                    release(p.claimed)  # not sent: canceled, or its owner did not answer
            to_send = [p for p in prepared if p.body is not None]
            results = list(self.concurrently(send, to_send))
            unsent = [Result(p, None, {}, None, p.error, None, self.now()) for p in prepared
                      if p.body is None and p.cancel is None]
            self._record(results + unsent, [p for p in prepared if p.cancel is not None])
        finally:
            if pending:
                self._release(list(pending.values()))

    def _release(self, claimed: list[Claimed]) -> None:
        for c in claimed:
            iid = c.integration["id"]
            self.in_flight[iid] = self.in_flight.get(iid, 1) - 1
            if self.in_flight[iid] <= 0:
                del self.in_flight[iid]
        self.batch_done()

    # -- claims -------------------------------------------------------------------------------

    def settle_stale(self) -> None:
        now = self.now()
        before = now - timedelta(seconds=self.settings.stale_after_s)
        with self.unit_of_work() as uow:
            settled = []
            for row in uow.messages.stale(before, self.settings.batch):
                message = _snapshot(row)
                started = row["claimed_at"] or now
                message.finish(outcome="error", started_at=started, finished_at=now, status_code=None,
                               duration_ms=None, error=INTERRUPTED,
                               next_attempt_at=self._next(row["attempts"], now, schedule.Outcome(schedule.FAILED)))
                settled.append(message)
                log.warning("integrations.claim_settled", message_id=row["id"], attempt=row["attempts"])
            uow.save_many(settled)
        for _ in settled:
            webhook_attempt("error")  # committed: an interrupted attempt counted as failed without an answer

    def claim(self) -> list[Claimed]:
        """Claim a batch of due messages (counted in flight until :meth:`deliver` records them)."""
        now = self.now()
        try:
            with self.unit_of_work() as uow:
                claimed = self._claim_in(uow, now)
        except MessageRefused:
            return []  # not claimable after all: the next round looks again
        for c in claimed:
            iid = c.integration["id"]
            self.in_flight[iid] = self.in_flight.get(iid, 0) + 1
        return claimed

    def _claim_in(self, uow: Any, now: datetime) -> list[Claimed]:
        # a claimed message waits through at most ``rounds`` waves of POSTs for a slot of the process
        # (``concurrency x rounds`` claimed in all) and ``rounds`` for one of its endpoint (``claimed_per_endpoint``,
        # 8 at a time): its claim ends within the owners' answers and ``2 x rounds`` timeouts, before it would look
        # like a dead process's (``stale_after_s``)
        cap = self.settings.concurrency * self.settings.rounds
        room = min(self.settings.batch, cap - sum(self.in_flight.values()))
        if room <= 0:
            return []
        # an endpoint with messages in flight is claimed again only once ``refill`` (half its claims) fit:
        # messages released one by one as their POSTs end would otherwise be claimed, opened and recorded a few
        # at a time, each batch paying a transaction and two owners' RPCs. Those endpoints and the throttled ones
        # are left out of the query: an old backlog of theirs would otherwise fill the page of due messages, and
        # every other endpoint's messages would wait behind it (claimed nothing, the loop waits for the poll)
        full = self.settings.claimed_per_endpoint
        excluded = uow.health.throttled(now) | {iid for iid, busy in self.in_flight.items()
                                                if busy and full - busy < self.settings.refill}
        due = uow.messages.due(now, room, excluded)
        if not due:
            return []
        per_endpoint: dict[str, int] = {}
        chosen = []
        for row in due:
            iid = row["integration_id"]
            if per_endpoint.get(iid, 0) + self.in_flight.get(iid, 0) >= full:
                continue
            per_endpoint[iid] = per_endpoint.get(iid, 0) + 1
            chosen.append(row)
            if len(chosen) >= room:
                break
        integrations = uow.integrations.get_many([r["integration_id"] for r in chosen])
        sealed = uow.secrets.valid(list(integrations), now)
        secrets = {iid: [self.box.open(iid, s["id"], s["sealed"]) for s in rows] for iid, rows in sealed.items()}
        for row in chosen:
            _snapshot(row).start_attempt()  # the domain's rule; the lease below applies it to the rows
        leased = uow.messages.lease([row["id"] for row in chosen], now)  # a lease, not an event (domain.messages)
        return [Claimed({**row, "status": DELIVERING, **leased[row["id"]]}, integrations[row["integration_id"]],
                        secrets.get(row["integration_id"], []), now)
                for row in chosen if row["id"] in leased]

    # -- the data ---------------------------------------------------------------------------

    def _prepare(self, claimed: list[Claimed]) -> list[Prepared]:
        by_integration: dict[str, list[Claimed]] = {}
        for c in claimed:
            by_integration.setdefault(c.integration["id"], []).append(c)
        prepared: list[Prepared] = []
        for integration_id, items in by_integration.items():
            prepared += self._prepare_for(integration_id, items)
        return prepared

    def _prepare_for(self, integration_id: str, items: list[Claimed]) -> list[Prepared]:
        allowed = list(items[0].integration["fields"])
        person = [f for f in PERSON_FIELDS if f in allowed]
        recipient = recipient_of(integration_id)
        types = sorted({c.row["event_type"] for c in items})
        purpose = ("integration delivery: " + ", ".join(types))[:200]
        message_ids = sorted({c.row["data"].get("message_id") for c in items
                              if c.row["event_type"] in MESSAGE_TYPES and c.row["data"].get("message_id")})
        subject_fields = set(person)
        for c in items:
            if c.row["event_type"] == "subject.updated":
                subject_fields |= set(c.row["data"].get("changed") or ()) & set(allowed)
        messages: dict[str, Any] = {}
        subjects: dict[str, Any] = {}
        try:
            if message_ids:
                messages = self.owners.share_messages(message_ids, "conversations" in allowed, recipient,
                                                      purpose)["messages"]
            subject_ids = sorted({sid for c in items if c.row["event_type"] in SUBJECT_TYPES
                                  for sid in [self._subject_of(c, messages)] if sid})
            if subject_ids and subject_fields:
                subjects = self.owners.share_subjects(subject_ids, sorted(subject_fields), recipient,
                                                      purpose)["subjects"]
        except Exception as exc:  # noqa: BLE001 - the owner away: a failed attempt, retried on schedule
            log.warning("integrations.owner_unavailable", integration_id=integration_id, error=type(exc).__name__)
            return [Prepared(c, error=OWNER_UNAVAILABLE) for c in items]
        return [self._payload(c, allowed, person, messages, subjects) for c in items]

    @staticmethod
    def _subject_of(c: Claimed, messages: Mapping[str, Any]) -> str | None:
        if c.row["event_type"] == "message.created":
            opened = messages.get(c.row["data"].get("message_id"))
            return (opened or {}).get("customer_id") or c.row["subject_id"]
        return c.row["subject_id"]

    def _payload(self, c: Claimed, allowed: list[str], person: list[str], messages: Mapping[str, Any],
                 subjects: Mapping[str, Any]) -> Prepared:
        kind, stored = c.row["event_type"], dict(c.row["data"])
        data: dict[str, Any] = dict(stored)
        shared: set[str] = set()
        subject_id: str | None = c.row["subject_id"]
        if kind in MESSAGE_TYPES:
            opened = messages.get(stored.get("message_id"))
            if opened is None:
                return Prepared(c, cancel=GONE)
            subject_id = opened.get("customer_id")
            if kind == "message.created":
                data.update({k: opened.get(k) for k in ("message_id", "conversation_id", "customer_id", "direction",
                                                        "created_at", "attachment_count")})
            elif kind == "message.edited":
                data.update({k: opened.get(k) for k in ("message_id", "conversation_id", "customer_id",
                                                        "edited_at")})
            if kind != "message.deleted" and "body" in opened and "conversations" in allowed:
                data["body"] = opened["body"]
                if opened["body"] is not None:
                    shared.add("conversations")
        if kind in ("conversation.created", "message.created", "customer.created"):
            if person and subject_id:
                values = subjects.get(subject_id)
                if values is None:
                    return Prepared(c, cancel=GONE)
                customer = {"id": subject_id, **{f: values.get(f) for f in person if f in values}}
                shared |= {f for f in person if values.get(f) is not None}
            else:
                customer = {"id": subject_id}
            data["customer"] = customer
        if kind == "subject.updated":
            changed = [f for f in stored.get("changed") or () if f in allowed]
            values = subjects.get(subject_id) if subject_id else None
            if values is None:
                return Prepared(c, cancel=GONE)
            data = {"subject_id": subject_id, "changed": {f: values.get(f) for f in changed}}
            shared |= {f for f in changed if values.get(f) is not None}
        occurred = c.row["occurred_at"]
        body = build_payload(kind, occurred, data, allowed)
        return Prepared(c, body=body, shared_fields=sorted(shared), shared_subject_id=subject_id if shared else None)

    # -- the POST ---------------------------------------------------------------------------

    def _send(self, p: Prepared) -> Result:
        c = p.claimed
        try:
            slots = self.posting.get(c.integration["id"])
            if slots is None:
                slots = self.posting[c.integration["id"]] = self.semaphore(self.settings.per_endpoint)
            with slots:
                timestamp = int(self.now().timestamp())  # signed when sent (a receiver checks its tolerance)
                headers = webhook_headers(c.row["id"], timestamp, p.body, c.secrets)
                sent = self.sender.post(c.integration["url"], p.body, headers)
            return Result(p, sent.status_code, dict(sent.headers or {}), sent.duration_ms, sent.error, sent.refused,
                          self.now())
        except Exception as exc:  # noqa: BLE001 - a claimed message must get an outcome
            return Result(p, None, {}, None, f"unexpected error ({type(exc).__name__})", None, self.now())

    # -- outcomes ---------------------------------------------------------------------------

    def _next(self, attempt: int, now: datetime, outcome: schedule.Outcome) -> datetime | None:
        """The settings' schedule (``INTEGRATIONS_RETRY_DELAYS_S``) with the schedule module's jitter and
        Retry-After rules."""
        delays = self.settings.retry_delays_s
        if not outcome.retryable or attempt >= len(delays):
            return None
        delay = delays[attempt] * self.rng.uniform(1 - schedule.JITTER, 1 + schedule.JITTER)
        if outcome.retry_after_s is not None:
            delay = max(delay, min(outcome.retry_after_s, schedule.MAX_RETRY_AFTER_S))
        return now + timedelta(seconds=delay)

    def _should_disable(self, health: schedule.EndpointHealth, now: datetime) -> bool:
        if health.failing_since is None or health.last_failure_at is None:
            return False
        return (now - health.failing_since >= timedelta(seconds=self.settings.disable_after_s)
                and health.last_failure_at - health.failing_since >= timedelta(seconds=self.settings.failure_spread_s))

    def _outcome(self, r: Result, now: datetime) -> tuple[schedule.Outcome, str, str | None]:
        """The attempt's outcome for the schedule, its label in the attempt record, and its short error."""
        if r.refused is not None:
            return schedule.Outcome(schedule.FAILED), "refused", r.refused
        if r.status_code is None:
            error = r.error or "no answer"
            label = "timeout" if "timeout" in error.lower() or "timed out" in error.lower() else "error"
            return schedule.Outcome(schedule.FAILED), label, error
        outcome = schedule.classify(r.status_code, r.headers, r.error, now)
        label = {"succeeded": "succeeded", "aborted": "aborted"}.get(outcome.kind, "failed")
        return outcome, label, None if outcome.kind == schedule.SUCCEEDED else f"HTTP {r.status_code}"

    def _record(self, results: list[Result], canceled: list[Prepared]) -> None:
        """Record the batch's outcomes. A message another transaction moved since its claim (a lease moves no
        version: an erasure's cancel that read it before the lease) is a conflict for that message alone: its
        outcome is dropped (its row says what happened to it) and the others are recorded, not left claimed
        until the stale window and POSTed again."""
        while True:
            try:
                labels = self._record_once(results, canceled)
                break
            except ConcurrencyError as conflict:
                moved = conflict.stream_id.removeprefix(WebhookMessage.stream_id_for(""))
                log.warning("integrations.outcome_conflict", message_id=moved)
                kept = [r for r in results if r.prepared.claimed.row["id"] != moved]
                kept_canceled = [p for p in canceled if p.claimed.row["id"] != moved]
                if len(kept) + len(kept_canceled) == len(results) + len(canceled):
                    raise  # not one of this batch's messages
                results, canceled = kept, kept_canceled
        for label in labels:  # committed: counted (upgestao_webhook_attempts_total)
            webhook_attempt(label)

    def _record_once(self, results: list[Result], canceled: list[Prepared]) -> list[str]:
        now = self.now()
        disable: dict[str, str] = {}
        by_endpoint: dict[str, list[schedule.Outcome]] = {}
        labels: list[str] = []
        with self.unit_of_work() as uow:
            messages = []
            for p in canceled:
                message = _snapshot(p.claimed.row)
                message.cancel(p.cancel or GONE)
                messages.append(message)
            for r in results:
                c = r.prepared.claimed
                iid = c.integration["id"]
                outcome, label, error = self._outcome(r, now)
                labels.append(label)
                if r.prepared.error is None:  # the endpoint answered or was tried: its health moves
                    by_endpoint.setdefault(iid, []).append(outcome)
                if outcome.kind == schedule.GONE:
                    disable[iid] = "gone"
                message = _snapshot(c.row)
                message.finish(outcome=label, started_at=c.started_at, finished_at=r.finished_at,
                               status_code=r.status_code, duration_ms=r.duration_ms, error=error,
                               next_attempt_at=self._next(c.row["attempts"], now, outcome),
                               shared_fields=r.prepared.shared_fields,
                               shared_subject_id=r.prepared.shared_subject_id)
                messages.append(message)
            uow.save_many(messages)  # every outcome at its message's version, all or none
            self._health(uow, by_endpoint, disable, now)
            for iid, reason in disable.items():
                integration = uow.load(Integration, iid)
                if integration is not None and integration.disable(reason):
                    uow.save(integration)
                    log.warning("integrations.endpoint_disabled", integration_id=iid, reason=reason)
        return labels

    def _health(self, uow: Any, by_endpoint: Mapping[str, list[schedule.Outcome]], disable: dict[str, str],
                now: datetime) -> None:
        """The endpoints' health after these outcomes (last in the transaction: their rows are locked the least
        time). A healthy endpoint that only succeeded again is left as it is (nothing to write)."""
        current = uow.health.get_many(list(by_endpoint))
        moved = []
        for iid, outcomes in by_endpoint.items():
            row = current.get(iid)
            clean = row is not None and not row["state"].get("failing_since") and not row["state"].get("throttle_level")
            if not (clean and all(o.kind in (schedule.SUCCEEDED, schedule.ABORTED) for o in outcomes)):
                moved.append(iid)
        for iid, row in uow.health.lock_many(moved, now).items():
            health = schedule.EndpointHealth.from_dict(row["state"])
            for outcome in by_endpoint[iid]:
                health.record(now, outcome)
            if iid not in disable and self._should_disable(health, now):
                disable[iid] = "failing"
            uow.health.put(iid, health.to_dict(), health.throttled_until, now)


def _snapshot(row: Mapping[str, Any]) -> WebhookMessage:
    return WebhookMessage.at(row["id"], version=row["version"], status=row["status"], attempts=row["attempts"],
                             integration_id=row["integration_id"], next_attempt_at=row.get("next_attempt_at"))
