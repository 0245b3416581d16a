"""A user's language (a preference, in clear, on the users read model) and the networks each user
logged in from lately (blind indexes only), so that a login from another one is told to the user.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("users", sa.Column("locale", sa.String(8), nullable=False, server_default="pt-BR"))
    op.create_table(
        "known_networks",
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("network_index", sa.String(64), primary_key=True),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("previous_seen", TS),
    )


def downgrade() -> None:
    op.drop_table("known_networks")
    with op.batch_alter_table("users") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("locale")
