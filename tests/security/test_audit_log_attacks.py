"""Attacks on the audit log's database (issue 11, finding 7).

Before: privacy migrated and ran with one ``PRIVACY_DATABASE_URL``, so its pod logged in as the
tables' owner. Whoever held that pod's credentials could ``ALTER TABLE … DISABLE TRIGGER`` (only an
owner may) and rewrite history; the checkpoint signing key lives in the same pod, so the rewritten log
could be signed again and ``audit verify`` found nothing.

Now the owner (``PRIVACY_MIGRATION_DATABASE_URL``) only migrates; the service runs as a runtime role
granted SELECT and INSERT on the log (``upgestao_privacy.adapters.database_roles``), and every
checkpoint also leaves the database (the ``audit.log`` stream, the checkpoint file), so that
``audit verify --against <kept checkpoints>`` catches a rewrite signed again with the pod's own key.

Each database here is provisioned the way ``make up`` and the deployment's job do it: ``python -m
upgestao_privacy runtime-role`` (as a role with CREATEROLE), then ``migrate`` with both URLs; the
rewrite scenario has a database of its own (the session's platform log is never tampered with).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD
from psycopg2.errors import InsufficientPrivilege
from upgestao_kernel.audit import AuditRecord
from upgestao_kernel.config import env_prefix, load_settings
from upgestao_kernel.context import system_context
from upgestao_kernel.db import create_engine
from upgestao_kernel.testing import PG_ADMIN_URL, create_database, drop_database, wait_for
from upgestao_kernel.unit_of_work import UnitOfWork
from upgestao_privacy.adapters.audit_store import SqlAuditLog, sql_transactions, with_sql_audit_log
from upgestao_privacy.adapters.database_roles import APPEND_ONLY_TABLES
from upgestao_privacy.adapters.stream_feeder import StreamFeeder
from upgestao_privacy.domain.checkpoints import CheckpointSigner, checkpoints_from_lines
from upgestao_privacy.service_layer import ingest
from upgestao_privacy.service_layer.audit_queries import AuditQueries
from upgestao_privacy.service_layer.checkpointing import checkpoint_if_due
from upgestao_privacy.settings import load_audit_settings

# what the runtime role's credentials were enough for before (each now refused by the database itself)
ATTACKS = [
    *(f"ALTER TABLE {table} DISABLE TRIGGER ALL" for table in APPEND_ONLY_TABLES),
    *(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only" for table in APPEND_ONLY_TABLES),
    *(f"DROP TRIGGER {table}_append_only ON {table}" for table in APPEND_ONLY_TABLES),
    "DROP FUNCTION audit_append_only() CASCADE",
    "UPDATE audit_records SET actor_id = 'someone-innocent' WHERE seq = 3",
    "UPDATE audit_tree_nodes SET hash = hash WHERE node_id = 3",
    "UPDATE audit_checkpoints SET signature = signature",
    *(f"DELETE FROM {table}" for table in APPEND_ONLY_TABLES),
    *(f"TRUNCATE {table}" for table in APPEND_ONLY_TABLES),
    "ALTER TABLE audit_records OWNER TO CURRENT_USER",
    "CREATE TABLE audit_records_shadow (seq bigint)",
]


def libpq(url: str) -> str:
    """A SQLAlchemy URL as psycopg2 takes it."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def attempt(url: str, statement: str) -> type[BaseException] | None:
    """Run ``statement`` as ``url``'s role; the class of what the database answered (None: it did it)."""
    conn = psycopg2.connect(libpq(url))
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
        conn.rollback()  # (proving the point needs no commit)
        return None
    except psycopg2.Error as error:
        conn.rollback()
        return type(error)
    finally:
        conn.close()


