"""The restore drill's comparison (scripts/restore_drill_compare.py) and its PostgreSQL side
(scripts/restore_drill_database.py): a changed row, a missing row, a changed grant, an edited audit
record or a different signed root make the comparison fail and name what differs; an untouched
dump and restore compares equal. (The whole drill, ``make restore-drill``, starts the platform twice:
over a minute, so it is run by its make target, not here.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from e2e_platform import load_script
from upgestao_kernel.testing import PG_ADMIN_URL

compare = load_script("scripts/restore_drill_compare.py", "restore_drill_compare", imports_from=("scripts",))
database = load_script("scripts/restore_drill_database.py", "restore_drill_database", imports_from=("scripts",))

TableSnapshot = compare.TableSnapshot


def table(rows, key=("id",)):
    return TableSnapshot.of(("id", "name", "data"), rows, key)


ROWS = [(1, "a", {"x": 1}), (2, "b", {"x": [1, 2]}), (3, "c", None)]


def test_the_same_rows_in_another_order_compare_equal():
    before = {"svc": {"t": table(ROWS)}}
    after = {"svc": {"t": table(list(reversed(ROWS)))}}
    [result] = compare.compare_snapshots(before, after)
    assert result.equal and (result.rows_before, result.rows_after) == (3, 3)
    assert "equal" in result.line()


def test_a_changed_value_names_its_table_and_column_never_the_value():
    secret = "Maria da Silva"
    before = {"svc": {"t": table([*ROWS, (4, secret, {})])}}
    after = {"svc": {"t": table([*ROWS, (4, secret + "~", {})])}}
    [result] = compare.compare_snapshots(before, after)
    assert not result.equal
    assert result.difference == "1 row(s) changed, the first in column(s) name"
    assert secret not in result.line()


def test_a_changed_json_value_and_a_missing_and_an_extra_row_are_each_named():
    before = {"svc": {"t": table(ROWS)}}
    after = {"svc": {"t": table([(1, "a", {"x": 2}), (3, "c", None), (5, "e", None)])}}
    [result] = compare.compare_snapshots(before, after)
    assert result.difference == ("1 row(s) changed, the first in column(s) data; 1 row(s) missing after; "
                                 "1 row(s) not there before")


def test_a_table_without_primary_key_pairs_the_rows_that_differ():
    before = {"svc": {"t": table(ROWS, key=())}}
    after = {"svc": {"t": table([ROWS[0], ROWS[1], (3, "c", {"y": 1})], key=())}}
    [result] = compare.compare_snapshots(before, after)
    assert result.difference == "1 row(s) differ, the first in column(s) data"


def test_a_missing_table_or_changed_columns_fail():
    before = {"svc": {"t": table(ROWS), "u": table(ROWS)}}
    after = {"svc": {"t": TableSnapshot.of(("id", "name"), [(1, "a")], ("id",))}}
    results = {r.table: r for r in compare.compare_snapshots(before, after)}
    assert "columns differ (missing: ['data']" in results["t"].difference
    assert results["u"].difference == "the table is missing after the restore"


def test_only_the_tables_asked_for_are_compared():
    before = {"svc": {"read_model": table(ROWS), "outbox": table(ROWS)}}
    after = {"svc": {"read_model": table(ROWS), "outbox": table(ROWS[:1])}}
    results = compare.compare_snapshots(before, after, tables={"svc": ["read_model"]})
    assert [(r.table, r.equal) for r in results] == [("read_model", True)]


def root(**over):
    values = dict(tree_size=3, root_hash=b"r" * 32, signed_at="2026-12-01T00:00:00.000000+00:00", key_id="k",
                  signature=b"s" * 64, records=3, recomputed_root=b"r" * 32, signature_ok=True)
    values.update(over)
    return compare.SignedRoot(**values)


def test_identical_verified_roots_pass_and_each_difference_is_named():
    assert compare.compare_roots(root(), root()) == []
    assert compare.compare_roots(root(), root(root_hash=b"x" * 32, recomputed_root=b"x" * 32)) == [
        "audit log: root_hash differs after the restore"]
    assert compare.compare_roots(root(), root(tree_size=2)) == ["audit log: tree_size differs after the restore"]
    assert compare.compare_roots(root(), root(signature_ok=False)) == [
        "audit log: the restored checkpoint's signature does not verify with the public key"]
    assert compare.compare_roots(root(), root(recomputed_root=b"y" * 32)) == [
        "audit log: the restored tree's leaf hashes do not give the signed root"]


# -- on PostgreSQL: a real dump, drop and restore of a database with an owner and a runtime role -----------


@pytest.fixture
def drill_databases():
    tag = "t" + uuid.uuid4().hex[:8]
    databases = database.DrillDatabases(PG_ADMIN_URL, tag, ["svc"], runtime_services={"svc"})
    databases.create()
    try:
        yield databases
    finally:
        assert databases.remove() == []


def build_audit_log(databases, signer, leaves: list[str]) -> None:
    """The audit log's three tables as privacy keeps them (columns the drill reads), owned by the owner role,
    the runtime role granted what privacy grants it, one checkpoint over ``leaves``."""
    from upgestao_privacy.domain.merkle import leaf_hash, root_of

    statements = [
        "CREATE TABLE audit_records (seq bigint PRIMARY KEY, leaf text NOT NULL)",
        "CREATE TABLE audit_tree_nodes (node_id bigint PRIMARY KEY, hash bytea NOT NULL)",
        "CREATE TABLE audit_checkpoints (tree_size bigint PRIMARY KEY, root_hash bytea NOT NULL, "
        "signed_at timestamptz NOT NULL, key_id varchar(32) NOT NULL, signature bytea NOT NULL)",
        "CREATE TABLE events (position bigserial PRIMARY KEY, data json NOT NULL)",
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'append-only'; "
        "END $$",
    ]
    statements += [f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW EXECUTE "
                   "FUNCTION refuse()" for t in ("audit_records", "audit_tree_nodes", "audit_checkpoints")]
    runtime = databases.databases["svc"].runtime
    statements += [f'GRANT SELECT, INSERT ON {t} TO "{runtime}"'
                   for t in ("audit_records", "audit_tree_nodes", "audit_checkpoints", "events")]
    import sqlalchemy as sa

    engine = sa.create_engine(databases.databases["svc"].owner_url)
    hashes = [leaf_hash(leaf.encode()) for leaf in leaves]
    checkpoint = signer.sign(len(leaves), root_of(hashes), datetime(2026, 12, 1, tzinfo=UTC))
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
        for seq, (leaf, digest) in enumerate(zip(leaves, hashes, strict=True)):
            conn.execute(sa.text("INSERT INTO audit_records VALUES (:s, :l)"), {"s": seq, "l": leaf})
            conn.execute(sa.text("INSERT INTO audit_tree_nodes VALUES (:s, :h)"), {"s": seq, "h": digest})
        conn.execute(sa.text("INSERT INTO audit_checkpoints VALUES (:n, :r, :t, :k, :s)"),
                     {"n": checkpoint.tree_size, "r": checkpoint.root_hash, "t": checkpoint.signed_at,
                      "k": checkpoint.key_id, "s": checkpoint.signature})
        conn.execute(sa.text("INSERT INTO events (data) VALUES ('{\"channel\": \"whatsapp\"}'), ('{}')"))
    engine.dispose()


EXPECTED_RUNTIME = {t: ("SELECT", "INSERT") for t in ("audit_records", "audit_tree_nodes", "audit_checkpoints",
                                                        "events")}
APPEND_ONLY = ("audit_records", "audit_tree_nodes", "audit_checkpoints")


@pytest.mark.infra  # drill_databases reaches PostgreSQL (found by make test-fast)
def test_a_dump_restored_into_a_new_database_compares_equal_and_a_tampered_one_does_not(drill_databases,
                                                                                        tmp_path: Path):
    from upgestao_privacy.domain.checkpoints import CheckpointSigner

    signer = CheckpointSigner(b"\x07" * 32)
    build_audit_log(drill_databases, signer, [f'{{"seq":{n},"action":"read"}}' for n in range(5)])
    before = {"svc": drill_databases.snapshot("svc")}
    root_before = database.signed_root(drill_databases, "svc", signer.public_key)
    assert root_before.problems == () and root_before.signature_ok and root_before.tree_size == 5

    dump = drill_databases.dump("svc", tmp_path)
    drill_databases.drop_and_recreate("svc")
    assert drill_databases.table_count("svc") == 0
    drill_databases.restore("svc", dump)

    after = {"svc": drill_databases.snapshot("svc")}
    assert [r for r in compare.compare_snapshots(before, after) if not r.equal] == []
    assert database.runtime_role_problems(drill_databases, "svc", EXPECTED_RUNTIME, APPEND_ONLY) == []
    assert compare.compare_roots(root_before, database.signed_root(drill_databases, "svc", signer.public_key)) == []
    assert compare.compare_roots(root_before, database.signed_root(
        drill_databases, "svc", CheckpointSigner(b"\x08" * 32).public_key))  # another key: refused

    # a bad backup: one event's data changed, one grant more, one audit record edited
    runtime = drill_databases.databases["svc"].runtime
    drill_databases.execute("svc", "UPDATE events SET data = :d WHERE position = 1", {"d": '{"channel": "email"}'})
    drill_databases.execute("svc", f'GRANT DELETE ON audit_records TO "{runtime}"')
    drill_databases.execute("svc", "ALTER TABLE audit_records DISABLE TRIGGER audit_records_append_only")
    drill_databases.execute("svc", "UPDATE audit_records SET leaf = :l WHERE seq = 2",
                            {"l": '{"seq":2,"action":"none"}'})
    tampered = {"svc": drill_databases.snapshot("svc")}
    differences = {r.table: r.difference for r in compare.compare_snapshots(before, tampered) if not r.equal}
    assert differences["events"] == "1 row(s) changed, the first in column(s) data"
    assert differences["audit_records"] == "1 row(s) changed, the first in column(s) leaf"
    assert differences["(owners and grants)"] == "1 row(s) not there before"
    assert differences["(triggers)"] == "1 row(s) changed, the first in column(s) enabled"
    assert database.runtime_role_problems(drill_databases, "svc", EXPECTED_RUNTIME, APPEND_ONLY) == [
        "svc: runtime role on audit_records: holds ['DELETE', 'INSERT', 'SELECT'], expected ['INSERT', 'SELECT']",
        "svc: the runtime role may DELETE audit_records",
        "svc: audit_records has no enabled append-only trigger",
    ]
    problems = compare.compare_roots(root_before, database.signed_root(drill_databases, "svc", signer.public_key))
    assert problems == ["audit log: the restored tree's leaf hashes do not give the signed root"]
