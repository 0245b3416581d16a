"""Tamper evidence end to end at the service: rows edited, deleted, reordered or
truncated directly in PostgreSQL (by someone able to switch the append-only
triggers off) are reported by the verifier, naming the first bad seq."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.testing import wait_for
from upgestao_privacy.adapters import audit_store
from upgestao_privacy.domain.checkpoints import decode_public_key
from upgestao_privacy.domain.leaves import canonical_json
from upgestao_privacy.domain.verification import verify_export

# seven subjects (a subject id is a UUID: privacy's queries refuse anything else)
SUBJECT = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(7)]

RECORDS = 40


@pytest.fixture
def log(privacy):
    privacy.publish([privacy.record(subject_id=SUBJECT[i % 7]) for i in range(RECORDS)])
    privacy.wait_count(RECORDS)
    dpo = privacy.caller(privacy.DPO)
    wait_for(lambda: dpo.audit_checkpoint()["tree_size"] == RECORDS)
    privacy.dpo = dpo
    privacy.public_key = decode_public_key(dpo.audit_public_key()["public_key"])
    return privacy


def export(privacy) -> list[str]:
    """A full export through the RPCs the gateway's /v1/audit/export streams."""
    header = privacy.dpo.audit_export_start(None, None)
    lines = [json.dumps(header)]
    for start in range(header["first_seq"], header["end_seq"], 1000):
        page = privacy.dpo.audit_export_records(start, min(start + 1000, header["end_seq"]))
        lines.extend(json.dumps(line) for line in page)
    return lines


def tamper(privacy, *statements: str | tuple[str, dict]) -> None:
    with privacy.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_records DISABLE TRIGGER USER"))
        for statement in statements:
            sql, params = statement if isinstance(statement, tuple) else (statement, {})
            conn.execute(sa.text(sql), params)
        conn.execute(sa.text("ALTER TABLE audit_records ENABLE TRIGGER USER"))


def leaf(privacy, seq: int) -> dict:
    with privacy.engine.connect() as conn:
        return json.loads(conn.execute(sa.text("SELECT leaf FROM audit_records WHERE seq = :s"), {"s": seq}).scalar())


def test_an_untampered_log_verifies(log):
    report = verify_export(export(log), log.public_key)
    assert report.ok, report.summary()
    assert (report.first_seq, report.end_seq, report.records) == (0, RECORDS, RECORDS)


def test_an_edited_record_is_named(log):
    edited = {**leaf(log, 17), "actor_id": "someone-innocent"}
    tamper(log, ("UPDATE audit_records SET leaf = :leaf, actor_id = 'someone-innocent' WHERE seq = 17",
                 {"leaf": canonical_json(edited).decode()}))
    report = verify_export(export(log), log.public_key)
    assert not report.ok
    assert report.first_bad_seq == 17
    assert "edited" in {f.kind for f in report.findings}


def test_a_deleted_record_is_named(log):
    tamper(log, "DELETE FROM audit_records WHERE seq = 23")
    report = verify_export(export(log), log.public_key)
    assert not report.ok
    assert report.first_bad_seq == 23
    assert "missing" in {f.kind for f in report.findings}


def test_reordered_records_are_named(log):
    a, b = leaf(log, 9), leaf(log, 30)
    # swap the two records' contents, each keeping its row's seq column and leaf seq: a silent reorder
    swapped_a, swapped_b = {**b, "seq": 9}, {**a, "seq": 30}
    tamper(log, ("UPDATE audit_records SET leaf = :leaf WHERE seq = 9", {"leaf": canonical_json(swapped_a).decode()}),
           ("UPDATE audit_records SET leaf = :leaf WHERE seq = 30", {"leaf": canonical_json(swapped_b).decode()}))
    report = verify_export(export(log), log.public_key)
    assert not report.ok
    assert report.first_bad_seq == 9
    assert {f.seq for f in report.findings if f.kind in ("edited", "reordered")} == {9, 30}


