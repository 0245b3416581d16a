"""Identity tables: users, customers, roles, sessions, password resets (read
models) and credentials, photos, login failures (operational stores).

Revision ID: 0002
Revises: (none: the first of this service's own; depends on the kernel's kernel_v1)
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = None
branch_labels = ("identity",)
depends_on = "kernel_v1"

TS = sa.DateTime(timezone=True)


def _sealed(*names: str) -> list[sa.Column]:
    return [sa.Column(name, sa.Text) for name in names]


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("email_index", sa.String(64), nullable=False, unique=True),
        *_sealed("full_name", "email", "phone", "birth_date", "address", "job_title", "gender"),
        sa.Column("photo_id", sa.String(36)),
        sa.Column("photo_content_type", sa.String(40)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_users_created", "users", ["created_at", "id"])
    op.create_index("ix_users_role_status", "users", ["role", "status"])
    op.create_table(
        "customers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("email_index", sa.String(64), unique=True),
        sa.Column("phone_index", sa.String(64), unique=True),
        *_sealed("full_name", "email", "phone", "birth_date", "address", "gender"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_customers_created", "customers", ["created_at", "id"])
    op.create_table(
        "roles",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("permissions", sa.JSON, nullable=False),
        sa.Column("self_editable_fields", sa.JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False, index=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_refreshed_at", TS),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
        sa.Column("revoked_reason", sa.String(40)),
    )
    op.create_table(
        "password_resets",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False, index=True),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS),
    )
    op.create_table(
        "credentials",
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("password_hash", sa.String(100), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "photos",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("subject_id", sa.String(36), nullable=False, index=True),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("failed_at", TS, nullable=False),
    )
    op.create_index("ix_login_failures_key", "login_failures", ["key", "failed_at"])


def downgrade() -> None:
    for table in ("login_failures", "photos", "credentials", "password_resets", "sessions", "roles", "customers",
                  "users"):
        op.drop_table(table)
