"""Personal-data vault: encryption, crypto-shredding, rotation, blind index, keys.

Runs on in-memory SQLite; also on PostgreSQL when ``UPGESTAO_TEST_PG_URL`` is
set (tables in a throw-away schema, dropped afterwards).
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import uuid

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs
from upgestao_kernel.config import ConfigError, load_settings
from upgestao_kernel.schema import kernel_metadata, subject_keys
from upgestao_kernel.vault import (
    BLIND_INDEX_KEY_VAR,
    ERASED,
    MASTER_KEY_VAR,
    Erased,
    MasterKeyring,
    Vault,
    VaultError,
    generate_key,
    is_erased,
    key_id,
    load_keys,
    rotate_master_key,
)

PG_URL = os.environ.get("UPGESTAO_TEST_PG_URL")
KEY1, KEY2, BLIND = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32


def _sqlite_engine() -> sa.Engine:
    """In-memory SQLite with working SAVEPOINTs (pysqlite needs explicit BEGIN)."""
    engine = sa.create_engine("sqlite://")

    @sa.event.listens_for(engine, "connect")
    def _no_implicit_tx(dbapi_conn, _record):
        dbapi_conn.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN")

    kernel_metadata.create_all(engine)
    return engine


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="UPGESTAO_TEST_PG_URL not set")),
    ],
)
def engine(request):
    if request.param == "sqlite":
        engine = _sqlite_engine()
        yield engine
        engine.dispose()
        return
    schema = f"vault_test_{uuid.uuid4().hex[:12]}"
    base = sa.create_engine(PG_URL)
    with base.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = base.execution_options(schema_translate_map={None: schema})
    try:
        kernel_metadata.create_all(engine)
        yield engine
    finally:
        with base.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        base.dispose()


@pytest.fixture
def conn(engine):
    """A connection in a transaction rolled back after the test."""
    with engine.connect() as conn:
        tx = conn.begin()
        yield conn
        tx.rollback()


@pytest.fixture
def vault() -> Vault:
    return Vault(MasterKeyring(KEY1), BLIND)


def _kid_of(conn, subject_id):
    return conn.execute(
        sa.select(subject_keys.c.master_kid).where(subject_keys.c.subject_id == subject_id)
    ).scalar_one()


# -- encryption -------------------------------------------------------------


def test_round_trip_and_none(conn, vault):
    ct = vault.encrypt(conn, "s1", "email", "maria@example.com")
    assert ct.startswith("v1:") and "maria" not in ct
    assert vault.decrypt(conn, "s1", "email", ct) == "maria@example.com"
    assert vault.encrypt(conn, "s1", "email", None) is None
    assert vault.decrypt(conn, "s1", "email", None) is None
    unicode_value = "José Ñandú 日本"
    ct = vault.encrypt(conn, "s1", "full_name", unicode_value)
    assert vault.decrypt(conn, "s1", "full_name", ct) == unicode_value


def test_one_key_row_per_subject(conn, vault):
    vault.encrypt(conn, "s1", "email", "a")
    vault.encrypt(conn, "s1", "phone", "b")
    rows = conn.execute(sa.select(subject_keys).where(subject_keys.c.subject_id == "s1")).all()
    assert len(rows) == 1
    assert rows[0].master_kid == key_id(KEY1) and rows[0].shredded_at is None
    assert len(rows[0].wrapped_key) == 12 + 32 + 16  # nonce + key + tag


def test_random_nonce(conn, vault):
    a = vault.encrypt(conn, "s1", "email", "same")
    b = vault.encrypt(conn, "s1", "email", "same")
    assert a != b
    assert vault.decrypt(conn, "s1", "email", a) == vault.decrypt(conn, "s1", "email", b) == "same"


def test_ciphertext_bound_to_subject_and_field(conn, vault):
    ct = vault.encrypt(conn, "s1", "email", "maria@example.com")
    vault.encrypt(conn, "s2", "email", "other@example.com")
    with pytest.raises(VaultError, match="does not authenticate"):
        vault.decrypt(conn, "s1", "phone", ct)
    with pytest.raises(VaultError, match="does not authenticate"):
        vault.decrypt(conn, "s2", "email", ct)


def test_tampered_or_malformed_ciphertext(conn, vault):
    ct = vault.encrypt(conn, "s1", "email", "maria@example.com")
    raw = bytearray(base64.urlsafe_b64decode(ct[3:]))
    raw[-1] ^= 1
    tampered = "v1:" + base64.urlsafe_b64encode(bytes(raw)).decode()
    for bad in (tampered, "maria@example.com", "v1:@@@", "v1:AAAA", "v1:ção", ct[:-8]):
        with pytest.raises(VaultError):
            vault.decrypt(conn, "s1", "email", bad)


def test_decrypt_without_key_row_fails(conn, vault):
    with pytest.raises(VaultError, match="no data key"):
        vault.decrypt(conn, "nobody", "email", "v1:AAAA")


def test_decrypt_many_one_key_lookup(conn, vault):
    cts = {f: vault.encrypt(conn, "s1", f, f"value of {f}") for f in ("email", "phone", "full_name")}
    cts["address"] = None
    statements = []
    sa.event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
    values = vault.decrypt_many(conn, "s1", cts)
    assert values == {"email": "value of email", "phone": "value of phone",
                      "full_name": "value of full_name", "address": None}
    assert len(statements) == 1


def test_decrypt_batch_opens_each_value_under_its_own_field(conn, vault):
    """A page of values of one subject: one key lookup; each value still bound to its field and subject."""
    items = [{"body": vault.encrypt(conn, "s1", "body", f"message {i}"), "title": None} for i in range(3)]
    items.append({"body": vault.encrypt(conn, "s1", "body", "last"), "title": vault.encrypt(conn, "s1", "title", "t")})
    statements = []
    sa.event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert vault.decrypt_batch(conn, "s1", items) == [
        {"body": "message 0", "title": None}, {"body": "message 1", "title": None},
        {"body": "message 2", "title": None}, {"body": "last", "title": "t"}]
    assert len(statements) == 1
    swapped = [{"body": items[0]["body"]}, {"body": items[3]["title"]}]  # a title where a body belongs
    with pytest.raises(VaultError, match="does not authenticate"):
        vault.decrypt_batch(conn, "s1", swapped)
    vault.encrypt(conn, "s2", "body", "another subject's")
    with pytest.raises(VaultError, match="does not authenticate"):
        vault.decrypt_batch(conn, "s2", items[:1])
    assert vault.decrypt_batch(conn, "s1", [{"body": None}]) == [{"body": None}]
    vault.shred(conn, "s1")
    assert vault.decrypt_batch(conn, "s1", items[:1]) == [{"body": ERASED, "title": None}]


def test_decrypt_subjects_looks_every_key_up_in_one_statement(conn, vault):
    """A search's hits, of several subjects: one statement for their keys; each value bound to its own subject."""
    batches = {s: [{"body": vault.encrypt(conn, s, "body", f"{s} {i}")} for i in range(2)] for s in ("s1", "s2", "s3")}
    batches["s4"] = [{"body": None}]  # nothing sealed: no key needed (none exists)
    statements = []
    listener = lambda *a: statements.append(a[2])  # noqa: E731
    sa.event.listen(conn, "before_cursor_execute", listener)
    assert vault.decrypt_subjects(conn, batches) == {
        "s1": [{"body": "s1 0"}, {"body": "s1 1"}], "s2": [{"body": "s2 0"}, {"body": "s2 1"}],
        "s3": [{"body": "s3 0"}, {"body": "s3 1"}], "s4": [{"body": None}]}
    assert len(statements) == 1
    sa.event.remove(conn, "before_cursor_execute", listener)
    assert vault.decrypt_subjects(conn, {}) == {} and vault.decrypt_subjects(conn, {"s4": []}) == {"s4": []}
    with pytest.raises(VaultError, match="does not authenticate"):  # s1's value given as s2's
        vault.decrypt_subjects(conn, {"s1": batches["s1"], "s2": batches["s1"]})
    with pytest.raises(VaultError, match="no data key for subject 'nobody'"):
        vault.decrypt_subjects(conn, {"s1": batches["s1"], "nobody": [{"body": "v1:AAAA"}]})
    vault.shred(conn, "s2")
    assert vault.decrypt_subjects(conn, {"s1": batches["s1"][:1], "s2": batches["s2"] + [{"body": None}]}) == {
        "s1": [{"body": "s1 0"}], "s2": [{"body": ERASED}, {"body": ERASED}, {"body": None}]}


