"""Messaging erasure: ``subject_purges``, one row per erased data subject (issue 14).

An erasure answers once the subject's key is shredded (nothing sealed under it can be opened again), the
conversations and chats are marked and the subject's read cursors dropped: a constant amount of work whatever
the person's number of messages. The read models' ciphertexts and the search entries of the subject's messages
are purged next, by the sweep, in set-based statements (``subject_purged``); this table is the sweep's queue
and its record. A read model of the event log (``rebuild`` gives it back).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from upgestao_kernel.schema import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subject_purges",
        sa.Column("subject_id", sa.String(36), primary_key=True),
        sa.Column("erased_at", UtcDateTime(), nullable=False),
        sa.Column("purged_at", UtcDateTime()),
        sa.Column("messages", sa.Integer),
        sa.Column("search_entries", sa.Integer),
        sa.Column("attachments", sa.Integer),
    )
    op.create_index("ix_subject_purges_pending", "subject_purges", ["purged_at", "erased_at"])


def downgrade() -> None:
    op.drop_index("ix_subject_purges_pending", table_name="subject_purges")
    op.drop_table("subject_purges")
