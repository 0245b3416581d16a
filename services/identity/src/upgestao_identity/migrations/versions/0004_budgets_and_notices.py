"""Attempt budgets instead of failure rows (counted before the password is checked, atomically),
and the notices the notifier fetches (a reset token, an old e-mail: sealed, never on the broker).

Revision ID: 0004 (not 0003: the former layout's copy of the kernel's request_replies had that id, and a
database stamped with it is read as the former layout's)
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_table("login_failures")  # a throttle's memory: a restart of every budget is acceptable
    op.create_table(
        "login_budgets",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_at", TS, nullable=False),
        sa.Column("blocked_until", TS, nullable=False),
    )
    op.create_index("ix_login_budgets_last", "login_budgets", ["last_at"])
    op.create_table(
        "notices",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False, index=True),
        sa.Column("sealed", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("fetched_at", TS),
    )
    op.create_index("ix_notices_expires", "notices", ["expires_at"])


def downgrade() -> None:
    op.drop_table("notices")
    op.drop_table("login_budgets")
    op.create_table(
        "login_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("failed_at", TS, nullable=False),
    )
    op.create_index("ix_login_failures_key", "login_failures", ["key", "failed_at"])
