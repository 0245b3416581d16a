"""Correction requests, policy versions and their acceptances (read models; cookie consents and each
user's acceptance history are their event streams). The first policy version (2023-09-05) is seeded by
the service at first use, as an event, so that a rebuild gives it back.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from upgestao_kernel.schema import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_corrections",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("requester_id", sa.String(36), nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sealed", sa.Text, nullable=False),
        sa.Column("decision_sealed", sa.Text, nullable=True),
        sa.Column("reviewer_id", sa.String(36), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("decided_at", UtcDateTime, nullable=True),
    )
    op.create_index("ix_privacy_corrections_requester", "privacy_corrections", ["requester_id", "created_at"])
    op.create_index("ix_privacy_corrections_status", "privacy_corrections", ["status", "created_at"])
    op.create_table(
        "privacy_policy_versions",
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("effective_at", UtcDateTime, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("published_at", UtcDateTime, nullable=False),
        sa.Column("published_by", sa.String(36), nullable=True),
        sa.Column("campaign_id", sa.String(36), nullable=False),
        sa.Column("announced", sa.Boolean, nullable=False),
    )
    op.create_table(
        "privacy_policy_acceptances",
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("accepted_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("privacy_policy_acceptances")
    op.drop_table("privacy_policy_versions")
    op.drop_index("ix_privacy_corrections_status", "privacy_corrections")
    op.drop_index("ix_privacy_corrections_requester", "privacy_corrections")
    op.drop_table("privacy_corrections")
