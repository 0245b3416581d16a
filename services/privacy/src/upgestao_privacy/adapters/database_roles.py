"""The audit log's two database roles on PostgreSQL: its owner migrates, a runtime role appends and reads.

Issue 11, finding 7: when the service ran as the role that created the tables, whoever held the
pod's database credentials could ``ALTER TABLE … DISABLE TRIGGER`` and rewrite history, since
only an owner (or a superuser) can switch a trigger off or drop it. So the roles are split:

* the **owner** (``PRIVACY_MIGRATION_DATABASE_URL``) runs the migrations, owns every table and
  the append-only triggers; only the migration job holds its credentials;
* the **runtime** role (``PRIVACY_DATABASE_URL``, the service and its relay) owns nothing and is
  granted exactly :data:`RUNTIME_PRIVILEGES`: INSERT and SELECT on the log's tables, no UPDATE,
  DELETE, TRUNCATE, TRIGGER or REFERENCES; without ownership it can neither alter a table nor
  touch its triggers.

The grants are made again after every migration (:func:`grant_runtime_role`: everything revoked,
then the table below granted), so a table a later migration adds is closed to the runtime role
until this table names it. Creating the runtime login role itself needs ``CREATEROLE``: the
platform script does it on a developer's PostgreSQL (:func:`create_runtime_role`, through
``python -m upgestao_privacy runtime-role``); in production the database's provisioning does
(``deploy/k8s/jobs/``).

SQLite (the embedded default, local use only) has no roles: one file, read and written by the
one operating-system user that runs every process. There the triggers refuse UPDATE and DELETE
but anyone with the file can drop them; the checkpoints kept outside the database
(:mod:`.checkpoint_log`, the ``audit.log`` stream) still reveal a rewrite.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url

from . import consent_tables, erasure_tables, incident_tables, request_tables, third_party_tables

# What the service and its relay do, table by table (what the code does, nothing more):
RUNTIME_PRIVILEGES: Mapping[str, tuple[str, ...]] = {
    # the log itself: appended to and read, never changed (no UPDATE, DELETE, TRUNCATE)
    "audit_records": ("SELECT", "INSERT"),
    "audit_tree_nodes": ("SELECT", "INSERT"),
    "audit_checkpoints": ("SELECT", "INSERT"),
    # the single rows every append and every stream batch lock (FOR UPDATE needs UPDATE) and move on.
    # A forged head breaks the next roots (a verifier sees it); it cannot overwrite a stored record,
    # whose seq is the primary key of an append-only table
    "audit_tree_head": ("SELECT", "UPDATE"),
    "audit_stream_position": ("SELECT", "UPDATE"),
    # the kernel's tables, as its unit of work, outbox relay, keyed replies and vault use them
    "events": ("SELECT", "INSERT"),
    "outbox": ("SELECT", "INSERT", "UPDATE"),  # the relay marks rows sent (and wipes secrets)
    "processed_events": ("SELECT", "INSERT"),
    "subject_keys": ("SELECT", "INSERT", "UPDATE"),
    "request_replies": ("SELECT", "INSERT", "UPDATE", "DELETE"),  # replies expire
    "alembic_version": ("SELECT",),
    # the rights areas' read models (requests, corrections/policies/consents, incidents, erasures/exports,
    # the third parties data is shared with)
    **request_tables.PRIVILEGES,
    **consent_tables.PRIVILEGES,
    **incident_tables.PRIVILEGES,
    **erasure_tables.PRIVILEGES,
    **third_party_tables.PRIVILEGES,
}
APPEND_ONLY_TABLES = ("audit_records", "audit_tree_nodes", "audit_checkpoints")
ROLE_NAME_MAX = 63  # PostgreSQL's identifier limit


class RoleError(RuntimeError):
    """The database's roles are not as the audit log needs them (a one-line reason)."""


def user_of(url: str) -> str | None:
    """The role a database URL logs in as (``None`` for SQLite)."""
    parsed = make_url(url)
    return parsed.username if parsed.get_backend_name() == "postgresql" else None


def same_database(first: str, second: str) -> bool:
    """Whether two URLs name the same PostgreSQL database (host, port, database), whoever logs in."""
    a, b = make_url(first), make_url(second)
    return (a.get_backend_name(), a.host or "localhost", a.port or 5432, a.database) == (
        b.get_backend_name(), b.host or "localhost", b.port or 5432, b.database)


