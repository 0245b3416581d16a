"""The audit log: append-only records, Merkle tree nodes, signed checkpoints.

The database itself refuses UPDATE, DELETE and TRUNCATE on the append-only
tables (a trigger on PostgreSQL and on SQLite): not even a bug in this
service can rewrite history. Tampering needs someone able to drop the
triggers, and the signed checkpoints make that detectable.

Revision ID: 0002
Revises: (none: the first of this service's own; depends on the kernel's kernel_v1)
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = None
branch_labels = ("privacy",)
depends_on = "kernel_v1"

TS = sa.DateTime(timezone=True)
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY = ("audit_records", "audit_tree_nodes", "audit_checkpoints")


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("seq", BIG, primary_key=True, autoincrement=False),
        sa.Column("audit_id", sa.String(36), nullable=False, unique=True),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("subject_id", sa.String(64)),
        sa.Column("actor_id", sa.String(64)),
        sa.Column("request_id", sa.String(128)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("leaf", sa.Text, nullable=False),
        sa.Column("stored_at", TS, nullable=False),
    )
    op.create_index("ix_audit_records_subject", "audit_records", ["subject_id", "seq"])
    op.create_index("ix_audit_records_actor", "audit_records", ["actor_id", "seq"])
    op.create_index("ix_audit_records_occurred", "audit_records", ["occurred_at"])
    op.create_index("ix_audit_records_action", "audit_records", ["action", "seq"])
    op.create_table(
        "audit_tree_nodes",
        sa.Column("node_id", BIG, primary_key=True, autoincrement=False),  # (level << 48) | index
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("tree_size", BIG, primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("signed_at", TS, nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("signature", sa.LargeBinary(64), nullable=False),
    )
    op.create_table(
        "audit_tree_head",
        sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("tree_size", BIG, nullable=False),
        sa.Column("frontier", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "audit_stream_position",
        sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("next_seq", BIG, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    # the two single-row tables start at zero: every append and every stream batch locks its row
    now = datetime.now(UTC)
    head = sa.table("audit_tree_head", sa.column("id"), sa.column("tree_size"), sa.column("frontier"),
                    sa.column("updated_at"))
    op.bulk_insert(head, [{"id": 1, "tree_size": 0, "frontier": b"", "updated_at": now}])
    position = sa.table("audit_stream_position", sa.column("id"), sa.column("next_seq"), sa.column("updated_at"))
    op.bulk_insert(position, [{"id": 1, "next_seq": 0, "updated_at": now}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
                    USING ERRCODE = 'insufficient_privilege';
            END
            $$
            """
        )
        for table in APPEND_ONLY:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION audit_append_only()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()")
    else:  # SQLite (local mode): no TRUNCATE there, DELETE without WHERE fires the row trigger
        for table in APPEND_ONLY:
            for operation in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: {operation} on {table} refused'); END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
    for table in ("audit_stream_position", "audit_tree_head", "audit_checkpoints", "audit_tree_nodes",
                  "audit_records"):
        op.drop_table(table)
