"""The third parties personal data is shared with (issue 15): the integrations' names, privacy-policy URLs
and statuses, from ``integrations.events``, for sharing reports (R9.1).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from upgestao_kernel.schema import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "third_parties",
        sa.Column("recipient", sa.String(80), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("privacy_policy_url", sa.String(2048), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("third_parties")
