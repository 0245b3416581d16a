"""Messaging search index (keyed hashes of the words) and attachments (sealed).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ID = sa.String(36)


def upgrade() -> None:
    op.create_table(
        "search_terms",
        sa.Column("term", sa.String(32), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("container_kind", sa.String(20), nullable=False),
        sa.Column("container_id", ID, nullable=False),
        sa.Column("subject_id", ID, nullable=False),
        sa.PrimaryKeyConstraint("term", "position", name="pk_search_terms"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_search_terms_subject", "search_terms", ["subject_id"])
    op.create_index("ix_search_terms_message", "search_terms", ["message_id"])
    op.create_index("ix_search_terms_container", "search_terms", ["term", "container_id", "position", "message_id"])
    op.create_table(
        "attachments",
        sa.Column("id", ID, primary_key=True),
        sa.Column("container_kind", sa.String(20), nullable=False),
        sa.Column("container_id", ID, nullable=False),
        sa.Column("subject_id", ID, nullable=False),
        sa.Column("message_id", ID),
        sa.Column("uploader_id", ID, nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("name_sealed", sa.Text),
        sa.Column("sha256_sealed", sa.Text),
        sa.Column("content_sealed", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("linked_at", TS),
        sa.Column("erased", sa.Boolean, nullable=False),
    )
    op.create_index("ix_attachments_message", "attachments", ["message_id"])
    op.create_index("ix_attachments_subject", "attachments", ["subject_id"])
    op.create_index("ix_attachments_pending", "attachments", ["uploader_id", "message_id", "created_at"])


def downgrade() -> None:
    op.drop_table("attachments")
    op.drop_table("search_terms")
