"""Messaging's own tables: read models of its event log (``rebuild`` gives them back from the log).

* ``teams`` / ``team_members`` — a team's name (not personal data) and its staff members.
* ``conversations`` — one row per conversation: customer, channel, status, priority, labels, assignee,
  team, times, and the subject as vault ciphertext (sealed under the customer; null once erased).
* ``messages`` — one row per message of a conversation or chat. ``position`` is the global position of
  its ``message_created`` event: unique and increasing, the paging (and search) cursor. The body is
  vault ciphertext under ``key_subject_id`` (the customer, or a chat message's author); ``erased``
  once that subject's key is shredded (the body is then null).
* ``message_versions`` — every version of every body (the first included), sealed as the message.
* ``chats`` / ``chat_members`` — a chat (title sealed under its creator) and its current members.
* ``read_cursors`` — per user and container, the position read up to (never moves back).
* ``subject_purges`` — one row per erased data subject: when the key was shredded (``subject_erased``) and when
  the read models and the search index were purged of what was sealed under it (``subject_purged``; null:
  the sweep's work to do). Ids and counts only.
"""

from __future__ import annotations

import sqlalchemy as sa
from upgestao_kernel.schema import UtcDateTime

metadata = sa.MetaData()
TS = UtcDateTime()
ID = sa.String(36)
SEALED = sa.Text

teams = sa.Table(
    "teams", metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

team_members = sa.Table(
    "team_members", metadata,
    sa.Column("team_id", ID, primary_key=True),
    sa.Column("user_id", ID, primary_key=True),
)
sa.Index("ix_team_members_user", team_members.c.user_id)

conversations = sa.Table(
    "conversations", metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("customer_id", ID, nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("snoozed_until", TS),
    sa.Column("priority", sa.String(20), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("assignee_id", ID),
    sa.Column("team_id", ID),
    sa.Column("subject_sealed", SEALED),
    sa.Column("erased", sa.Boolean, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("last_message_at", TS),
    sa.Column("last_activity_at", TS, nullable=False),
)
sa.Index("ix_conversations_activity", conversations.c.last_activity_at, conversations.c.id)
sa.Index("ix_conversations_assignee", conversations.c.assignee_id, conversations.c.last_activity_at)
sa.Index("ix_conversations_team", conversations.c.team_id, conversations.c.last_activity_at)
sa.Index("ix_conversations_customer", conversations.c.customer_id)
sa.Index("ix_conversations_snoozed", conversations.c.status, conversations.c.snoozed_until)

messages = sa.Table(
    "messages", metadata,
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
    sa.Column("body_sealed", SEALED),
    sa.Column("attachment_ids", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("erased", sa.Boolean, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("edited_at", TS),
)
sa.Index("ix_messages_container", messages.c.container_kind, messages.c.container_id, messages.c.position)
sa.Index("ix_messages_subject", messages.c.key_subject_id)
sa.Index("ix_messages_author", messages.c.author_id)

message_versions = sa.Table(
    "message_versions", metadata,
    sa.Column("message_id", ID, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("key_subject_id", ID, nullable=False),
    sa.Column("body_sealed", SEALED),
    sa.Column("editor_id", ID, nullable=False),
    sa.Column("edited_at", TS, nullable=False),
)
sa.Index("ix_message_versions_subject", message_versions.c.key_subject_id)

chats = sa.Table(
    "chats", metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("creator_id", ID, nullable=False),
    sa.Column("title_sealed", SEALED),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("last_message_at", TS),
)
sa.Index("ix_chats_creator", chats.c.creator_id)

chat_members = sa.Table(
    "chat_members", metadata,
    sa.Column("chat_id", ID, primary_key=True),
    sa.Column("user_id", ID, primary_key=True),
)
sa.Index("ix_chat_members_user", chat_members.c.user_id)

read_cursors = sa.Table(
    "read_cursors", metadata,
    sa.Column("user_id", ID, primary_key=True),
    sa.Column("container_id", ID, primary_key=True),
    sa.Column("container_kind", sa.String(20), nullable=False),
    sa.Column("message_id", ID, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("read_at", TS, nullable=False),
)
sa.Index("ix_read_cursors_container", read_cursors.c.container_id)

subject_purges = sa.Table(
    "subject_purges", metadata,
    sa.Column("subject_id", ID, primary_key=True),
    sa.Column("erased_at", TS, nullable=False),
    sa.Column("purged_at", TS),
    sa.Column("messages", sa.Integer),
    sa.Column("search_entries", sa.Integer),
    sa.Column("attachments", sa.Integer),
)
sa.Index("ix_subject_purges_pending", subject_purges.c.purged_at, subject_purges.c.erased_at)

TABLES = (teams, team_members, conversations, messages, message_versions, chats, chat_members, read_cursors,
          subject_purges)
KEYS = {t.name: tuple(c.name for c in t.primary_key.columns) for t in TABLES}
