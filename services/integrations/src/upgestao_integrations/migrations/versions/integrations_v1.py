"""Integrations tables: integrations, their sealed secrets, webhook messages and attempts, endpoint health,
who received whose data (shared_subjects) and the recover jobs.

Revision ID: integrations_v1
Revises: (none: the first of this service's own; depends on the kernel's kernel_v1)
"""

import sqlalchemy as sa
from alembic import op

revision = "integrations_v1"
down_revision = None
branch_labels = ("integrations",)
depends_on = "kernel_v1"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "integrations",
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
    op.create_index("ix_integrations_created", "integrations", ["created_at", "id"])
    op.create_table(
        "webhook_messages",
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
    op.create_index("ix_webhook_messages_due", "webhook_messages", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_messages_integration", "webhook_messages", ["integration_id", "created_at"])
    op.create_index("ix_webhook_messages_subject", "webhook_messages", ["subject_id", "status"])
    op.create_table(
        "webhook_attempts",
        sa.Column("message_id", sa.String(40), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("status_code", sa.Integer),
        sa.Column("outcome", sa.String(20)),
        sa.Column("duration_ms", sa.Float),
        sa.Column("error", sa.String(300)),
    )
    op.create_table(
        "shared_subjects",
        sa.Column("integration_id", sa.String(40), primary_key=True),
        sa.Column("subject_id", sa.String(36), primary_key=True),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("first_at", TS, nullable=False),
        sa.Column("last_at", TS, nullable=False),
    )
    op.create_index("ix_shared_subjects_subject", "shared_subjects", ["subject_id"])
    op.create_table(
        "integration_secrets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("integration_id", sa.String(40), nullable=False),
        sa.Column("sealed", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("valid_until", TS),
    )
    op.create_index("ix_integration_secrets_integration", "integration_secrets", ["integration_id"])
    op.create_table(
        "endpoint_health",
        sa.Column("integration_id", sa.String(40), primary_key=True),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("throttled_until", TS),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "recoveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("integration_id", sa.String(40), nullable=False),
        sa.Column("since", TS, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("queued", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("completed_at", TS),
    )


def downgrade() -> None:
    for table in ("recoveries", "endpoint_health", "integration_secrets", "shared_subjects", "webhook_attempts",
                  "webhook_messages", "integrations"):
        op.drop_table(table)
