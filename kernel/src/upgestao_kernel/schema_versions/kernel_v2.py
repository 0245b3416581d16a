"""Kernel schema version 2: request_replies, the kept replies of keyed requests (a retried write is
answered from the reply kept with its effects, never carried out twice).

Revision ID: kernel_v2
Revises: kernel_v1
"""

from alembic import op

from upgestao_kernel.schema import create_kernel_v2_tables, drop_kernel_v2_tables

revision = "kernel_v2"
down_revision = "kernel_v1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kernel_v2_tables(op)


def downgrade() -> None:
    drop_kernel_v2_tables(op)