def test_swapped_seq_numbers_are_named(log):
    tamper(log, "UPDATE audit_records SET seq = -1 WHERE seq = 12",
           "UPDATE audit_records SET seq = 12 WHERE seq = 13",
           "UPDATE audit_records SET seq = 13 WHERE seq = -1")
    report = verify_export(export(log), log.public_key)
    assert not report.ok
    assert report.first_bad_seq == 12


def test_a_truncated_log_is_named(log):
    tamper(log, f"DELETE FROM audit_records WHERE seq >= {RECORDS - 5}")
    report = verify_export(export(log), log.public_key)
    assert not report.ok
    assert report.first_bad_seq == RECORDS - 5
    assert {f.kind for f in report.findings} & {"truncated", "missing"}


def test_an_edited_index_column_is_reported_never_misattributed_and_fails_verification(log):
    """``subject_id`` and ``actor_id`` are also columns beside the leaf, outside the tree. An edit of the
    column alone must neither hide the record from its subject's search and summary, nor file it under
    someone else, nor pass ``audit verify``."""
    page = log.dpo.audit_search({}, 23, None)  # seqs 39 to 17
    assert page["items"][-1]["seq"] == 17
    victim, other = leaf(log, 17), leaf(log, 30)
    assert (victim["subject_id"], other["subject_id"]) == (SUBJECT[3], SUBJECT[2])
    tamper(log, f"UPDATE audit_records SET subject_id = '{SUBJECT[5]}' WHERE seq = 17",
           "UPDATE audit_records SET actor_id = 'someone-innocent' WHERE seq = 30")
    assert (leaf(log, 17), leaf(log, 30)) == (victim, other)  # the leaves, and so the tree, untouched

    def refused(call, *args) -> list[dict]:
        with pytest.raises(ServiceError) as err:
            call(*args)
        assert (err.value.slug, err.value.status) == ("audit-log-tampered", 500), err.value
        return err.value.extensions["tampered"]

    # the subject's search and summary still reach the record (they filter on the leaf) and refuse to
    # answer past it, naming it
    assert refused(log.dpo.audit_search, {"subject_id": SUBJECT[3]}, 50, None) == [
        {"seq": 17, "columns": ["subject_id"]}]
    assert refused(log.dpo.audit_subject_summary, SUBJECT[3]) == [{"seq": 17, "columns": ["subject_id"]}]
    assert refused(log.dpo.audit_search, {"actor_id": other["actor_id"]}, 50, None) == [
        {"seq": 30, "columns": ["actor_id"]}]
    assert {t["seq"] for t in refused(log.dpo.audit_search, {}, 50, None)} == {17, 30}
    # where the edited columns point, nothing is misattributed
    subject_5 = log.dpo.audit_search({"subject_id": SUBJECT[5]}, 50, None)["items"]
    assert subject_5 and 17 not in [r["seq"] for r in subject_5]
    assert all(r["subject_id"] == SUBJECT[5] for r in subject_5)
    assert log.dpo.audit_subject_summary(SUBJECT[5])["total_records"] == len(subject_5)
    assert log.dpo.audit_search({"actor_id": "someone-innocent"}, 50, None)["items"] == []
    # a page that does not hold them is still answered
    older = log.dpo.audit_search({}, 10, page["next_cursor"])["items"]
    assert [r["seq"] for r in older] == list(range(16, 6, -1))

    # and the verifier names both records as edited
    report = verify_export(export(log), log.public_key)
    assert not report.ok
    assert report.first_bad_seq == 17
    assert {f.seq for f in report.findings if f.kind == "edited"} == {17, 30}


def test_subject_and_actor_searches_use_the_leaf_indexes(log):
    """Filtering on the leaf stays an index lookup (``bench/audit.py`` measures its p99 at 1,000,000 records)."""
    with log.engine.connect() as conn:
        for member in ("subject_id", "actor_id"):
            compiled = audit_store.search_statement(conn, {member: SUBJECT[3]}, 51, None).compile(
                conn, compile_kwargs={"literal_binds": True})
            conn.exec_driver_sql("SET enable_seqscan = off")  # (40 rows: a scan would be cheaper)
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
            assert f"ix_audit_records_leaf_{member.removesuffix('_id')}" in plan, plan