def count(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT count(*) FROM audit_records").scalar_one()
    finally:
        engine.dispose()


def records(n: int) -> list[dict]:
    start = datetime.now(UTC) - timedelta(minutes=5)
    return [ingest.parse(AuditRecord(
        service="identity", action="read", resource_type="user", resource_id=str(uuid.uuid4()),
        subject_id=str(uuid.uuid4()), fields=("email",), purpose="support", actor_id=str(uuid.uuid4()),
        actor_role="attendant", request_id=uuid.uuid4().hex, source_ip=None, occurred_at=start + timedelta(seconds=i),
    ).to_message()) for i in range(n)]


class AuditDatabase:
    """Privacy's database provisioned as in production, and privacy's own code run as the runtime role."""

    def __init__(self, tmp_path: Path, amqp_uri: str) -> None:
        self.name = f"t_auditattack_{uuid.uuid4().hex[:10]}"
        self.owner_url = create_database(self.name)
        self.env = {**os.environ, "UPGESTAO_ENV": "test", "UPGESTAO_DATA_DIR": str(tmp_path / "var"),
                    "AMQP_URI": amqp_uri, "PRIVACY_DATABASE_URL": self.owner_url}
        self.env.pop("PRIVACY_MIGRATION_DATABASE_URL", None)
        self.runtime_url = self.cli("runtime-role").stdout.strip()
        self.role = sa.make_url(self.runtime_url).username
        self.env.update(PRIVACY_MIGRATION_DATABASE_URL=self.owner_url, PRIVACY_DATABASE_URL=self.runtime_url)
        self.cli("migrate")
        del self.env["PRIVACY_MIGRATION_DATABASE_URL"]  # the service never holds the owner's URL
        self.runtime = create_engine(self.runtime_url, pool_size=2)
        self.owner = create_engine(self.owner_url, pool_size=2)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "upgestao_privacy", *args], env=self.env, text=True,
                                capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        if check:
            assert result.returncode == 0, result.stderr[-2000:]
        return result

    def settings(self, monkeypatch):
        for key in ("UPGESTAO_ENV", "UPGESTAO_DATA_DIR", "AMQP_URI", "PRIVACY_DATABASE_URL"):
            monkeypatch.setenv(key, self.env[key])
        base = load_settings("privacy")
        return base, load_audit_settings(base)

    def close(self) -> None:
        self.runtime.dispose()
        self.owner.dispose()
        drop_database(self.name)
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{self.role}"')
        finally:
            admin.dispose()


@pytest.fixture
def audit_db(tmp_path, amqp_uri) -> Iterator[AuditDatabase]:
    db = AuditDatabase(tmp_path, amqp_uri)
    yield db
    db.close()


def test_the_runtime_role_can_neither_switch_the_triggers_off_nor_change_the_log_yet_the_service_appends(
        audit_db, monkeypatch):
    _, audit = audit_db.settings(monkeypatch)
    signer = CheckpointSigner(audit.signing_key)
    stored = ingest.store(sql_transactions(audit_db.runtime), records(20), signer, checkpoint_every=10)
    assert len(stored.stored) == 20 and stored.checkpoint.tree_size == 20  # INSERT through the service: works
    with audit_db.owner.connect() as conn:
        before = conn.exec_driver_sql("SELECT seq, leaf FROM audit_records ORDER BY seq").all()

    refused = {statement: attempt(audit_db.runtime_url, statement) for statement in ATTACKS}
    assert refused == dict.fromkeys(ATTACKS, InsufficientPrivilege)
    with audit_db.owner.connect() as conn:
        assert conn.exec_driver_sql("SELECT seq, leaf FROM audit_records ORDER BY seq").all() == before
    # the exploit as it was: the pod's URL was the owner's, and the owner may switch the triggers off
    assert attempt(audit_db.owner_url, "ALTER TABLE audit_records DISABLE TRIGGER ALL") is None  # (rolled back)
    # and the service keeps appending as the runtime role
    assert len(ingest.store(sql_transactions(audit_db.runtime), records(5), signer, checkpoint_every=10).stored) == 5
    assert count(audit_db.owner_url) == 25


