"""Signed checkpoints: body format, JSON round trip, Ed25519 signatures, public key decoding."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from upgestao_privacy.domain.checkpoints import (
    ORIGIN,
    Checkpoint,
    CheckpointError,
    CheckpointSigner,
    checkpoint_line,
    checkpoints_from_lines,
    decode_public_key,
    key_id_of,
    verify_checkpoint,
)

SEED = bytes(range(32))
ROOT = hashlib.sha256(b"root").digest()
AT = datetime(2026, 11, 29, 19, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(scope="module")
def signer():
    return CheckpointSigner(SEED)


def test_body_and_dict(signer):
    checkpoint = signer.sign(42, ROOT, AT)
    root_b64 = base64.b64encode(ROOT).decode()
    assert checkpoint.body() == f"{ORIGIN}\n42\n{root_b64}\n2026-11-29T19:00:00.123456+00:00\n".encode()
    assert checkpoint.to_dict() == {
        "origin": "upgestao.audit/v1",
        "tree_size": 42,
        "root_hash": root_b64,
        "signed_at": "2026-11-29T19:00:00.123456+00:00",
        "key_id": signer.key_id,
        "signature": base64.b64encode(checkpoint.signature).decode(),
    }
    assert Checkpoint.from_dict(checkpoint.to_dict()) == checkpoint
    assert len(checkpoint.signature) == 64


def test_whole_seconds_keep_microseconds_and_other_zones_become_utc(signer):
    local = datetime(2026, 11, 29, 16, 0, 0, tzinfo=timezone(timedelta(hours=-3)))
    checkpoint = signer.sign(1, ROOT, local)
    assert checkpoint.signed_at == datetime(2026, 11, 29, 19, 0, 0, tzinfo=UTC)
    assert checkpoint.body().endswith(b"\n2026-11-29T19:00:00.000000+00:00\n")
    verify_checkpoint(Checkpoint.from_dict(checkpoint.to_dict()), signer.public_key)
    with pytest.raises(ValueError):
        signer.sign(1, ROOT, datetime(2026, 11, 29, 19, 0, 0))  # naive


def test_key_id_and_public_key(signer):
    assert len(signer.public_key) == 32
    assert signer.key_id == hashlib.sha256(signer.public_key).hexdigest()[:16] == key_id_of(signer.public_key)
    assert base64.b64decode(signer.public_key_b64) == signer.public_key
    assert CheckpointSigner(SEED).public_key == signer.public_key
    # RFC 8032 §7.1 TEST 1: the seed gives the standard public key
    rfc = CheckpointSigner(bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
    assert rfc.public_key.hex() == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    with pytest.raises(ValueError):
        CheckpointSigner(SEED[:31])


def test_sign_verify_round_trip(signer):
    checkpoint = signer.sign(1000, ROOT, AT)
    verify_checkpoint(checkpoint, signer.public_key)
    verify_checkpoint(Checkpoint.from_dict(checkpoint.to_dict()), decode_public_key(signer.public_key_b64))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: replace(c, tree_size=c.tree_size + 1),
        lambda c: replace(c, tree_size=c.tree_size - 1),
        lambda c: replace(c, root_hash=hashlib.sha256(b"other").digest()),
        lambda c: replace(c, signed_at=c.signed_at + timedelta(microseconds=1)),
        lambda c: replace(c, signature=bytes([c.signature[0] ^ 1]) + c.signature[1:]),
        lambda c: replace(c, signature=c.signature[:-1]),
    ],
    ids=["size+1", "size-1", "root", "time", "signature", "short signature"],
)
def test_tampering_is_rejected(signer, tamper):
    with pytest.raises(CheckpointError):
        verify_checkpoint(tamper(signer.sign(1000, ROOT, AT)), signer.public_key)


def test_wrong_key_is_rejected(signer):
    other = CheckpointSigner(bytes(range(1, 33)))
    checkpoint = other.sign(1000, ROOT, AT)
    with pytest.raises(CheckpointError, match="names key"):
        verify_checkpoint(checkpoint, signer.public_key)
    # a checkpoint claiming our key id but signed by another key
    with pytest.raises(CheckpointError, match="bad signature"):
        verify_checkpoint(replace(checkpoint, key_id=signer.key_id), signer.public_key)
    assert issubclass(CheckpointError, ValueError)


@pytest.mark.parametrize(
    "change",
    [
        {"origin": "other/v1"},
        {"tree_size": -1},
        {"tree_size": "3"},
        {"tree_size": True},
        {"root_hash": "not base64!"},
        {"root_hash": base64.b64encode(b"short").decode()},
        {"signed_at": "yesterday"},
        {"signed_at": "2026-11-29T19:00:00"},
        {"key_id": ""},
        {"signature": base64.b64encode(b"x" * 10).decode()},
        {"signature": None},
    ],
)
def test_from_dict_rejects_malformed(signer, change):
    data = {**signer.sign(5, ROOT, AT).to_dict(), **change}
    with pytest.raises(ValueError):
        Checkpoint.from_dict(data)


def test_from_dict_rejects_non_objects():
    for data in (None, [], "checkpoint"):
        with pytest.raises(ValueError):
            Checkpoint.from_dict(data)


def test_decode_public_key(signer):
    raw = signer.public_key
    standard = base64.b64encode(raw).decode()
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    for text in (standard, standard.rstrip("="), urlsafe, urlsafe.rstrip("="), f"  {standard}\n"):
        assert decode_public_key(text) == raw
    for text in ("", "!!!!", base64.b64encode(raw[:31]).decode(), base64.b64encode(raw + b"x").decode()):
        with pytest.raises(ValueError):
            decode_public_key(text)


def test_a_checkpoint_file_reads_back_smallest_first_each_once_and_refuses_a_bad_line(signer):
    """The checkpoint file (JSON Lines) an auditor keeps: the relay may repeat a line after a crash,
    ``audit tail --checkpoints`` may append what the relay wrote too."""
    ten, twenty = signer.sign(10, ROOT, AT), signer.sign(20, hashlib.sha256(b"other").digest(), AT)
    lines = [checkpoint_line(twenty), "", checkpoint_line(ten), checkpoint_line(twenty).encode() + b"\n"]
    assert checkpoints_from_lines(lines) == [ten, twenty]
    assert Checkpoint.from_dict(__import__("json").loads(checkpoint_line(ten))) == ten
    with pytest.raises(ValueError, match=r"^kept.jsonl, line 2: not JSON|^kept.jsonl, line 2: "):
        checkpoints_from_lines([checkpoint_line(ten), "{not json"], "kept.jsonl")
    with pytest.raises(ValueError, match=r"^kept.jsonl, line 1: checkpoint origin"):
        checkpoints_from_lines(['{"origin": "elsewhere"}'], "kept.jsonl")
