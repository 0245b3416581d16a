"""bcrypt hashing adapter."""

import threading

import bcrypt
import pytest
from upgestao_identity.adapters import hashing
from upgestao_identity.adapters.hashing import PasswordHasher


def direct(func, *args):
    return func(*args)


@pytest.fixture(scope="module")
def hasher():
    return PasswordHasher(4, direct, allow_low_cost=True)


def test_hash_and_verify(hasher):
    hashed = hasher.hash("correct horse battery")
    assert hashed.startswith("$2b$04$") and len(hashed) == 60
    assert hasher.verify("correct horse battery", hashed)
    assert not hasher.verify("correct horse batterY", hashed)
    assert hasher.hash("correct horse battery") != hashed  # salted


def test_verify_multibyte_at_72_bytes(hasher):
    password = "ç" * 36
    hashed = hasher.hash(password)
    assert hasher.verify(password, hashed)
    assert not hasher.verify("ç" * 35 + "c", hashed)


def test_never_truncates(hasher):
    with pytest.raises(ValueError, match="72 bytes"):
        hasher.hash("a" * 73)
    with pytest.raises(ValueError):
        hasher.hash("ç" * 36 + "a")
    hashed = hasher.hash("a" * 72)
    assert not hasher.verify("a" * 73, hashed)  # not accepted as the same password


@pytest.mark.parametrize(
    "bad", ["", "not a hash", "$2b$04$short", "$2b$04$" + "!" * 53, "$1$abc$def", "$2b$xx$" + "a" * 53, None, 42]
)
def test_verify_never_raises_on_malformed_hash(hasher, bad):
    assert hasher.verify("whatever-password", bad) is False


def test_verify_wrong_types(hasher):
    hashed = hasher.hash("whatever-password")
    assert hasher.verify(None, hashed) is False
    assert hasher.verify(b"whatever-password", hashed) is False


def test_needs_rehash(hasher):
    assert not hasher.needs_rehash(hasher.hash("some password"))
    cost5 = bcrypt.hashpw(b"some password", bcrypt.gensalt(rounds=5)).decode()
    assert hasher.needs_rehash(cost5)
    assert hasher.verify("some password", cost5)  # an older cost still verifies
    assert hasher.needs_rehash("garbage")


def test_verify_dummy_is_always_false_and_costs_a_check(hasher):
    assert hasher.verify_dummy("anything at all") is False
    assert hasher.verify_dummy("x" * 100) is False
    assert hasher.verify_dummy(None) is False
    assert hasher._dummy.startswith(b"$2b$04$")


def test_dummy_hash_computed_once_thread_safely():
    calls = []

    def counting(func, *args):
        calls.append(func)
        return func(*args)

    h = PasswordHasher(4, counting, allow_low_cost=True)
    assert h._dummy is None  # lazily
    threads = [threading.Thread(target=h.verify_dummy, args=("pw-pw-pw-pw",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    hashes = [c for c in calls if c is hashing._hashpw]
    assert len(hashes) == 1
    assert len(calls) == 9  # one dummy hash + eight checks


def test_hash_and_verify_run_through_offload():
    seen = []

    def offload(func, *args):
        seen.append(func)
        return func(*args)

    h = PasswordHasher(4, offload, allow_low_cost=True)
    hashed = h.hash("through the pool")
    assert seen == [hashing._hashpw]
    assert h.verify("through the pool", hashed)
    assert seen[-1] is bcrypt.checkpw
    h.verify_dummy("through the pool")
    assert seen[-1] is bcrypt.checkpw


def test_low_cost_refused_without_flag():
    with pytest.raises(ValueError, match="below the minimum 12"):
        PasswordHasher(4)
    with pytest.raises(ValueError):
        PasswordHasher(11, direct)
    with pytest.raises(ValueError):
        PasswordHasher(3, direct, allow_low_cost=True)
    assert PasswordHasher().cost == 12


def test_cost_12_hash_prefix():
    h = PasswordHasher(12, direct)
    hashed = h.hash("production cost!")
    assert hashed.startswith("$2b$12$")
    assert not h.needs_rehash(hashed)


def test_default_offload_follows_monkey_patching(monkeypatch):
    from eventlet import patcher, tpool

    monkeypatch.setattr(patcher, "is_monkey_patched", lambda module: True)
    assert hashing.default_offload() is tpool.execute
    monkeypatch.setattr(patcher, "is_monkey_patched", lambda module: False)
    assert hashing.default_offload() is hashing._direct


@pytest.mark.parametrize("password", ["x" * 200, "é" * 37, None, 42, ""])
def test_every_verification_costs_exactly_one_bcrypt_check(password):
    """Finding 4: a password bcrypt cannot take (over 72 bytes, not text) and a stored hash that is no
    bcrypt hash cost one check like any other, so timing tells neither the length nor the account."""
    calls = []

    def counting(func, *args):
        calls.append(func)
        return func(*args)

    counted = PasswordHasher(4, counting, allow_low_cost=True)
    stored = counted.hash("correct horse battery")
    counted.verify_dummy("warm the dummy hash")
    for hashed in (stored, "not a bcrypt hash"):
        calls.clear()
        assert counted.verify(password, hashed) is False
        assert calls == [bcrypt.checkpw]
    calls.clear()
    assert counted.verify_dummy(password) is False and calls == [bcrypt.checkpw]
