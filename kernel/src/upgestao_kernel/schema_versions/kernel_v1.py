"""Kernel schema version 1: event store, outbox, processed events, subject keys.

Revision ID: kernel_v1
Revises:
"""

from alembic import op

from upgestao_kernel.schema import create_kernel_tables, drop_kernel_tables

revision = "kernel_v1"
down_revision = None
branch_labels = ("kernel",)
depends_on = None


def upgrade() -> None:
    create_kernel_tables(op)


def downgrade() -> None:
    drop_kernel_tables(op)
