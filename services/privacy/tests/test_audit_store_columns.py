"""The audit store on both backends: subject and actor are searched on the leaf itself (through the
expression indexes of migration 0003), and a record whose columns were edited around the tree is
reported, never hidden from its subject nor filed under another."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from upgestao_kernel.audit import AuditRecord
from upgestao_kernel.db import create_engine
from upgestao_kernel.migrations import upgrade
from upgestao_privacy.adapters import audit_store
from upgestao_privacy.service_layer import ingest


def stored(subject_id: str, actor_id: str) -> dict:
    """A record as the ingest stores it."""
    record = AuditRecord(service="identity", action="read", resource_type="user", resource_id=subject_id,
                         subject_id=subject_id, fields=("email",), purpose="profile", actor_id=actor_id,
                         actor_role="admin", request_id=uuid.uuid4().hex, source_ip="203.0.113.9",
                         occurred_at=datetime.now(UTC))
    return ingest.parse(json.loads(json.dumps(record.to_message())))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path, database_factory) -> sa.Engine:
    url = f"sqlite:///{tmp_path / 'privacy.sqlite3'}" if request.param == "sqlite" else database_factory("privacy")
    upgrade("upgestao_privacy:migrations", url)
    engine = create_engine(url)
    records = [stored(f"subject-{i % 3}", f"actor-{i % 2}") for i in range(12)]
    with engine.begin() as conn:
        audit_store.append(conn, records, datetime.now(UTC))
    yield engine
    engine.dispose()


def edit(engine: sa.Engine, statement: str) -> None:
    """An edit by someone able to switch the append-only triggers off."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_records DISABLE TRIGGER USER")
            conn.exec_driver_sql(statement)
            conn.exec_driver_sql("ALTER TABLE audit_records ENABLE TRIGGER USER")
        else:
            trigger = "audit_records_no_update"
            [create] = conn.exec_driver_sql(f"SELECT sql FROM sqlite_master WHERE name = '{trigger}'").one()
            conn.exec_driver_sql(f"DROP TRIGGER {trigger}")
            conn.exec_driver_sql(statement)
            conn.exec_driver_sql(create)


def seqs(engine: sa.Engine, **filters) -> list[int]:
    with engine.connect() as conn:
        return [r["seq"] for r in audit_store.search(conn, filters, 50, None)]


def tampered(engine: sa.Engine, read) -> dict[int, list[str]]:
    with engine.connect() as conn, pytest.raises(audit_store.ColumnsTampered) as err:
        read(conn)
    return err.value.disagreements


def test_a_column_edit_neither_hides_nor_misfiles_a_record(store):
    assert seqs(store, subject_id="subject-1") == [10, 7, 4, 1]
    assert seqs(store, actor_id="actor-1", subject_id="subject-1") == [7, 1]
    edit(store, "UPDATE audit_records SET subject_id = 'subject-2', actor_id = 'actor-0' WHERE seq = 7")

    assert tampered(store, lambda c: audit_store.search(c, {"subject_id": "subject-1"}, 50, None)) == {
        7: ["subject_id", "actor_id"]}
    assert tampered(store, lambda c: audit_store.records_of_subject(c, "subject-1")) == {7: ["subject_id", "actor_id"]}
    assert tampered(store, lambda c: audit_store.search(c, {"actor_id": "actor-1"}, 50, None)) == {
        7: ["subject_id", "actor_id"]}
    assert seqs(store, subject_id="subject-2") == [11, 8, 5, 2]  # not re-filed under the edited columns
    assert seqs(store, actor_id="actor-0", subject_id="subject-2") == [8, 2]
    assert seqs(store, subject_id="subject-0") == [9, 6, 3, 0]  # the others are answered as before

    with store.connect() as conn:
        [line] = audit_store.export_lines(conn, 7, 8)
    assert (line["record"]["subject_id"], line["record"]["actor_id"]) == ("subject-2", "actor-0")  # as filed


def test_an_edited_time_or_action_is_reported_too(store):
    edit(store, "UPDATE audit_records SET action = 'update' WHERE seq = 3")
    assert tampered(store, lambda c: audit_store.search(c, {"action": "update"}, 50, None)) == {3: ["action"]}
    edit(store, "UPDATE audit_records SET occurred_at = '2001-01-01 00:00:00' WHERE seq = 5")
    assert tampered(store, lambda c: audit_store.search(c, {"subject_id": "subject-2"}, 50, None)) == {
        5: ["occurred_at"]}


def test_the_leaf_indexes_serve_subject_and_actor_searches(store):
    with store.connect() as conn:
        for member in ("subject_id", "actor_id"):
            compiled = audit_store.search_statement(conn, {member: "subject-1"}, 51, None).compile(
                conn, compile_kwargs={"literal_binds": True})
            if store.dialect.name == "postgresql":
                conn.exec_driver_sql("SET enable_seqscan = off")  # (12 rows: a scan would be cheaper)
                plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
            else:
                plan = "\n".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
            assert f"ix_audit_records_leaf_{member.removesuffix('_id')}" in plan, plan
