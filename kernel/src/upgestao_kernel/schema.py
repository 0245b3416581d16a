"""The kernel's tables, present in every service's own database.

``kernel_metadata`` describes them for SQLAlchemy Core; the kernel's own Alembic
branch (:mod:`upgestao_kernel.schema_versions`, on which every service's history
depends) creates them with the functions at the end of this module. A later change
to these tables must ship as a new revision of that branch (op.add_column & co.),
never as an edit here alone.
"""

from __future__ import annotations

from datetime import UTC

import sqlalchemy as sa


class UtcDateTime(sa.TypeDecorator):
    """``DateTime(timezone=True)`` that always reads back an aware UTC datetime
    (SQLite drops the zone; every timestamp stored here is UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: store aware UTC datetimes only")
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


# SQLite only autoincrements an INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

kernel_metadata = sa.MetaData()

events = sa.Table(
    "events",
    kernel_metadata,
    sa.Column("position", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    sa.Column("stream_id", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("type", sa.String(200), nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor_id", sa.String(64), nullable=True),
    sa.Column("actor_role", sa.String(64), nullable=True),
    sa.Column("correlation_id", sa.String(64), nullable=True),
    sa.Column("causation_id", sa.String(64), nullable=True),
    sa.Column("data", sa.JSON, nullable=False),
    sa.UniqueConstraint("stream_id", "version", name="uq_events_stream_version"),
)

outbox = sa.Table(
    "outbox",
    kernel_metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(36), nullable=False, unique=True),
    sa.Column("exchange", sa.String(200), nullable=False),
    sa.Column("routing_key", sa.String(200), nullable=False),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_outbox_unsent", "id", postgresql_where=sa.text("sent_at IS NULL"),
             sqlite_where=sa.text("sent_at IS NULL")),
)

processed_events = sa.Table(
    "processed_events",
    kernel_metadata,
    sa.Column("consumer", sa.String(200), primary_key=True),
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
)

subject_keys = sa.Table(
    "subject_keys",
    kernel_metadata,
    sa.Column("subject_id", sa.String(64), primary_key=True),
    # NULL once shredded: the key is gone, every ciphertext of the subject is noise.
    sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
    sa.Column("master_kid", sa.String(16), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("shredded_at", sa.DateTime(timezone=True), nullable=True),
)

# Kernel schema version 2: the replies of keyed requests (see keyed_requests.py).
request_replies = sa.Table(
    "request_replies",
    kernel_metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("method", sa.String(200), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("actor_id", sa.String(64), nullable=True),
    # claimed (an effect committed, the reply not yet known) | answered | not_kept
    sa.Column("state", sa.String(12), nullable=False),
    # the reply as JSON, sealed under subject_id's key when it holds that subject's values
    sa.Column("reply", sa.Text, nullable=True),
    sa.Column("subject_id", sa.String(64), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("answered_at", UtcDateTime, nullable=True),
    sa.Index("ix_request_replies_created", "created_at"),
)

KERNEL_V1 = (events, outbox, processed_events, subject_keys)
KERNEL_V2 = (request_replies,)


def create_kernel_tables(op) -> None:
    """Alembic: create the kernel tables of kernel schema version 1 (revision ``kernel_v1``)."""
    kernel_metadata.create_all(op.get_bind(), tables=list(KERNEL_V1), checkfirst=False)


def drop_kernel_tables(op) -> None:
    kernel_metadata.drop_all(op.get_bind(), tables=list(KERNEL_V1))


def create_kernel_v2_tables(op) -> None:
    """Alembic: kernel schema version 2 (``request_replies``, revision ``kernel_v2``)."""
    kernel_metadata.create_all(op.get_bind(), tables=list(KERNEL_V2), checkfirst=False)


def drop_kernel_v2_tables(op) -> None:
    kernel_metadata.drop_all(op.get_bind(), tables=list(KERNEL_V2))
