"""Messaging tables: teams, conversations, messages (every version kept), chats, read cursors.

0001 and 0002 were the kernel's tables copied here in the former layout: ids never used again.

Revision ID: 0003
Revises: (none: the first of this service's own; depends on the kernel's kernel_v1)
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = None
branch_labels = ("messaging",)
depends_on = "kernel_v1"

TS = sa.DateTime(timezone=True)
ID = sa.String(36)


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "team_members",
        sa.Column("team_id", ID, primary_key=True),
        sa.Column("user_id", ID, primary_key=True),
    )
    op.create_index("ix_team_members_user", "team_members", ["user_id"])
    op.create_table(
        "conversations",
        sa.Column("id", ID, primary_key=True),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("snoozed_until", TS),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("assignee_id", ID),
        sa.Column("team_id", ID),
        sa.Column("subject_sealed", sa.Text),
        sa.Column("erased", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("last_message_at", TS),
        sa.Column("last_activity_at", TS, nullable=False),
    )
    op.create_index("ix_conversations_activity", "conversations", ["last_activity_at", "id"])
    op.create_index("ix_conversations_assignee", "conversations", ["assignee_id", "last_activity_at"])
    op.create_index("ix_conversations_team", "conversations", ["team_id", "last_activity_at"])
    op.create_index("ix_conversations_customer", "conversations", ["customer_id"])
    op.create_index("ix_conversations_snoozed", "conversations", ["status", "snoozed_until"])
    op.create_table(
        "messages",
        sa.Column("id", ID, primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False, unique=True),
        sa.Column("container_kind", sa.String(20), nullable=False),
        sa.Column("container_id", ID, nullable=False),
        sa.Column("conversation_id", ID),
        sa.Column("chat_id", ID),
        sa.Column("customer_id", ID),
        sa.Column("author_id", ID, nullable=False),
        sa.Column("direction", sa.String(20), nullable=False),
        sa.Column("private", sa.Boolean, nullable=False),
        sa.Column("key_subject_id", ID, nullable=False),
        sa.Column("body_sealed", sa.Text),
        sa.Column("attachment_ids", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("erased", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("edited_at", TS),
    )
    op.create_index("ix_messages_container", "messages", ["container_kind", "container_id", "position"])
    op.create_index("ix_messages_subject", "messages", ["key_subject_id"])
    op.create_index("ix_messages_author", "messages", ["author_id"])
    op.create_table(
        "message_versions",
        sa.Column("message_id", ID, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("key_subject_id", ID, nullable=False),
        sa.Column("body_sealed", sa.Text),
        sa.Column("editor_id", ID, nullable=False),
        sa.Column("edited_at", TS, nullable=False),
    )
    op.create_index("ix_message_versions_subject", "message_versions", ["key_subject_id"])
    op.create_table(
        "chats",
        sa.Column("id", ID, primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("creator_id", ID, nullable=False),
        sa.Column("title_sealed", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("last_message_at", TS),
    )
    op.create_index("ix_chats_creator", "chats", ["creator_id"])
    op.create_table(
        "chat_members",
        sa.Column("chat_id", ID, primary_key=True),
        sa.Column("user_id", ID, primary_key=True),
    )
    op.create_index("ix_chat_members_user", "chat_members", ["user_id"])
    op.create_table(
        "read_cursors",
        sa.Column("user_id", ID, primary_key=True),
        sa.Column("container_id", ID, primary_key=True),
        sa.Column("container_kind", sa.String(20), nullable=False),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("read_at", TS, nullable=False),
    )
    op.create_index("ix_read_cursors_container", "read_cursors", ["container_id"])


def downgrade() -> None:
    for table in ("read_cursors", "chat_members", "chats", "message_versions", "messages", "conversations",
                  "team_members", "teams"):
        op.drop_table(table)
