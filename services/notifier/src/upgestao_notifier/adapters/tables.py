"""The notifier's own tables: read models of its event log (rebuilt by ``rebuild``).

* ``deliveries`` — one row per (event, recipient): state, attempts, the last reply code and a short
  reason, times; the stream's version, so a row is the delivery's snapshot. No address, no name,
  no body: the address is asked of the owning service for each attempt (audited there and here).
* ``suppressions`` — addresses a server refused permanently, as keyed hashes only.
"""

from __future__ import annotations

import sqlalchemy as sa
from upgestao_kernel.schema import UtcDateTime

metadata = sa.MetaData()
TS = UtcDateTime()

deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("event_type", sa.String(120), nullable=False),
    sa.Column("kind", sa.String(60), nullable=False),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("campaign_id", sa.String(36)),
    sa.Column("recipient_id", sa.String(36), nullable=False),
    sa.Column("message_id", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_code", sa.Integer),
    sa.Column("last_error", sa.String(300)),
    sa.Column("confirmed", sa.Boolean),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("attempt_started_at", TS),
    sa.Column("sent_at", TS),
    sa.Column("next_attempt_at", TS),
    sa.Column("version", sa.Integer, nullable=False),
    sa.UniqueConstraint("event_id", "recipient_id", name="uq_deliveries_event_recipient"),
)
sa.Index("ix_deliveries_due", deliveries.c.status, deliveries.c.next_attempt_at)
sa.Index("ix_deliveries_campaign", deliveries.c.campaign_id, deliveries.c.status)
sa.Index("ix_deliveries_recipient", deliveries.c.recipient_id, deliveries.c.created_at)
sa.Index("ix_deliveries_created", deliveries.c.created_at, deliveries.c.id)
# the deliveries that settled since the metrics' last full count (upgestao_email_deliveries, issue 18)
sa.Index("ix_deliveries_status_updated", deliveries.c.status, deliveries.c.updated_at)

suppressions = sa.Table(
    "suppressions", metadata,
    sa.Column("address_hash", sa.String(64), primary_key=True),
    sa.Column("delivery_id", sa.String(36), nullable=False),
    sa.Column("code", sa.Integer),
    sa.Column("suppressed_at", TS, nullable=False),
)
