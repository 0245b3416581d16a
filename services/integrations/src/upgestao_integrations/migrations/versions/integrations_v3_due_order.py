"""The due messages in the order a claim takes them: a partial index on (next_attempt_at, occurred_at, id) of
the messages waiting for an attempt (``pending`` or ``failed`` with a next attempt).

A claim asks for the oldest due messages, a few at a time (``... ORDER BY next_attempt_at, occurred_at, id
LIMIT n FOR UPDATE SKIP LOCKED``). With only the (status, next_attempt_at) index, PostgreSQL read and sorted
every waiting message at each claim: a burst of N messages cost N²/wave row visits. With this index a claim
reads the first rows in order and stops.

On PostgreSQL the index is built CONCURRENTLY, outside a transaction (see ``integrations_v2``).

Revision ID: integrations_v3
Revises: integrations_v2
"""

import sqlalchemy as sa
from alembic import op

revision = "integrations_v3"
down_revision = "integrations_v2"
branch_labels = None
depends_on = None

INDEX = "ix_webhook_messages_due_order"
COLUMNS = ["next_attempt_at", "occurred_at", "id"]
WAITING = sa.text("status IN ('pending', 'failed') AND next_attempt_at IS NOT NULL")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(INDEX, "webhook_messages", COLUMNS, postgresql_concurrently=True,
                            postgresql_where=WAITING)
    else:
        op.create_index(INDEX, "webhook_messages", COLUMNS, sqlite_where=WAITING)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="webhook_messages")
