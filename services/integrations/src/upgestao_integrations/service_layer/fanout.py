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
    each event at most once for ``consumer``: its id is claimed first (``processed_events``), and one claimed
    before (a redelivery, or twice in the batch) queues nothing. The claims are taken in id order, so two
    processes given the same redelivered events wait for each other instead of deadlocking. Each event's
    messages are recorded under its own context (``context_of``: caused by that event)."""
    claimed = {event_id for event_id in sorted({e.event_id for e in envelopes}) if uow.claim(consumer, event_id)}
    enabled = _Enabled(uow)
    handled = messages = 0
    for envelope in envelopes:
        if envelope.event_id not in claimed:
            continue
        claimed.discard(envelope.event_id)  # the same event twice in the batch: the first one only
        uow.context = context_of(envelope)
        messages += accept(uow, envelope, enabled=enabled).messages
        handled += 1
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


def _in_conversation(data: Mapping[str, Any]) -> bool:
    """A customer conversation's message (never a staff chat, never a private note)."""
    return bool(data.get("conversation_id")) and not data.get("chat_id") and not data.get("private")


def accept(uow: Any, envelope: EventEnvelope, *,
           enabled: Callable[[], Sequence[Mapping[str, Any]]] | None = None) -> Queued:
    """Queue the webhooks ``envelope`` asks for, in ``uow`` (a unit of work with repositories); ``enabled``:
    the enabled integrations' rows, when the caller has them (default: read them)."""
    if envelope.type == "identity.customer_changed.v1":
        return _subject_updated(uow, envelope)
    if envelope.type == "privacy.erasure_requested.v1":
        return _subject_erased(uow, envelope)
    route = ROUTES.get(envelope.type)
    if route is None:
        return Queued(0, [])
    webhook_type, subject_key, keys = route
    data = envelope.data
    if envelope.type.startswith("messaging.message_") and not _in_conversation(data):
        return Queued(0, [])
    kept = {k: data.get(k) for k in keys}
    subject_id = data.get(subject_key) if subject_key else None
    rows = enabled() if enabled is not None else uow.integrations.enabled()
    targets = [row["id"] for row in rows if subscribed(row["events"], webhook_type)]
    _queue(uow, envelope, webhook_type, targets, subject_id, kept)
    return Queued(len(targets), targets)


def _queue(uow: Any, envelope: EventEnvelope, webhook_type: str, integration_ids: list[str],
           subject_id: str | None, data: dict[str, Any]) -> None:
    def queued(integration_id: str) -> WebhookMessage:
        return WebhookMessage.queue(integration_id=integration_id, event_type=webhook_type,
                                    event_id=envelope.event_id, source_event_type=envelope.type,
                                    subject_id=subject_id, occurred_at=envelope.occurred_at, data=data)

    try:
        uow.save_many([queued(iid) for iid in integration_ids])  # each a new stream (version 0): one statement
    except ConcurrencyError:  # one was queued before (the same event and integration): nothing was appended
        for integration_id in integration_ids:
            message = queued(integration_id)
            if uow.stream_version(message.stream_id) == 0:
                uow.save(message)


def _subject_updated(uow: Any, envelope: EventEnvelope) -> Queued:
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
    _queue(uow, envelope, "subject.updated", targets, subject_id, {"subject_id": subject_id, "changed": changed})
    return Queued(len(targets), targets)


def _subject_erased(uow: Any, envelope: EventEnvelope) -> Queued:
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
    _queue(uow, envelope, "subject.erased", targets, None, {"subject_id": subject_id, "mode": mode})
    stream = f"erasure-{request_id}"
    if uow.stream_version(stream) == 0:
        uow.record(stream, 0, [SubjectErased(subject_id=subject_id, mode=str(mode), integration_ids=targets)
                               .new_event(request_id)])
    return Queued(len(targets), targets)
