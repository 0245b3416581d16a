"""Kernel tables: event store, outbox, processed events, subject keys.

Revision ID: 0001
Revises:
"""

from alembic import op
from upgestao_kernel.schema import create_kernel_tables, drop_kernel_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kernel_tables(op)


def downgrade() -> None:
    drop_kernel_tables(op)
