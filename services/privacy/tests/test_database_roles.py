"""The audit log's two database roles (issue 11, finding 7): the owner migrates, the runtime role appends.

The attacks themselves (every statement that could rewrite the log, refused to the runtime role) are in
``tests/security/test_audit_log_attacks.py``; here: which URL migrates, what the grants refuse to do, and
the service refusing to run as the owner in production.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from upgestao_kernel.config import ConfigError
from upgestao_privacy.adapters.database_roles import (
    RUNTIME_PRIVILEGES,
    RoleError,
    default_runtime_role,
    grant_runtime_role,
    owns_the_log,
    same_database,
)
from upgestao_privacy.entrypoints.audit_log import AuditLogRunner
from upgestao_privacy.settings import migration_database_url

PG = "postgresql+psycopg2://runtime:secret@db.internal:5432/upgestao_privacy"


def test_the_migrations_url_is_the_owners_for_the_same_database_only():
    assert migration_database_url(PG, {}) == PG  # no owner given: one URL, as before
    owner = "postgresql://owner:other@db.internal/upgestao_privacy"
    assert migration_database_url(PG, {"PRIVACY_MIGRATION_DATABASE_URL": owner}) == (
        "postgresql+psycopg2://owner:other@db.internal/upgestao_privacy")
    for wrong, runtime in (("postgresql://owner:x@db.internal:5432/another_db", PG),
                           ("postgresql://owner:x@elsewhere:5432/upgestao_privacy", PG),
                           (owner, "sqlite:////tmp/privacy.sqlite3"),
                           ("sqlite:////tmp/privacy.sqlite3", PG)):
        with pytest.raises(ConfigError) as refused:
            migration_database_url(runtime, {"PRIVACY_MIGRATION_DATABASE_URL": wrong})
        assert refused.value.variable == "PRIVACY_MIGRATION_DATABASE_URL"
    assert same_database(PG, "postgresql://x@db.internal/upgestao_privacy")
    assert default_runtime_role(PG) == "upgestao_privacy_runtime"


def test_the_runtime_role_is_granted_no_way_to_rewrite_the_log():
    for table in ("audit_records", "audit_tree_nodes", "audit_checkpoints"):
        assert set(RUNTIME_PRIVILEGES[table]) == {"SELECT", "INSERT"}
    assert not any({"DELETE", "TRUNCATE", "TRIGGER", "REFERENCES"} & set(privileges)
                   for table, privileges in RUNTIME_PRIVILEGES.items() if table.startswith("audit_"))


def test_who_owns_the_log_and_the_grants_refuse_a_role_that_does(runtime_database):
    owner_url, runtime_url = runtime_database
    owner, runtime = sa.create_engine(owner_url), sa.create_engine(runtime_url)
    try:
        with owner.connect() as conn:
            assert owns_the_log(conn)  # (the tests' owner is a superuser: it could, too)
        with runtime.connect() as conn:
            assert not owns_the_log(conn)
        with owner.begin() as conn:
            with pytest.raises(RoleError, match="does not exist"):
                grant_runtime_role(conn, "nobody_at_all_runtime")
        with owner.begin() as conn:
            table_owner = conn.exec_driver_sql("SELECT tableowner FROM pg_tables WHERE tablename = 'audit_records'")\
                .scalar_one()
            with pytest.raises(RoleError, match="owns the audit log"):
                grant_runtime_role(conn, table_owner)
    finally:
        owner.dispose()
        runtime.dispose()


@pytest.mark.parametrize("production", [True, False])
def test_the_service_refuses_to_run_as_the_owner_in_production(runtime_database, production):
    owner_url, runtime_url = runtime_database
    runner = AuditLogRunner.__new__(AuditLogRunner)
    runner.engine = sa.create_engine(runtime_url)
    runner._check_runtime_role(production=production)  # the runtime role: fine either way
    runner.engine.dispose()
    runner.engine = sa.create_engine(owner_url)
    try:
        if production:
            with pytest.raises(ConfigError) as refused:
                runner._check_runtime_role(production=True)
            assert refused.value.variable == "PRIVACY_DATABASE_URL"
        else:
            runner._check_runtime_role(production=False)  # a developer's single role: reported, not refused
    finally:
        runner.engine.dispose()
