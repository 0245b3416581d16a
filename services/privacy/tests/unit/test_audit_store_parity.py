"""The in-memory audit store answers as the SQL one: one scenario on both, every answer compared.

The SQL side is the service's own migrations on SQLite (the embedded mode's store, leaf-derived
filters through ``json_extract``) with the kernel's real unit of work; the memory side is what the
use-case tests run on. If the two drift apart, those tests stop saying anything about the service.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from upgestao_kernel.context import RequestContext
from upgestao_kernel.db import create_engine
from upgestao_kernel.fakes import FakeUnitOfWork, MemoryStore
from upgestao_kernel.migrations import upgrade
from upgestao_kernel.unit_of_work import UnitOfWork
from upgestao_privacy.adapters.audit_store import sql_transactions, with_sql_audit_log
from upgestao_privacy.adapters.memory_audit_log import memory_transactions, with_memory_audit_log
from upgestao_privacy.adapters.ports import ColumnsTampered
from upgestao_privacy.domain.checkpoints import CheckpointSigner
from upgestao_privacy.service_layer import ingest
from upgestao_privacy.service_layer.audit_queries import AuditQueries

from .conftest import DPO, ROLE_PERMISSIONS

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SIGNER = CheckpointSigner(bytes(range(32)))
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def permissions_of(role: str | None) -> frozenset[str]:
    return ROLE_PERMISSIONS.get(role or "", frozenset())


def batches(audit_record) -> list[list[dict]]:
    subjects = [str(uuid.UUID(int=n)) for n in range(1, 4)]
    actors = [str(uuid.UUID(int=n)) for n in range(10, 13)]
    records = []
    for n in range(23):
        records.append(audit_record(
            subject_id=subjects[n % 3] if n % 5 else None, actor_id=actors[n % 2] if n % 7 else None,
            action=("read", "update", "share", "create")[n % 4], outcome="denied" if n % 6 == 5 else "success",
            recipient="crm-1" if n % 4 == 2 else None, service=("identity", "gateway")[n % 2],
            occurred_at=T0 + timedelta(minutes=7 * n), audit_id=str(uuid.UUID(int=1000 + n)),
            request_id=f"req-{n}", resource_id=f"res-{n}"))
    return [records[:5], [records[3], *records[5:12], records[11]], records[12:20], records[20:], records[:2]]


def scenario(transaction, unit_of_work, store_rows, audit_record) -> dict:
    """Everything the use cases answer over one log, minus what depends on the clock."""
    out: dict = {}
    results = [ingest.store(transaction, batch, SIGNER, checkpoint_every=6, now=NOW) for batch in batches(
        audit_record)]
    out["ingest"] = [([a.seq for a in r.stored], [a.leaf for a in r.stored], r.duplicates,
                      r.checkpoint.to_dict() if r.checkpoint else None) for r in results]
    out["pending"] = ingest.sign_pending(transaction, SIGNER, NOW + timedelta(seconds=1)).to_dict()
    queries = AuditQueries(unit_of_work, permissions_of, SIGNER)
    subject, actor = str(uuid.UUID(int=2)), str(uuid.UUID(int=11))
    for filters in ({}, {"subject_id": subject}, {"actor_id": actor}, {"action": "share"}, {"service": "gateway"},
                    {"outcome": "denied"}, {"request_id": "req-4"}, {"resource_type": "user", "actor_id": actor},
                    {"from": (T0 + timedelta(minutes=30)).isoformat(), "to": (T0 + timedelta(hours=1)).isoformat()}):
        pages, cursor = [], None
        while True:
            page = queries.search(filters, 4, cursor)
            pages.append(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        out[f"search {sorted(filters.items())}"] = pages
    out["summary"] = queries.subject_summary(subject)
    checkpoint = queries.checkpoint()
    out["checkpoint"] = (checkpoint["tree_size"], checkpoint["root_hash"])
    out["inclusion"] = [queries.inclusion_proof(seq, size) for seq, size in ((0, 1), (3, 12), (22, 23), (7, 20))]
    out["consistency"] = [queries.consistency_proof(a, b) for a, b in ((0, 23), (5, 12), (13, 23), (23, 23))]
    header = queries.export_start((T0 + timedelta(minutes=20)).isoformat(), (T0 + timedelta(hours=2)).isoformat())
    out["export"] = ({k: v for k, v in header.items() if k not in ("exported_at", "checkpoint", "checkpoints")},
                     [c["tree_size"] for c in header["checkpoints"]], queries.export_records(header["first_seq"],
                                                                                             header["end_seq"]))
    with transaction() as log:
        out["stream"] = (log.stream_position(), log.leaves_from(20, 5))
        log.set_stream_position(21, NOW)
    with transaction() as log:
        out["stream moved"] = (log.stream_position(lock=True), log.leaves_from(21, 1))
        out["seq_range"] = [log.seq_range(T0 + timedelta(minutes=10), T0 + timedelta(minutes=50)),
                            log.seq_range(T0 + timedelta(days=9), None), log.seq_range(None, None)]
    store_rows(3, subject_id=str(uuid.UUID(int=3)), action="read")  # edited around the tree
    with transaction() as log:
        with pytest.raises(ColumnsTampered) as tampered:
            log.search({}, 50, None)
        out["tampered"] = tampered.value.disagreements
        # filed by its leaf (subject 1, actor 11), the edited record is still found, and refused
        for member, value in (("subject_id", 1), ("actor_id", 11), ("subject_id", 3)):
            try:
                out[f"tampered by {member} {value}"] = log.search({member: str(uuid.UUID(int=value))}, 50, None)
            except ColumnsTampered as exc:
                out[f"tampered by {member} {value}"] = exc.disagreements
        out["tampered export"] = log.export_lines(3, 4)
    return out


def test_the_memory_store_answers_as_the_sql_store(tmp_path, audit_record):
    url = f"sqlite:///{tmp_path / 'privacy.sqlite3'}"
    upgrade("upgestao_privacy:migrations", url)
    engine = create_engine(url)

    def sql_edit(seq: int, **values) -> None:
        with engine.begin() as conn:  # (SQLite's append-only triggers: dropped for the edit, as an intruder would)
            triggers = [row[0] for row in conn.execute(sa.text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_records'"))]
            assert triggers, "migration 0002 makes audit_records append-only on SQLite too"
            saved = [row[0] for row in conn.execute(sa.text(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_records'"))]
            for name in triggers:
                conn.execute(sa.text(f"DROP TRIGGER {name}"))
            conn.execute(sa.text("UPDATE audit_records SET " + ", ".join(f"{k} = :{k}" for k in values)
                                 + " WHERE seq = :seq"), {**values, "seq": seq})
            for sql in saved:
                conn.execute(sa.text(sql))

    sql = scenario(sql_transactions(engine), lambda: with_sql_audit_log(UnitOfWork(engine, "privacy", DPO)),
                   sql_edit, audit_record)
    engine.dispose()

    store = MemoryStore(service="privacy")

    def memory_edit(seq: int, **values) -> None:
        store.tables["audit_records"][seq].update(values)

    memory = scenario(memory_transactions(store),
                      lambda: with_memory_audit_log(FakeUnitOfWork(store, RequestContext(**DPO.__dict__))),
                      memory_edit, audit_record)
    assert memory.keys() == sql.keys()
    for key in sql:
        assert memory[key] == sql[key], key
    assert sql["tampered"] == {3: ["action", "subject_id"]}
    assert sql["tampered export"][0]["record"]["action"] == "read"
    assert sql["tampered by subject_id 1"] == sql["tampered by actor_id 11"] == sql["tampered"]
    assert 3 not in {item["seq"] for item in sql["tampered by subject_id 3"]}  # nor re-filed under the column
    assert [len(pages) for key, pages in sql.items() if key.startswith("search {")] != [1] * 9  # it pages
