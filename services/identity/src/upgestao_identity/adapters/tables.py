"""The identity service's own tables (read models and operational stores).

Read models (projections of the event log, rebuilt by ``rebuild``): users,
customers, roles, sessions, password_resets. Personal values in them are
vault ciphertexts; lookups go through keyed blind indexes.

Operational stores, deliberately outside the event log:
* ``credentials`` — bcrypt hashes (R1.2: never in an event);
* ``photos`` — sealed photo bytes, referenced by id from the photo event;
* ``login_budgets`` — the brute-force throttle's memory: one row per key (account, address, reset
  requests of either), counted atomically before any password is checked;
* ``notices`` — what the notifier must send and may fetch (``notice`` RPC, the notifier only): a reset
  token, an old e-mail address, sealed under the user's data key and announced by an event that
  carries ids only (the event's id is the notice's);
* ``known_networks`` — the networks each user logged in from lately, as blind indexes only, so that a
  login from another one is told to the user (``identity.new_login_detected.v1``);
* ``api_key_usage`` — when each API key was last used (written at most once a minute per key).

``api_keys`` (issue 15) is the read model of the API keys: their SHA-256 hashes, never a key.
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
    # NULL once the user is anonymised (the blind index goes with their personal values)
    sa.Column("email_index", sa.String(64), unique=True),
    sa.Column("full_name", sa.Text), sa.Column("email", sa.Text), sa.Column("phone", sa.Text),
    sa.Column("birth_date", sa.Text), sa.Column("address", sa.Text), sa.Column("job_title", sa.Text),
    sa.Column("gender", sa.Text),
    sa.Column("photo_id", sa.String(36)), sa.Column("photo_content_type", sa.String(40)),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    # the language of messages to the user: a preference, not personal data (in clear)
    sa.Column("locale", sa.String(8), nullable=False, server_default="pt-BR"),
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
    # active, or after a data subject's request anonymised or blocked (an erased customer has no row)
    sa.Column("status", sa.String(20), nullable=False, server_default="active"),
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

login_budgets = sa.Table(
    "login_budgets", metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_at", TS, nullable=False),
    sa.Column("blocked_until", TS, nullable=False),
    sa.Index("ix_login_budgets_last", "last_at"),
)

notices = sa.Table(
    "notices", metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # the id of the event announcing it
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("user_id", sa.String(36), nullable=False, index=True),
    sa.Column("sealed", sa.JSON, nullable=False),  # vault ciphertexts by name (recipient, token)
    sa.Column("created_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("fetched_at", TS),
    sa.Index("ix_notices_expires", "expires_at"),
)

known_networks = sa.Table(
    "known_networks", metadata,
    sa.Column("user_id", sa.String(36), primary_key=True),
    sa.Column("network_index", sa.String(64), primary_key=True),  # blind index of (user, network), never the network
    sa.Column("first_seen", TS, nullable=False),
    sa.Column("last_seen", TS, nullable=False),
    sa.Column("previous_seen", TS),  # the login from there before the last one (None: the first)
)

api_keys = sa.Table(  # read model of the ``api_key-<id>`` streams (issue 15)
    "api_keys", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),  # the integrated tool's name (no one's personal data)
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # active, revoked
    sa.Column("secret_hash", sa.String(64), nullable=False),  # SHA-256 of the key: never the key
    sa.Column("created_by", sa.String(36), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("expires_at", TS),
    sa.Column("revoked_at", TS),
    sa.Column("revoked_by", sa.String(36)),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_api_keys_created", "created_at", "id"),
)

api_key_usage = sa.Table(  # operational: when each key was last exchanged (at most one write a minute)
    "api_key_usage", metadata,
    sa.Column("key_id", sa.String(36), primary_key=True),
    sa.Column("last_used_at", TS, nullable=False),
)

READ_MODELS = (users, customers, roles, sessions, password_resets, api_keys)
