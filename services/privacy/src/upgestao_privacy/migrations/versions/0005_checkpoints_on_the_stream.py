"""Checkpoints leave the database: the relay puts each one on the ``audit.log`` stream (after the records
it covers) and appends it to the checkpoint file an auditor keeps, then remembers how far it got here.

A checkpoint held only in the database it vouches for proves nothing against whoever can rewrite that
database and holds the signing key: a rewritten log re-signed with the pod's key verifies on its own.
A copy kept elsewhere (the stream's retention, the auditor's file) must stay a prefix of the log;
``audit verify --against <file>`` checks that (issue 11, finding 7).

Revision ID: 0005 (0004 was the former layout's copy of the kernel's request_replies: never used again)
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # every checkpoint with a larger tree size is still to publish: an existing log publishes them all once
    with op.batch_alter_table("audit_stream_position") as batch:
        batch.add_column(sa.Column("checkpoints_published", BIG, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("audit_stream_position") as batch:
        batch.drop_column("checkpoints_published")
