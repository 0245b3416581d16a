"""The identity service's own tables (read models and operational stores).

Read models (projections of the event log, rebuilt by ``rebuild``): users,
customers, roles, sessions, password_resets. Personal values in them are
vault ciphertexts; lookups go through keyed blind indexes.

Operational stores, deliberately outside the event log:
* ``credentials`` — bcrypt hashes (R1.2: never in an event);
* ``photos`` — sealed photo bytes, referenced by id from the photo event;
* ``login_failures`` — the brute-force throttle's memory.
"""

from __future__ import annotations

import sqlalchemy as sa
from upgestao_kernel.schema import UtcDateTime

metadata = sa.MetaData()
TS = UtcDateTime()

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("role", sa.String(40), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("email_index", sa.String(64), nullable=False, unique=True),
    sa.Column("full_name", sa.Text), sa.Column("email", sa.Text), sa.Column("phone", sa.Text),
    sa.Column("birth_date", sa.Text), sa.Column("address", sa.Text), sa.Column("job_title", sa.Text),
    sa.Column("gender", sa.Text),
    sa.Column("photo_id", sa.String(36)), sa.Column("photo_content_type", sa.String(40)),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_users_created", "created_at", "id"),
    sa.Index("ix_users_role_status", "role", "status"),
)

customers = sa.Table(
    "customers", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("email_index", sa.String(64), unique=True),
    sa.Column("phone_index", sa.String(64), unique=True),
    sa.Column("full_name", sa.Text), sa.Column("email", sa.Text), sa.Column("phone", sa.Text),
    sa.Column("birth_date", sa.Text), sa.Column("address", sa.Text), sa.Column("gender", sa.Text),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_customers_created", "created_at", "id"),
)

roles = sa.Table(
    "roles", metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("permissions", sa.JSON, nullable=False),
    sa.Column("self_editable_fields", sa.JSON, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("user_id", sa.String(36), nullable=False, index=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("last_refreshed_at", TS),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("revoked_at", TS),
    sa.Column("revoked_reason", sa.String(40)),
)

password_resets = sa.Table(
    "password_resets", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(36), nullable=False, index=True),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("used_at", TS),
)

credentials = sa.Table(
    "credentials", metadata,
    sa.Column("user_id", sa.String(36), primary_key=True),
    sa.Column("password_hash", sa.String(100), nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

photos = sa.Table(
    "photos", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("subject_id", sa.String(36), nullable=False, index=True),
    sa.Column("content", sa.Text, nullable=False),  # vault ciphertext of the base64 image
    sa.Column("created_at", TS, nullable=False),
)

login_failures = sa.Table(
    "login_failures", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(80), nullable=False),
    sa.Column("failed_at", TS, nullable=False),
    sa.Index("ix_login_failures_key", "key", "failed_at"),
)

READ_MODELS = (users, customers, roles, sessions, password_resets)
