"""Notifier tables: deliveries (one per event and recipient) and the suppression list.

0001 and 0002 were the kernel's tables copied here in the former layout (until b06866b): ids never used again.

Revision ID: 0003
Revises: (none: the first of this service's own; depends on the kernel's kernel_v1)
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = None
branch_labels = ("notifier",)
depends_on = "kernel_v1"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deliveries",
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
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_deliveries_campaign", "deliveries", ["campaign_id", "status"])
    op.create_index("ix_deliveries_recipient", "deliveries", ["recipient_id", "created_at"])
    op.create_index("ix_deliveries_created", "deliveries", ["created_at", "id"])
    op.create_table(
        "suppressions",
        sa.Column("address_hash", sa.String(64), primary_key=True),
        sa.Column("delivery_id", sa.String(36), nullable=False),
        sa.Column("code", sa.Integer),
        sa.Column("suppressed_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("suppressions")
    op.drop_table("deliveries")
