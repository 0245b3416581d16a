"""Erasure orchestration across services and access/portability bundles.

Erasures and a bundle's link are event-sourced (the kernel's ``events`` table); the one table is
``export_parts``: a bundle's text in parts sealed under the person, until its download ends.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op
from upgestao_kernel.schema import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_parts",
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("part", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("subject_id", sa.String(36), nullable=False),
        sa.Column("sealed", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("export_parts")
