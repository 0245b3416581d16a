"""Deliveries by (status, updated_at): the metrics count the deliveries that settled since their last full count
without reading the whole table (upgestao_email_deliveries, issue 18).

On PostgreSQL the index is built CONCURRENTLY, outside a transaction: the deliveries table of a running
platform is large, and a plain CREATE INDEX would hold its writers for the build.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEX = "ix_deliveries_status_updated"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(INDEX, "deliveries", ["status", "updated_at"], postgresql_concurrently=True)
    else:
        op.create_index(INDEX, "deliveries", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="deliveries")
