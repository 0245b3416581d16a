"""Data-subject requests (LGPD art. 18): their read model, the contact channel's code notices and its
rate-limit windows (``adapters/request_tables.py``).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ID = sa.String(36)


def upgrade() -> None:
    op.create_table(
        "privacy_requests",
        sa.Column("id", ID, primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("subject_id", ID),
        sa.Column("subject_kind", sa.String(16)),
        sa.Column("requester_id", ID),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("closed_at", TS),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_privacy_requests_state_due", "privacy_requests", ["state", "due_at"])
    op.create_index("ix_privacy_requests_subject", "privacy_requests", ["subject_id"])
    op.create_index("ix_privacy_requests_requester", "privacy_requests", ["requester_id"])
    op.create_table(
        "privacy_request_notices",
        sa.Column("id", ID, primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("request_id", ID, nullable=False),
        sa.Column("vault_subject", ID, nullable=False),
        sa.Column("sealed", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_privacy_request_notices_request_id", "privacy_request_notices", ["request_id"])
    op.create_index("ix_privacy_request_notices_expires_at", "privacy_request_notices", ["expires_at"])
    op.create_table(
        "privacy_contact_budgets",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("privacy_contact_budgets")
    op.drop_index("ix_privacy_request_notices_expires_at", "privacy_request_notices")
    op.drop_index("ix_privacy_request_notices_request_id", "privacy_request_notices")
    op.drop_table("privacy_request_notices")
    op.drop_index("ix_privacy_requests_requester", "privacy_requests")
    op.drop_index("ix_privacy_requests_subject", "privacy_requests")
    op.drop_index("ix_privacy_requests_state_due", "privacy_requests")
    op.drop_table("privacy_requests")