def rewrite_and_re_sign(owner: sa.Engine, signer: CheckpointSigner, without_seq: int, every: int) -> None:
    """What the owner's credentials and the pod's signing key allow: switch the triggers off, delete a
    record, rebuild the tree from the records left and sign every checkpoint again with the same key."""
    now = datetime.now(UTC)
    with owner.begin() as conn:
        leaves = [json.loads(text) for text in conn.exec_driver_sql(
            "SELECT leaf FROM audit_records ORDER BY seq").scalars()]
        for table in APPEND_ONLY_TABLES:
            conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        conn.exec_driver_sql("TRUNCATE audit_records, audit_tree_nodes, audit_checkpoints")
        conn.exec_driver_sql("UPDATE audit_tree_head SET tree_size = 0, frontier = ''::bytea")
        kept = [{k: v for k, v in leaf.items() if k != "seq"} for leaf in leaves if leaf["seq"] != without_seq]
        log = SqlAuditLog(conn)
        for start in range(0, len(kept), every):
            log.append(kept[start:start + every], now)
            checkpoint_if_due(log, signer, now, every=every)
        checkpoint_if_due(log, signer, now, every=every, force=True)
        for table in APPEND_ONLY_TABLES:
            conn.exec_driver_sql(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def export(runtime: sa.Engine, path: Path) -> None:
    """The full export, as ``GET /v1/audit/export`` writes it (privacy's own queries, as the runtime role)."""
    queries = AuditQueries(lambda: with_sql_audit_log(UnitOfWork(runtime, "privacy", system_context())),
                           lambda role: frozenset(), CheckpointSigner(bytes(32)))
    header = queries.export_start()
    lines = [json.dumps(header)]
    for start in range(header["first_seq"], header["end_seq"], 1000):
        lines += [json.dumps(item) for item in queries.export_records(start, min(start + 1000, header["end_seq"]))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_rewrite_re_signed_with_the_pods_key_passes_verify_alone_but_not_against_checkpoints_kept_earlier(
        audit_db, tmp_path, monkeypatch):
    base, audit = audit_db.settings(monkeypatch)
    signer = CheckpointSigner(audit.signing_key)  # the pod's key (its local key file here)
    transaction = sql_transactions(audit_db.runtime)
    for _ in range(6):  # 60 records, a checkpoint every 10, as the service stores them
        ingest.store(transaction, records(10), signer, checkpoint_every=10)
    feeder = StreamFeeder(audit_db.runtime, base.amqp_uri, audit)  # the relay, as the runtime role too
    try:
        wait_for(lambda: feeder.feed_once() == 0 and audit.checkpoint_file.exists()
                 and checkpoints_from_lines(audit.checkpoint_file.read_bytes().splitlines())[-1].tree_size == 60)
    finally:
        feeder.publisher.close()
    # the auditor keeps the checkpoints away from the platform: the file's copy, and the stream's
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    shutil.copy(audit.checkpoint_file, auditor / "kept.jsonl")
    audit_db.cli("audit", "tail", "--from", "first", "--idle-timeout", "1",
                 "--checkpoints", str(auditor / "from-stream.jsonl"))
    assert [c.tree_size for c in checkpoints_from_lines((auditor / "from-stream.jsonl").read_text().splitlines())] \
        == [10, 20, 30, 40, 50, 60]

    rewrite_and_re_sign(audit_db.owner, signer, without_seq=23, every=10)
    exported = tmp_path / "export.jsonl"
    export(audit_db.runtime, exported)
    key = ("--public-key", signer.public_key_b64)

    alone = audit_db.cli("audit", "verify", "--export", str(exported), *key, check=False)
    print(alone.stdout)  # shown: every signature is the pod's, so the rewrite verifies on its own
    assert alone.returncode == 0 and alone.stdout.startswith("OK: 59 records [0, 59) of tree size 59")

    for kept in ("kept.jsonl", "from-stream.jsonl"):
        against = audit_db.cli("audit", "verify", "--export", str(exported), *key, "--against", str(auditor / kept),
                               check=False)
        print(against.stdout)
        assert against.returncode == 1, against.stdout + against.stderr
        assert against.stdout.startswith("TAMPERED: first bad seq 20")
        assert "is not a prefix of the signed tree: the log was rewritten in [20, 30)" in against.stdout
        assert "rollback: seq 59: the log has 59 records but a checkpoint of tree size 60" in against.stdout
        assert against.stdout.rstrip().splitlines()[-1].startswith("REWRITTEN OR TAMPERED: the log is not the one")


def test_make_up_runs_privacy_as_the_runtime_role_which_cannot_rewrite_the_log(platform, http):
    """The session's platform (``scripts/upgestao_platform.py``, as ``make up`` on PostgreSQL): privacy was
    migrated as the given role and runs as the runtime role it created; the log still grows."""
    owner_url = platform.database_urls["privacy"]
    runtime_url = platform.runtime_database_env[f"{env_prefix('privacy')}_DATABASE_URL"]
    owner_role, runtime_role = sa.make_url(owner_url).username, sa.make_url(runtime_url).username
    assert runtime_role != owner_role and runtime_role in platform.database_roles_created
    engine = sa.create_engine(owner_url)
    try:
        with engine.connect() as conn:
            users = set(conn.execute(sa.text(
                "SELECT usename FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )).scalars())
            assert users == {runtime_role}  # the service and its relay: never the owner
            assert conn.execute(sa.text("SELECT DISTINCT tableowner FROM pg_tables WHERE tablename LIKE 'audit_%'"))\
                .scalars().all() == [owner_role]
    finally:
        engine.dispose()
    for statement in ("ALTER TABLE audit_records DISABLE TRIGGER ALL", "UPDATE audit_records SET actor_id = 'x'",
                      "DELETE FROM audit_records", "TRUNCATE audit_records"):
        assert attempt(runtime_url, statement) is InsufficientPrivilege, statement
    before = count(owner_url)
    login = http.post(http.base_url + "/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
                      timeout=15)
    assert login.status_code == 200, login.text
    wait_for(lambda: count(owner_url) > before, timeout=30)  # the login's audit record, stored as the runtime role