def default_runtime_role(url: str) -> str:
    """The runtime role's name when nobody chose one: ``<database>_runtime`` (one per database, so two
    platforms on one server keep theirs apart)."""
    return f"{make_url(url).database}_runtime"[:ROLE_NAME_MAX]


def runtime_url(owner_url: str, role: str, password: str) -> str:
    """``owner_url`` logging in as ``role``."""
    return make_url(owner_url).set(username=role, password=password).render_as_string(hide_password=False)


def _quote(conn: Connection, role: str) -> str:
    if not role or len(role) > ROLE_NAME_MAX:
        raise RoleError(f"a role name is 1 to {ROLE_NAME_MAX} characters, got {len(role)}")
    return conn.dialect.identifier_preparer.quote(role)


def create_runtime_role(conn: Connection, role: str, password: str | None = None) -> str:
    """Create the runtime login role (or give it a new password) as a role with ``CREATEROLE``;
    returns the password. It inherits nothing and may create nothing: a bare login."""
    password = password or secrets.token_urlsafe(24)
    name = _quote(conn, role)
    exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}).first()
    verb = "ALTER" if exists else "CREATE"
    options = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
    # (a password cannot be a bind parameter of a utility statement: quoted as a literal)
    literal = sa.String().literal_processor(dialect=conn.dialect)(password)
    conn.exec_driver_sql(f"{verb} ROLE {name} WITH {options} PASSWORD {literal}".replace("%", "%%"))
    return password


def drop_runtime_role(conn: Connection, role: str) -> None:
    """Drop the runtime role (a test platform's teardown), as the owner or a role with CREATEROLE: its
    sessions ended, its grants in this database revoked (``DROP OWNED BY``: it owns nothing else)."""
    name = _quote(conn, role)
    if conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}).first() is None:
        return
    conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :role"),
                 {"role": role})
    conn.exec_driver_sql(f"DROP OWNED BY {name}")
    conn.exec_driver_sql(f"DROP ROLE {name}")


def grant_runtime_role(conn: Connection, role: str) -> None:
    """As the owner, after the migrations: revoke everything from ``role`` on this database's
    tables and sequences, then grant :data:`RUNTIME_PRIVILEGES` (and the sequences the inserts
    draw from). Idempotent."""
    name = _quote(conn, role)
    if conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}).first() is None:
        raise RoleError(f"the runtime role {role!r} does not exist: create it first "
                        "(python -m upgestao_privacy runtime-role, or your database's provisioning)")
    owner = conn.execute(sa.text("SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() "
                                 "AND tablename = 'audit_records'")).scalar()
    if owner == role:
        raise RoleError(f"the runtime role {role!r} owns the audit log: migrate as another role "
                        "(PRIVACY_MIGRATION_DATABASE_URL)")
    tables = set(conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))
                 .scalars())
    database = conn.dialect.identifier_preparer.quote(conn.execute(sa.text("SELECT current_database()")).scalar())
    schema = conn.dialect.identifier_preparer.quote(conn.execute(sa.text("SELECT current_schema()")).scalar())
    conn.exec_driver_sql(f"GRANT CONNECT ON DATABASE {database} TO {name}")
    conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {schema} TO {name}")
    conn.exec_driver_sql(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {name}")
    conn.exec_driver_sql(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {name}")
    for table, privileges in RUNTIME_PRIVILEGES.items():
        if table in tables:
            conn.exec_driver_sql(f"GRANT {', '.join(privileges)} ON TABLE {schema}.{table} TO {name}")
    conn.exec_driver_sql(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {name}")


def owns_the_log(conn: Connection) -> bool:
    """Whether the connected role could rewrite the log: it owns (or, as a member, acts as the owner of)
    one of the append-only tables, or is a superuser. Always ``False`` on SQLite (no roles)."""
    if conn.dialect.name != "postgresql":
        return False
    return bool(conn.execute(sa.text(
        "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR EXISTS ("
        " SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = ANY(:tables)"
        " AND pg_has_role(current_user, tableowner, 'USAGE'))"), {"tables": list(APPEND_ONLY_TABLES)}).scalar())
