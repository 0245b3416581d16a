"""API keys for integrated tools (issue 15): the ``api_keys`` read model (hashes, never a key) and the
``api_key_usage`` operational store (when each key was last used).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(36), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS),
        sa.Column("revoked_at", TS),
        sa.Column("revoked_by", sa.String(36)),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_api_keys_created", "api_keys", ["created_at", "id"])
    op.create_table(
        "api_key_usage",
        sa.Column("key_id", sa.String(36), primary_key=True),
        sa.Column("last_used_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_key_usage")
    op.drop_index("ix_api_keys_created", table_name="api_keys")
    op.drop_table("api_keys")
