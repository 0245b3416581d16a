"""The integrations service's events, each declared once: what its event log stores and what leaves it.

An integration (stream ``integration-<id>``) is a tool a customer integrates: its endpoint, the webhook
types it subscribes to, the fields it may receive and the third party's privacy policy. Published views
carry ids, the tool's name, the policy's URL, field names and states: never the endpoint URL (it may
embed a token), never a signing secret (secrets live sealed in their own table), never a personal value.

A webhook message (stream ``webhook_message-<id>``) is one webhook to one integration; its events stay
inside the service (the attempts' outcomes are in the messages read model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from upgestao_kernel.events import DomainEvent


class IntegrationsEvent(DomainEvent, abstract=True, service="integrations"):
    """An event of the integrations service (published on ``integrations.events``)."""


# -- integrations: stream ``integration-<id>``

_VIEW = ("integration_id", "name", "privacy_policy_url", "fields", "events", "status")


@dataclass(frozen=True)
class IntegrationRegistered(IntegrationsEvent, subject="integration_id", publishes=_VIEW):
    """An admin registered a tool: privacy lists it among the third parties (its policy's URL, R9.1)."""

    name: str
    url: str  # stored, never published (it may embed the tool's token)
    events: list[str]
    fields: list[str]
    privacy_policy_url: str
    status: str


@dataclass(frozen=True)
class IntegrationChanged(IntegrationsEvent, subject="integration_id", publishes=(*_VIEW, "disabled_reason")):
    """The integration as it now is, after a change by an admin, a disable or an enable."""

    name: str
    url: str
    events: list[str]
    fields: list[str]
    privacy_policy_url: str
    status: str
    disabled_reason: str | None = None


@dataclass(frozen=True)
class IntegrationSecretRotated(IntegrationsEvent, subject="integration_id", publishes=False):
    """A new signing secret (sealed in ``integration_secrets``, written in the same transaction); the previous
    one keeps signing until ``previous_valid_until``."""

    secret_id: str
    previous_secret_id: str | None
    previous_valid_until: str | None  # ISO 8601


@dataclass(frozen=True)
class IntegrationDisabled(IntegrationsEvent, subject="integration_id", publishes=("integration_id", "reason")):
    """No more deliveries: ``gone`` (the endpoint answered 410), ``failing`` (5 days of failures) or ``manual``.
    The notifier e-mails the admins for gone/failing (``integrations.notice``)."""

    reason: str


@dataclass(frozen=True)
class IntegrationEnabled(IntegrationsEvent, subject="integration_id", publishes=False):
    """An admin enabled the integration again (its pending messages are delivered)."""


# -- an erasure's confirmation: stream ``erasure-<request id>``


@dataclass(frozen=True)
class SubjectErased(IntegrationsEvent, subject="request_id", publishes=("request_id", "subject_id", "mode")):
    """``subject.erased`` was queued to every integration that received the person's data, and the person's
    pending messages were canceled: privacy's erasure has this participant's confirmation."""

    subject_id: str
    mode: str
    integration_ids: list[str] = field(default_factory=list)


# -- webhook messages: stream ``webhook_message-<id>`` (kept inside the service)


@dataclass(frozen=True)
class WebhookMessageQueued(IntegrationsEvent, subject="message_id", publishes=False):
    """One webhook for one integration, from event ``event_id``. ``refs``: the source event's published ids and
    states (never a personal value: those are opened from their owners at each attempt)."""

    integration_id: str
    event_type: str  # the webhook type (message.created)
    event_id: str
    source_event_type: str
    subject_id: str | None
    occurred_at: str  # ISO 8601: the payload's timestamp
    refs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookAttemptStarted(IntegrationsEvent, subject="message_id", publishes=False):
    """The message was claimed for attempt ``attempt``. No longer appended (a claim is now a lease on the message's
    row, and the attempt is recorded once, by :class:`WebhookAttemptFinished`); kept so that logs written before
    replay as they did."""

    attempt: int
    started_at: str


@dataclass(frozen=True)
class WebhookAttemptFinished(IntegrationsEvent, subject="message_id", publishes=False):
    """Attempt ``attempt``, started at ``started_at`` (when its claim was taken), ended. ``status``: succeeded,
    failed (``next_attempt_at`` set: retried; None: failed for good) or aborted. ``outcome``: succeeded, failed,
    aborted, timeout, refused, error. ``shared_fields``: the integration's names of the personal fields the
    payload carried about ``subject_id`` (a success that carried any records who received whose data:
    subject.updated and subject.erased follow it)."""

    attempt: int
    status: str
    outcome: str
    started_at: str
    finished_at: str
    status_code: int | None = None
    duration_ms: float | None = None
    error: str | None = None
    next_attempt_at: str | None = None
    shared_fields: list[str] = field(default_factory=list)
    shared_subject_id: str | None = None


@dataclass(frozen=True)
class WebhookMessageCanceled(IntegrationsEvent, subject="message_id", publishes=False):
    """Not sent: its data is gone (the owner answered nothing), or the person was erased."""

    reason: str


@dataclass(frozen=True)
class WebhookMessageRequeued(IntegrationsEvent, subject="message_id", publishes=False):
    """Queued again by an admin (resend, recover): the same id, so the receiver can deduplicate."""

    reason: str  # resend, recover
