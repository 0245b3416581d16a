"""The privacy service's own tables: the audit log.

``audit_records`` and ``audit_tree_nodes`` are append-only (the database
refuses UPDATE, DELETE and TRUNCATE: migration 0002), and so is
``audit_checkpoints``. ``audit_tree_head`` is the one mutable row: the tree
size and its right border, locked by every append so that sequence numbers
are gap-free whatever the number of ingesting processes.
"""

from __future__ import annotations

import sqlalchemy as sa
from upgestao_kernel.schema import UtcDateTime

metadata = sa.MetaData()

BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

audit_records = sa.Table(
    "audit_records",
    metadata,
    sa.Column("seq", BigInt, primary_key=True, autoincrement=False),  # 0-based leaf index
    sa.Column("audit_id", sa.String(36), nullable=False, unique=True),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("resource_type", sa.String(64), nullable=False),
    sa.Column("subject_id", sa.String(64), nullable=True),
    sa.Column("actor_id", sa.String(64), nullable=True),
    sa.Column("request_id", sa.String(128), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    # the leaf: canonical JSON (sorted keys, UTF-8) of the record with its seq
    sa.Column("leaf", sa.Text, nullable=False),
    sa.Column("stored_at", UtcDateTime, nullable=False),
    # subject and actor are searched on the leaf itself, through expression indexes (migration 0003):
    # the columns are checked against the leaf, never trusted to find a record
    sa.Index("ix_audit_records_occurred", "occurred_at"),
    sa.Index("ix_audit_records_action", "action", "seq"),
)

audit_tree_nodes = sa.Table(
    "audit_tree_nodes",
    metadata,
    # node_id(level, index): the complete subtree over leaves [index << level, (index + 1) << level);
    # a leaf's hash has node_id == its seq
    sa.Column("node_id", BigInt, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)

LEVEL_SHIFT = 48  # 2^48 leaves per level at most; level <= 48 keeps node ids in a signed BIGINT


def node_id(level: int, index: int) -> int:
    return (level << LEVEL_SHIFT) | index


audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("tree_size", BigInt, primary_key=True, autoincrement=False),
    sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("signed_at", UtcDateTime, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("signature", sa.LargeBinary(64), nullable=False),
)

audit_tree_head = sa.Table(
    "audit_tree_head",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),  # always 1
    sa.Column("tree_size", BigInt, nullable=False),
    sa.Column("frontier", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# how far the audit stream has been fed (records with seq < stream_position are on it), and the tree size
# of the last checkpoint published (on the stream and in the checkpoint file: migration 0005)
audit_stream_position = sa.Table(
    "audit_stream_position",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),  # always 1
    sa.Column("next_seq", BigInt, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("checkpoints_published", BigInt, nullable=False, server_default="0"),
)

APPEND_ONLY_TABLES = ("audit_records", "audit_tree_nodes", "audit_checkpoints")


def leaf_member_sql(dialect: str, member: str) -> str:
    """The SQL text of a member of the leaf, exactly as the expression indexes of migration 0003 write it
    (the planner uses an expression index only for the same expression)."""
    if member not in ("subject_id", "actor_id"):
        raise ValueError(f"no leaf index on {member!r}")
    if dialect == "postgresql":
        return f"((leaf::jsonb) ->> '{member}')"
    return f"json_extract(leaf, '$.{member}')"
