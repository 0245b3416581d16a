"""Messaging search index: each entry carries its message's terms as a signature (a 63-bit OR of one bit per
term), so that a search passes over most entries of a message lacking another word of the query without
probing that word's entries.

An entry indexed before this revision gets -1 (every bit: it passes every filter, and is probed as before)
until ``python -m upgestao_messaging reindex`` rewrites it; adding a column with a constant default rewrites
no row (PostgreSQL keeps the default in the catalogue, SQLite reads it from the schema).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("search_terms", sa.Column("signature", sa.BigInteger, nullable=False, server_default=sa.text("-1")))


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place (a batch copy would lose WITHOUT ROWID)
    op.execute("ALTER TABLE search_terms DROP COLUMN signature")
