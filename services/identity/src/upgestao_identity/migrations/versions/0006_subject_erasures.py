"""Data subjects' erasures (issue 14): an anonymised user keeps no blind index (``users.email_index`` may be
NULL), and a customer has a status (``active``, ``anonymised``, ``blocked``).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:  # SQLite changes a column by copying the table
        batch.alter_column("email_index", existing_type=sa.String(64), nullable=True)
    op.add_column("customers", sa.Column("status", sa.String(20), nullable=False, server_default="active"))


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("status")
    with op.batch_alter_table("users") as batch:
        batch.alter_column("email_index", existing_type=sa.String(64), nullable=False)
