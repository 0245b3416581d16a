"""Webhook messages by (status, updated_at): the metrics count the messages that settled since their last full
count without reading the whole table (upgestao_webhook_messages, issue 18).

On PostgreSQL the index is built CONCURRENTLY, outside a transaction: the table of a running platform is
large, and a plain CREATE INDEX would hold its writers for the build.

Revision ID: integrations_v2
Revises: integrations_v1
"""

from alembic import op

revision = "integrations_v2"
down_revision = "integrations_v1"
branch_labels = None
depends_on = None

INDEX = "ix_webhook_messages_status_updated"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(INDEX, "webhook_messages", ["status", "updated_at"], postgresql_concurrently=True)
    else:
        op.create_index(INDEX, "webhook_messages", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="webhook_messages")