def test_concurrent_key_creation_reuses_the_winner(conn, vault, monkeypatch):
    """Another transaction inserted the key between our read and our insert."""
    with conn.begin_nested():  # (a key used in a savepoint is not remembered past it: the next encrypt reads)
        ct = vault.encrypt(conn, "s1", "email", "first")
    real_row = Vault._row
    calls = []

    def stale_first_read(self, c, subject_id):
        calls.append(subject_id)
        return None if len(calls) == 1 else real_row(self, c, subject_id)

    monkeypatch.setattr(Vault, "_row", stale_first_read)
    second = vault.encrypt(conn, "s1", "email", "second")  # IntegrityError in a savepoint, re-read
    monkeypatch.undo()
    assert len(calls) == 2
    # The outer transaction is still usable and the winner's key is used.
    assert vault.decrypt(conn, "s1", "email", ct) == "first"
    assert vault.decrypt(conn, "s1", "email", second) == "second"


def test_a_transaction_looks_its_write_key_up_once_and_the_next_transaction_again(engine, vault):
    """A message and the request's reply sealed under one subject: one key lookup, not two; a shred committed
    in between two transactions is effective for the second one's write."""
    subject = f"s-{uuid.uuid4().hex[:8]}"
    statements = []
    with engine.connect() as c:
        sa.event.listen(c, "before_cursor_execute", lambda *a: statements.append(a[2]))
        with c.begin():
            first = vault.encrypt(c, subject, "body", "first")
            before = len(statements)
            second = vault.encrypt(c, subject, "request_reply", "second")
            assert len(statements) == before  # the key of this transaction's first write
            assert vault.decrypt(c, subject, "body", first) == "first"
            assert vault.decrypt(c, subject, "request_reply", second) == "second"
        with c.begin():
            vault.shred(c, subject)
        with c.begin():
            statements.clear()
            with pytest.raises(VaultError, match="shredded"):
                vault.encrypt(c, subject, "body", "third")
            assert statements  # looked up again


