"""The integrations service's own tables.

Read models of its event log (rebuilt by ``rebuild``):

* ``integrations`` — one row per integration: its settings, state and the stream's version.
* ``webhook_messages`` — one row per (event, integration): the webhook type, the source event's ids, the
  state, the next attempt; the stream's version (a row is the message's snapshot). No payload, no body.
* ``webhook_attempts`` — every attempt: number, times, status code, outcome, duration, a short error.
* ``shared_subjects`` — who received whose data: (integration, subject) with the field names and the first and
  last delivery (ids and field names only), for ``subject.updated`` and ``subject.erased`` (R4.3).

Operational state, written by the service directly (not rebuilt):

* ``integration_secrets`` — the signing secrets, sealed with AES-256-GCM under ``INTEGRATIONS_SECRETS_KEY``.
* ``endpoint_health`` — each endpoint's failures and throttling (``schedule.EndpointHealth`` as JSON).
* ``recoveries`` — the recover jobs and their progress (a job still running at start is resumed).
"""

from __future__ import annotations

import sqlalchemy as sa
from upgestao_kernel.schema import UtcDateTime

metadata = sa.MetaData()
TS = UtcDateTime()

integrations = sa.Table(
    "integrations", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("events", sa.JSON, nullable=False),
    sa.Column("fields", sa.JSON, nullable=False),
    sa.Column("privacy_policy_url", sa.String(2000), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("disabled_reason", sa.String(40)),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("secret_rotated_at", TS),
    sa.Column("previous_secret_valid_until", TS),
    sa.Column("version", sa.Integer, nullable=False),
)
sa.Index("ix_integrations_created", integrations.c.created_at, integrations.c.id)

webhook_messages = sa.Table(
    "webhook_messages", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("integration_id", sa.String(40), nullable=False),
    sa.Column("event_type", sa.String(60), nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("source_event_type", sa.String(120), nullable=False),
    sa.Column("subject_id", sa.String(36)),
    sa.Column("occurred_at", TS, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", TS),
    sa.Column("claimed_at", TS),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)
sa.Index("ix_webhook_messages_due", webhook_messages.c.status, webhook_messages.c.next_attempt_at)
# the due messages in a claim's order (``SqlMessages.due``, whose condition is WAITING word for word: SQLite
# uses a partial index only for a query naming its condition, and not through bound parameters): read in
# order, no sort of every waiting message
WAITING = sa.text("status IN ('pending', 'failed') AND next_attempt_at IS NOT NULL")
sa.Index("ix_webhook_messages_due_order", webhook_messages.c.next_attempt_at, webhook_messages.c.occurred_at,
         webhook_messages.c.id, postgresql_where=WAITING, sqlite_where=WAITING)
sa.Index("ix_webhook_messages_integration", webhook_messages.c.integration_id, webhook_messages.c.created_at)
sa.Index("ix_webhook_messages_subject", webhook_messages.c.subject_id, webhook_messages.c.status)
# the messages that settled since the metrics' last full count (upgestao_webhook_messages, issue 18)
sa.Index("ix_webhook_messages_status_updated", webhook_messages.c.status, webhook_messages.c.updated_at)

webhook_attempts = sa.Table(
    "webhook_attempts", metadata,
    sa.Column("message_id", sa.String(40), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("finished_at", TS),
    sa.Column("status_code", sa.Integer),
    sa.Column("outcome", sa.String(20)),
    sa.Column("duration_ms", sa.Float),
    sa.Column("error", sa.String(300)),
)

shared_subjects = sa.Table(
    "shared_subjects", metadata,
    sa.Column("integration_id", sa.String(40), primary_key=True),
    sa.Column("subject_id", sa.String(36), primary_key=True),
    sa.Column("fields", sa.JSON, nullable=False),
    sa.Column("first_at", TS, nullable=False),
    sa.Column("last_at", TS, nullable=False),
)
sa.Index("ix_shared_subjects_subject", shared_subjects.c.subject_id)

integration_secrets = sa.Table(
    "integration_secrets", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("integration_id", sa.String(40), nullable=False),
    sa.Column("sealed", sa.Text, nullable=False),  # base64(nonce | AES-GCM ciphertext), bound to the ids
    sa.Column("created_at", TS, nullable=False),
    sa.Column("valid_until", TS),  # None: the current secret
)
sa.Index("ix_integration_secrets_integration", integration_secrets.c.integration_id)

endpoint_health = sa.Table(
    "endpoint_health", metadata,
    sa.Column("integration_id", sa.String(40), primary_key=True),
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("throttled_until", TS),
    sa.Column("updated_at", TS, nullable=False),
)

recoveries = sa.Table(
    "recoveries", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("integration_id", sa.String(40), nullable=False),
    sa.Column("since", TS, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("queued", sa.Integer, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("completed_at", TS),
)
