"""Filter by subject and actor on the leaf, not on a column beside it.

``subject_id`` and ``actor_id`` are columns next to the leaf, outside the
Merkle tree: an edit of a column alone (by someone able to switch the
append-only triggers off) would hide a record from ``?subject_id=`` and from
the subject's summary while every leaf still verifies. The search now filters
on the value inside the leaf, through an expression index on it; the columns
stay, and every record read back is checked against them (a disagreement is
reported as tampering).

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# (index, leaf member, the column index it replaces)
LEAF_INDEXES = (("ix_audit_records_leaf_subject", "subject_id", "ix_audit_records_subject"),
                ("ix_audit_records_leaf_actor", "actor_id", "ix_audit_records_actor"))


def leaf_member_sql(dialect: str, member: str) -> str:
    """The SQL expression of a leaf member: the very text of the index, so that the planner uses it."""
    if dialect == "postgresql":
        return f"((leaf::jsonb) ->> '{member}')"
    return f"json_extract(leaf, '$.{member}')"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for index, member, column_index in LEAF_INDEXES:
        op.execute(f"CREATE INDEX {index} ON audit_records ({leaf_member_sql(dialect, member)}, seq)")
        op.drop_index(column_index, table_name="audit_records")


def downgrade() -> None:
    for index, member, column_index in LEAF_INDEXES:
        op.create_index(column_index, "audit_records", [member, "seq"])
        op.drop_index(index, table_name="audit_records")