def test_encrypt_after_a_shred_in_a_savepoint_refused(conn, vault):
    vault.encrypt(conn, "A", "email", "a@example.com")
    with conn.begin_nested():
        vault.shred(conn, "A")
    with pytest.raises(VaultError, match="shredded"):
        vault.encrypt(conn, "A", "email", "again@example.com")


def test_a_write_key_created_in_a_rolled_back_savepoint_is_not_reused(conn, vault):
    with conn.begin_nested() as savepoint:
        vault.encrypt(conn, "N", "email", "gone")
        savepoint.rollback()  # the key's row with it
    ct = vault.encrypt(conn, "N", "email", "kept")
    assert vault.decrypt(conn, "N", "email", ct) == "kept"


# -- shredding --------------------------------------------------------------


def test_shred_one_subject_leaves_others_readable(conn, vault):
    a = vault.encrypt(conn, "A", "email", "a@example.com")
    a_phone = vault.encrypt(conn, "A", "phone", "+5511999990000")
    b = vault.encrypt(conn, "B", "email", "b@example.com")

    assert vault.shred(conn, "A") is True
    assert vault.is_shredded(conn, "A") and not vault.is_shredded(conn, "B")

    erased = vault.decrypt(conn, "A", "email", a)
    assert erased is ERASED and is_erased(erased) and isinstance(erased, Erased)
    assert str(erased) == "[erased]" and Erased() is ERASED
    assert vault.decrypt_many(conn, "A", {"email": a, "phone": a_phone, "x": None}) == {
        "email": ERASED, "phone": ERASED, "x": None}
    assert vault.decrypt(conn, "B", "email", b) == "b@example.com"
    assert not is_erased("b@example.com")

    row = conn.execute(sa.select(subject_keys).where(subject_keys.c.subject_id == "A")).one()
    assert row.wrapped_key is None and row.master_kid is None and row.shredded_at is not None
    assert vault.shred(conn, "A") is False  # nothing left to destroy


