"""From another service's event to one webhook message per integration that should get it.

Events arrive in batches (:func:`accept_many`: one unit of work for a batch, each event claimed by its id
first, so a redelivered one queues nothing); the message id is derived from (event id, integration id), so
an event handled again anyway finds its messages queued.
Only ids and states of the published event are kept with a message: personal values are opened from their
owners at each attempt (audited there as shares with the integration as recipient).

Rules (the contract's table): staff chats and private notes never; an integration gets a type only when
subscribed (``["*"]``: all) and enabled; ``subject.updated`` goes only to the integrations that received
that person's data and may receive one of the changed fields; ``subject.erased`` goes to every integration
that received the person's data (whatever their subscription or state), and the person's pending messages
are canceled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from upgestao_kernel.context import RequestContext
from upgestao_kernel.events import EventEnvelope
from upgestao_kernel.eventstore import ConcurrencyError

from ..domain.events import SubjectErased
from ..domain.fields import subscribed
from ..domain.messages import WebhookMessage

# source event type -> (webhook type, the subject's key, the published keys kept with the message)
ROUTES: Mapping[str, tuple[str, str | None, tuple[str, ...]]] = {
    "messaging.conversation_opened.v1": ("conversation.created", "customer_id",
                                         ("conversation_id", "customer_id", "channel", "team_id", "assignee_id")),
    "messaging.conversation_status_changed.v1": ("conversation.status_changed", "customer_id",
                                                 ("conversation_id", "customer_id", "status", "previous",
                                                  "snoozed_until")),
    "messaging.conversation_assigned.v1": ("conversation.assigned", "customer_id",
                                           ("conversation_id", "customer_id", "assignee_id", "team_id")),
    "messaging.message_created.v1": ("message.created", "customer_id",
                                     ("message_id", "conversation_id", "customer_id")),
    "messaging.message_edited.v1": ("message.edited", None, ("message_id", "conversation_id")),
    "messaging.message_deleted.v1": ("message.deleted", None, ("message_id", "conversation_id")),
    "identity.customer_registered.v1": ("customer.created", "customer_id", ("customer_id",)),
}
MESSAGING_EVENTS = tuple(sorted(t for t in ROUTES if t.startswith("messaging.")))
IDENTITY_EVENTS = ("identity.customer_changed.v1", "identity.customer_registered.v1")
PRIVACY_EVENTS = ("privacy.erasure_requested.v1",)
# identity's field names -> the integrations' (only these are ever shared)
IDENTITY_FIELDS = {"email": "email", "full_name": "name", "phone": "phone"}
PERSON_FIELDS = ("email", "name", "phone")
RECIPIENT_PREFIX = "integration:"
ERASED_REASON = "the person's data was erased"


@dataclass(frozen=True)
class Queued:
    messages: int
    integrations: list[str]


@dataclass(frozen=True)
class Accepted:
    """What a batch of events did: ``handled`` events (``duplicates`` others were handled before), queuing
    ``messages`` webhook messages."""

    handled: int
    duplicates: int
    messages: int


def accept_many(uow: Any, consumer: str, envelopes: Sequence[EventEnvelope],
                context_of: Callable[[EventEnvelope], RequestContext]) -> Accepted:
    """Queue the webhooks of ``envelopes``, in their order, in ``uow`` (one transaction for all of them),
    each event at most once for ``consumer``: the ids are claimed first (``processed_events``, one statement, in
    id order: two processes given the same redelivered events wait for each other instead of deadlocking), and
    one claimed before (a redelivery, or twice in the batch) queues nothing. Each event's
    messages are recorded under its own context (``context_of``: caused by that event), all of the batch's
    with one ``save_many`` (an erasure first saves those queued before it: it cancels the person's pending ones)."""
    claimed = uow.claim_many(consumer, [e.event_id for e in envelopes])
    enabled = _Enabled(uow)
    pending = _Pending(uow)
    handled = messages = 0
    for envelope in envelopes:
        if envelope.event_id not in claimed:
            continue
        claimed.discard(envelope.event_id)  # the same event twice in the batch: the first one only
        uow.context = context_of(envelope)
        messages += _accept(uow, envelope, enabled, pending).messages
        handled += 1
    pending.save()
    return Accepted(handled=handled, duplicates=len(envelopes) - handled, messages=messages)


class _Enabled:
    """The enabled integrations, read once per batch (at its first event that needs them): fan-out never
    changes them."""

    def __init__(self, uow: Any) -> None:
        self._uow = uow
        self._rows: list[Mapping[str, Any]] | None = None

    def __call__(self) -> list[Mapping[str, Any]]:
        if self._rows is None:
            self._rows = list(self._uow.integrations.enabled())
        return self._rows


@dataclass(frozen=True)
class _Planned:
    envelope: EventEnvelope
    webhook_type: str
    integration_id: str
    subject_id: str | None
    data: dict[str, Any]
    context: RequestContext

    def message(self) -> WebhookMessage:
        return WebhookMessage.queue(integration_id=self.integration_id, event_type=self.webhook_type,
                                    event_id=self.envelope.event_id, source_event_type=self.envelope.type,
                                    subject_id=self.subject_id, occurred_at=self.envelope.occurred_at, data=self.data)


class _Pending:
    """Messages planned and not yet saved, each with its event's context."""

    def __init__(self, uow: Any) -> None:
        self._uow = uow
        self._planned: list[_Planned] = []

    def add(self, envelope: EventEnvelope, webhook_type: str, integration_ids: list[str], subject_id: str | None,
            data: dict[str, Any]) -> None:
        context = self._uow.context
        self._planned += [_Planned(envelope, webhook_type, iid, subject_id, data, context) for iid in integration_ids]

    def save(self) -> None:
        """Each a new stream (version 0): one statement for all. One queued before (the same event and
        integration: nothing was appended then), the others one by one."""
        planned, self._planned = self._planned, []
        if not planned:
            return
        try:
            self._uow.save_many([p.message() for p in planned], contexts=[p.context for p in planned])
        except ConcurrencyError:
            own = self._uow.context
            try:
                for p in planned:
                    message = p.message()
                    if self._uow.stream_version(message.stream_id) == 0:
                        self._uow.context = p.context
                        self._uow.save(message)
            finally:
                self._uow.context = own


def _in_conversation(data: Mapping[str, Any]) -> bool:
    """A customer conversation's message (never a staff chat, never a private note)."""
    return bool(data.get("conversation_id")) and not data.get("chat_id") and not data.get("private")


def accept(uow: Any, envelope: EventEnvelope) -> Queued:
    """Queue the webhooks ``envelope`` asks for, in ``uow`` (a unit of work with repositories)."""
    pending = _Pending(uow)
    queued = _accept(uow, envelope, lambda: uow.integrations.enabled(), pending)
    pending.save()
    return queued


def _accept(uow: Any, envelope: EventEnvelope, enabled: Callable[[], Sequence[Mapping[str, Any]]],
            pending: _Pending) -> Queued:
    if envelope.type == "identity.customer_changed.v1":
        return _subject_updated(uow, envelope, pending)
    if envelope.type == "privacy.erasure_requested.v1":
        pending.save()  # the person's messages queued before it are pending: canceled below
        return _subject_erased(uow, envelope, pending)
    route = ROUTES.get(envelope.type)
    if route is None:
        return Queued(0, [])
    webhook_type, subject_key, keys = route
    data = envelope.data
    if envelope.type.startswith("messaging.message_") and not _in_conversation(data):
        return Queued(0, [])
    kept = {k: data.get(k) for k in keys}
    subject_id = data.get(subject_key) if subject_key else None
    targets = [row["id"] for row in enabled() if subscribed(row["events"], webhook_type)]
    pending.add(envelope, webhook_type, targets, subject_id, kept)
    return Queued(len(targets), targets)


def _subject_updated(uow: Any, envelope: EventEnvelope, pending: _Pending) -> Queued:
    subject_id = envelope.data.get("customer_id")
    changed = sorted({IDENTITY_FIELDS[f] for f in envelope.data.get("fields") or () if f in IDENTITY_FIELDS})
    if not subject_id or not changed:
        return Queued(0, [])
    shared = uow.shared.of_subject(subject_id)
    rows = uow.integrations.get_many(list(shared))
    targets = []
    for integration_id in sorted(shared):
        row = rows.get(integration_id)
        if row is not None and set(changed) & set(row["fields"]):
            targets.append(integration_id)
    pending.add(envelope, "subject.updated", targets, subject_id, {"subject_id": subject_id, "changed": changed})
    return Queued(len(targets), targets)


def _subject_erased(uow: Any, envelope: EventEnvelope, pending: _Pending) -> Queued:
    data = envelope.data
    subject_id, mode, request_id = data.get("subject_id"), data.get("mode"), data.get("request_id")
    if not subject_id or not request_id:
        return Queued(0, [])
    named = {r.removeprefix(RECIPIENT_PREFIX) for r in data.get("recipients") or ()
             if isinstance(r, str) and r.startswith(RECIPIENT_PREFIX)}
    known = uow.integrations.get_many(sorted(set(uow.shared.of_subject(subject_id)) | named))
    targets = sorted(known)
    for row in uow.messages.pending_of_subject(subject_id):
        message = WebhookMessage.at(row["id"], version=row["version"], status=row["status"],
                                    attempts=row["attempts"], integration_id=row["integration_id"],
                                    next_attempt_at=row["next_attempt_at"])
        if message.cancel(ERASED_REASON):
            uow.save(message)
    pending.add(envelope, "subject.erased", targets, None, {"subject_id": subject_id, "mode": mode})
    stream = f"erasure-{request_id}"
    if uow.stream_version(stream) == 0:
        uow.record(stream, 0, [SubjectErased(subject_id=subject_id, mode=str(mode), integration_ids=targets)
                               .new_event(request_id)])
    return Queued(len(targets), targets)
