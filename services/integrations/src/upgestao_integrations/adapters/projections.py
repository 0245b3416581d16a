"""Projections of the integrations service's event log into its read models (SQL).

``integrations``, ``webhook_messages``, ``webhook_attempts`` and ``shared_subjects`` are applied in each
append's transaction and rebuilt by ``rebuild``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from upgestao_kernel.events import EventEnvelope, EventHandlers

from ..domain.events import (
    IntegrationChanged,
    IntegrationDisabled,
    IntegrationEnabled,
    IntegrationRegistered,
    IntegrationSecretRotated,
    WebhookAttemptFinished,
    WebhookAttemptStarted,
    WebhookMessageCanceled,
    WebhookMessageQueued,
    WebhookMessageRequeued,
)
from ..domain.messages import CANCELED, DELIVERING, PENDING
from .tables import integrations, shared_subjects, webhook_attempts, webhook_messages

i, m, a, s = integrations.c, webhook_messages.c, webhook_attempts.c, shared_subjects.c


def _id(envelope: EventEnvelope, prefix: str) -> str:
    return envelope.stream_id.removeprefix(prefix + "-")


def _at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class IntegrationsProjection:
    name = "integrations"
    tables = (integrations, webhook_messages, webhook_attempts, shared_subjects)
    on = EventHandlers()

    def apply(self, conn: Connection, event: EventEnvelope) -> None:
        self.on.dispatch(self, event, conn)

    def apply_many(self, conn: Connection, envelopes: Sequence[EventEnvelope]) -> None:
        """:meth:`apply` for a unit of work's ``save_many``, to the same effect: a run of attempt starts or
        finishes of distinct messages (a dispatcher's batch of claims or outcomes) is applied with one
        statement per table (executemany); anything else event by event, in order."""
        i_ = 0
        while i_ < len(envelopes):
            kind = envelopes[i_].type
            j = i_
            streams: set[str] = set()
            while (j < len(envelopes) and envelopes[j].type == kind and kind in _BATCHED
                   and envelopes[j].stream_id not in streams):
                streams.add(envelopes[j].stream_id)
                j += 1
            if j - i_ > 1:
                _BATCHED[kind](conn, envelopes[i_:j])
                i_ = j
            else:
                self.apply(conn, envelopes[i_])
                i_ += 1

    # -- integrations

    def _integration(self, conn: Connection, envelope: EventEnvelope, **values: Any) -> None:
        conn.execute(integrations.update().where(i.id == _id(envelope, "integration"))
                     .values(updated_at=envelope.occurred_at, version=envelope.version, **values))

    @on(IntegrationRegistered)
    def _registered(self, conn: Connection, envelope: EventEnvelope, event: IntegrationRegistered) -> None:
        conn.execute(integrations.insert().values(
            id=_id(envelope, "integration"), name=event.name, url=event.url, events=list(event.events),
            fields=list(event.fields), privacy_policy_url=event.privacy_policy_url, status=event.status,
            disabled_reason=None, created_at=envelope.occurred_at, updated_at=envelope.occurred_at,
            secret_rotated_at=None, previous_secret_valid_until=None, version=envelope.version))

    @on(IntegrationChanged)
    def _changed(self, conn: Connection, envelope: EventEnvelope, event: IntegrationChanged) -> None:
        self._integration(conn, envelope, name=event.name, url=event.url, events=list(event.events),
                          fields=list(event.fields), privacy_policy_url=event.privacy_policy_url,
                          status=event.status, disabled_reason=event.disabled_reason)

    @on(IntegrationSecretRotated)
    def _rotated(self, conn: Connection, envelope: EventEnvelope, event: IntegrationSecretRotated) -> None:
        if event.previous_secret_id is None:
            self._integration(conn, envelope)
        else:
            self._integration(conn, envelope, secret_rotated_at=envelope.occurred_at,
                              previous_secret_valid_until=_at(event.previous_valid_until))

    @on(IntegrationDisabled)
    def _disabled(self, conn: Connection, envelope: EventEnvelope, event: IntegrationDisabled) -> None:
        self._integration(conn, envelope, status="disabled", disabled_reason=event.reason)

    @on(IntegrationEnabled)
    def _enabled(self, conn: Connection, envelope: EventEnvelope, event: IntegrationEnabled) -> None:
        self._integration(conn, envelope, status="enabled", disabled_reason=None)

    # -- messages

    def _message(self, conn: Connection, envelope: EventEnvelope, **values: Any) -> None:
        conn.execute(webhook_messages.update().where(m.id == _id(envelope, "webhook_message"))
                     .values(updated_at=envelope.occurred_at, version=envelope.version, **values))

    @on(WebhookMessageQueued)
    def _queued(self, conn: Connection, envelope: EventEnvelope, event: WebhookMessageQueued) -> None:
        conn.execute(webhook_messages.insert().values(
            id=_id(envelope, "webhook_message"), integration_id=event.integration_id, event_type=event.event_type,
            event_id=event.event_id, source_event_type=event.source_event_type, subject_id=event.subject_id,
            occurred_at=_at(event.occurred_at), data=dict(event.refs), status=PENDING, attempts=0,
            next_attempt_at=envelope.occurred_at, claimed_at=None, created_at=envelope.occurred_at,
            updated_at=envelope.occurred_at, version=envelope.version))

    @on(WebhookAttemptStarted)  # logs written before claims were leases
    def _started(self, conn: Connection, envelope: EventEnvelope, event: WebhookAttemptStarted) -> None:
        started = _at(event.started_at)
        message_id = _id(envelope, "webhook_message")
        self._message(conn, envelope, status=DELIVERING, attempts=event.attempt, claimed_at=started,
                      next_attempt_at=None)
        conn.execute(webhook_attempts.insert().values(message_id=message_id, number=event.attempt,
                                                      started_at=started))

    @on(WebhookAttemptFinished)
    def _finished(self, conn: Connection, envelope: EventEnvelope, event: WebhookAttemptFinished) -> None:
        message_id = _id(envelope, "webhook_message")
        self._message(conn, envelope, status=event.status, attempts=event.attempt,
                      next_attempt_at=_at(event.next_attempt_at), claimed_at=None)
        _attempts_finished(conn, [_attempt_row(message_id, event)])
        if event.shared_fields and event.shared_subject_id:
            row = conn.execute(sa.select(m.integration_id).where(m.id == message_id)).first()
            if row is not None:
                _shared(conn, row.integration_id, event.shared_subject_id, event.shared_fields, envelope.occurred_at)

    @on(WebhookMessageCanceled)
    def _canceled(self, conn: Connection, envelope: EventEnvelope, event: WebhookMessageCanceled) -> None:
        self._message(conn, envelope, status=CANCELED, next_attempt_at=None, claimed_at=None)

    @on(WebhookMessageRequeued)
    def _requeued(self, conn: Connection, envelope: EventEnvelope, event: WebhookMessageRequeued) -> None:
        self._message(conn, envelope, status=PENDING, next_attempt_at=envelope.occurred_at, claimed_at=None)


_MESSAGE_FINISHED = webhook_messages.update().where(m.id == sa.bindparam("b_id")).values(
    status=sa.bindparam("b_status"), attempts=sa.bindparam("b_attempt"), next_attempt_at=sa.bindparam("b_next"),
    claimed_at=None, updated_at=sa.bindparam("b_at"), version=sa.bindparam("b_version"))


def _attempt_row(message_id: str, event: WebhookAttemptFinished) -> dict[str, Any]:
    return {"message_id": message_id, "number": event.attempt, "started_at": _at(event.started_at),
            "finished_at": _at(event.finished_at), "status_code": event.status_code, "outcome": event.outcome,
            "duration_ms": event.duration_ms, "error": event.error}


def _attempts_finished(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """The attempts as they ended, in one statement: each inserted whole (its claim was a lease), or, for an
    attempt whose start a log from before leases recorded (:class:`WebhookAttemptStarted`), its row completed."""
    insert = _INSERT_OF[conn.dialect.name](webhook_attempts)
    conn.execute(insert.on_conflict_do_update(
        index_elements=[a.message_id, a.number],
        set_={column: insert.excluded[column] for column in
              ("started_at", "finished_at", "status_code", "outcome", "duration_ms", "error")}), rows)


def _finished_many(conn: Connection, envelopes: Sequence[EventEnvelope]) -> None:
    rows, attempts, shares = [], [], []
    for envelope in envelopes:
        event = WebhookAttemptFinished.from_envelope(envelope)
        message_id = _id(envelope, "webhook_message")
        rows.append({"b_id": message_id, "b_status": event.status, "b_next": _at(event.next_attempt_at),
                     "b_at": envelope.occurred_at, "b_version": envelope.version, "b_attempt": event.attempt})
        attempts.append(_attempt_row(message_id, event))
        if event.shared_fields and event.shared_subject_id:
            shares.append((message_id, event.shared_subject_id, event.shared_fields, envelope.occurred_at))
    conn.execute(_MESSAGE_FINISHED, rows)
    _attempts_finished(conn, attempts)
    if shares:
        _shared_many(conn, shares)


def _queued_many(conn: Connection, envelopes: Sequence[EventEnvelope]) -> None:
    rows = []
    for envelope in envelopes:
        event = WebhookMessageQueued.from_envelope(envelope)
        rows.append({"id": _id(envelope, "webhook_message"), "integration_id": event.integration_id,
                     "event_type": event.event_type, "event_id": event.event_id,
                     "source_event_type": event.source_event_type, "subject_id": event.subject_id,
                     "occurred_at": _at(event.occurred_at), "data": dict(event.refs), "status": PENDING,
                     "attempts": 0, "next_attempt_at": envelope.occurred_at, "claimed_at": None,
                     "created_at": envelope.occurred_at, "updated_at": envelope.occurred_at,
                     "version": envelope.version})
    conn.execute(webhook_messages.insert(), rows)


_BATCHED = {WebhookMessageQueued.type: _queued_many, WebhookAttemptFinished.type: _finished_many}


def _shared(conn: Connection, integration_id: str, subject_id: str, fields: list[str], at: datetime) -> None:
    _merge_shares(conn, {(integration_id, subject_id): {"fields": set(fields), "first_at": at, "last_at": at}})


def _shared_many(conn: Connection, shares: list[tuple[str, str, list[str], datetime]]) -> None:
    """:func:`_shared` for several successes (message id, subject id, fields, time), in order, to the same effect:
    the pairs merged first, then :func:`_merge_shares` once."""
    integration_of = dict(conn.execute(sa.select(m.id, m.integration_id).where(
        m.id.in_(sorted({message_id for message_id, *_ in shares})))).all())
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for message_id, subject_id, fields, at in shares:
        if message_id not in integration_of:
            continue
        pair = (integration_of[message_id], subject_id)
        entry = merged.setdefault(pair, {"fields": set(), "first_at": at})
        entry["fields"] |= set(fields)
        entry["last_at"] = at
    if merged:
        _merge_shares(conn, merged)


def _merge_shares(conn: Connection, merged: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Add ``fields`` to what each (integration, subject) pair received, in three statements, safe beside
    another transaction merging into the same pairs (two batches of one integration recording successes for
    one customer at once): each missing row is inserted empty unless one exists or is being inserted (``ON
    CONFLICT DO NOTHING`` waits for the other insert), the pairs' rows are locked in key order (``FOR UPDATE``:
    the other transaction's merge is read once it commits, never overwritten), then updated to the union.
    Reading first and then inserting or updating lost one of two such merges: a duplicate key that failed
    the whole batch's record, or a field dropped from the set that decides who is told of a correction."""
    keys = sorted(merged)
    insert = _INSERT_OF[conn.dialect.name](shared_subjects).on_conflict_do_nothing(
        index_elements=[s.integration_id, s.subject_id])
    conn.execute(insert, [{"integration_id": iid, "subject_id": sid, "fields": [],
                           "first_at": merged[(iid, sid)]["first_at"], "last_at": merged[(iid, sid)]["first_at"]}
                          for iid, sid in keys])
    integration_ids, subject_ids = sorted({iid for iid, _ in keys}), sorted({sid for _, sid in keys})
    current = {(row.integration_id, row.subject_id): row for row in conn.execute(
        sa.select(s.integration_id, s.subject_id, s.fields, s.last_at)
        .where(s.integration_id.in_(integration_ids), s.subject_id.in_(subject_ids))
        .order_by(s.integration_id, s.subject_id).with_for_update())}
    conn.execute(_SHARED_UPDATE, [
        {"b_iid": iid, "b_sid": sid, "b_fields": sorted(set(current[(iid, sid)].fields) | merged[(iid, sid)]["fields"]),
         "b_last": max(current[(iid, sid)].last_at, merged[(iid, sid)]["last_at"])}
        for iid, sid in keys])


_INSERT_OF = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
_SHARED_UPDATE = shared_subjects.update().where(
    s.integration_id == sa.bindparam("b_iid"), s.subject_id == sa.bindparam("b_sid")).values(
    fields=sa.bindparam("b_fields", type_=shared_subjects.c.fields.type), last_at=sa.bindparam("b_last"))


def projections() -> list[IntegrationsProjection]:
    return [IntegrationsProjection()]