def test_encrypt_after_shred_refused(conn, vault):
    vault.encrypt(conn, "A", "email", "a@example.com")
    vault.shred(conn, "A")
    with pytest.raises(VaultError, match="shredded"):
        vault.encrypt(conn, "A", "email", "again@example.com")


def test_shred_unknown_subject_leaves_tombstone(conn, vault):
    assert vault.is_shredded(conn, "ghost") is False
    assert vault.shred(conn, "ghost") is False
    assert vault.is_shredded(conn, "ghost") is True
    with pytest.raises(VaultError, match="shredded"):
        vault.encrypt(conn, "ghost", "email", "x@example.com")
    assert vault.shred(conn, "ghost") is False


# -- master keys and rotation -----------------------------------------------


def test_keyring_ids_and_unknown_kid(conn, vault):
    assert key_id(KEY1) == hashlib.sha256(KEY1).hexdigest()[:16]
    ring = MasterKeyring(KEY2, [KEY1, KEY1])
    assert ring.current_kid == key_id(KEY2) and ring.kids == (key_id(KEY2), key_id(KEY1))
    ct = vault.encrypt(conn, "s1", "email", "x")
    other = Vault(MasterKeyring(KEY2), BLIND)
    with pytest.raises(VaultError, match="unknown master key"):
        other.decrypt(conn, "s1", "email", ct)
    with pytest.raises(ValueError):
        MasterKeyring(b"short")
    assert len(base64.b64decode(generate_key())) == 32
    assert MasterKeyring.generate().current != MasterKeyring.generate().current


def test_rotation_rewraps_keys_not_data(conn, vault):
    cts = {s: vault.encrypt(conn, s, "email", f"{s}@example.com") for s in ("r1", "r2", "r3")}
    vault.shred(conn, "r3")

    assert vault.rotate(conn, MasterKeyring(KEY2, [KEY1])) == 2
    assert _kid_of(conn, "r1") == _kid_of(conn, "r2") == key_id(KEY2)
    assert _kid_of(conn, "r3") is None

    new_only = Vault(MasterKeyring(KEY2), BLIND)
    assert new_only.decrypt(conn, "r1", "email", cts["r1"]) == "r1@example.com"
    assert new_only.decrypt(conn, "r2", "email", cts["r2"]) == "r2@example.com"
    assert new_only.decrypt(conn, "r3", "email", cts["r3"]) is ERASED
    with pytest.raises(VaultError, match="unknown master key"):
        vault.decrypt(conn, "r1", "email", cts["r1"])  # old key alone no longer fits

    assert new_only.rotate(conn, MasterKeyring(KEY2)) == 0  # idempotent


def test_rotate_master_key_commits(engine):
    subjects = [f"rot-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    old = Vault(MasterKeyring(KEY1), BLIND)
    try:
        with engine.begin() as conn:
            cts = {s: old.encrypt(conn, s, "phone", s) for s in subjects}
        assert rotate_master_key(engine, old.keyring, MasterKeyring(KEY2, [KEY1])) >= 3
        new_only = Vault(MasterKeyring(KEY2), BLIND)
        with engine.connect() as conn:
            assert all(new_only.decrypt(conn, s, "phone", ct) == s for s, ct in cts.items())
    finally:
        with engine.begin() as conn:
            conn.execute(subject_keys.delete().where(subject_keys.c.subject_id.in_(subjects)))


# -- blind index ------------------------------------------------------------


def test_blind_index(vault):
    email = vault.blind_index("email", "Maria@Example.COM")
    assert len(email) == 64 and int(email, 16) >= 0
    assert email == vault.blind_index("email", "  maria@example.com ")
    assert email == vault.blind_index("email", "ｍａｒｉａ@example.com")  # NFKC: full-width
    assert email != vault.blind_index("email", "mario@example.com")
    assert email != vault.blind_index("login", "maria@example.com")
    assert email != Vault(MasterKeyring(KEY1), b"\x04" * 32).blind_index("email", "maria@example.com")
    assert vault.blind_index("name", "STRASSE") == vault.blind_index("name", "straße")


# -- loading keys -----------------------------------------------------------


def _settings(tmp_path, env="local"):
    return load_settings("people", {
        "UPGESTAO_DATA_DIR": str(tmp_path), "UPGESTAO_ENV": env,
        "PEOPLE_DATABASE_URL": "postgresql://db/people",
    })


def test_load_keys_generates_local_files_once(tmp_path):
    settings = _settings(tmp_path)
    with capture_logs() as logs:
        ring, blind = load_keys(settings, {})
    keys_dir = tmp_path / "keys"
    for name in ("master.key", "blind-index.key"):
        assert stat.S_IMODE((keys_dir / name).stat().st_mode) == 0o600
    assert base64.b64decode((keys_dir / "master.key").read_text()) == ring.current
    assert blind != ring.current and len(blind) == 32
    assert [e["log_level"] for e in logs] == ["warning", "warning"]
    text = repr(logs)
    assert base64.b64encode(ring.current).decode() not in text and base64.b64encode(blind).decode() not in text

    ring2, blind2 = load_keys(settings, {})
    assert (ring2.current, blind2) == (ring.current, blind)


def test_load_keys_from_environment(tmp_path):
    k1, k2, kb = os.urandom(32), os.urandom(32), os.urandom(32)
    environ = {
        MASTER_KEY_VAR: f"{base64.urlsafe_b64encode(k2).decode().rstrip('=')}, {base64.b64encode(k1).decode()}",
        BLIND_INDEX_KEY_VAR: base64.b64encode(kb).decode(),
    }
    ring, blind = load_keys(_settings(tmp_path, "production"), environ)
    assert ring.current == k2 and ring.kids == (key_id(k2), key_id(k1))
    assert blind == kb
    assert not (tmp_path / "keys").exists()


def test_load_keys_required_in_production(tmp_path):
    settings = _settings(tmp_path, "production")
    with pytest.raises(ConfigError) as err:
        load_keys(settings, {})
    assert err.value.variable == "UPGESTAO_MASTER_KEY"
    assert "required in production" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_keys(settings, {MASTER_KEY_VAR: generate_key()})
    assert err.value.variable == "UPGESTAO_BLIND_INDEX_KEY"
    assert not (tmp_path / "keys").exists()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        (MASTER_KEY_VAR, "not base64 !!"),
        (MASTER_KEY_VAR, base64.b64encode(b"x" * 16).decode()),
        (MASTER_KEY_VAR, f"{generate_key()},{base64.b64encode(b'x' * 31).decode()}"),
        (BLIND_INDEX_KEY_VAR, base64.b64encode(b"x" * 33).decode()),
        (BLIND_INDEX_KEY_VAR, f"{generate_key()},{generate_key()}"),
    ],
    ids=["bad-base64", "16-bytes", "bad-previous-key", "33-bytes", "two-blind-keys"],
)
def test_load_keys_malformed(tmp_path, variable, value):
    environ = {MASTER_KEY_VAR: generate_key(), BLIND_INDEX_KEY_VAR: generate_key(), variable: value}
    with pytest.raises(ConfigError) as err:
        load_keys(_settings(tmp_path, "production"), environ)
    assert err.value.variable == variable


def test_load_keys_blind_index_key_must_differ(tmp_path):
    key = generate_key()
    with pytest.raises(ConfigError) as err:
        load_keys(_settings(tmp_path), {MASTER_KEY_VAR: key, BLIND_INDEX_KEY_VAR: key})
    assert err.value.variable == BLIND_INDEX_KEY_VAR
