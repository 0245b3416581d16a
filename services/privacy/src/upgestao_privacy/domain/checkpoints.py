"""Signed checkpoints of the audit log: a tree size and root hash, signed with Ed25519.

The signed body is plain text::

    upgestao.audit/v1
    <tree_size>
    <root hash, standard base64>
    <signed_at, ISO-8601 UTC with microseconds>

each line ending in a newline. The key id is the first 16 hex characters of SHA-256 of the raw
32-byte public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .merkle import HASH_SIZE

ORIGIN = "upgestao.audit/v1"
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64

_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/\-_]*={0,2}")


def b64encode(data: bytes) -> str:
    """Standard base64 with padding, as hashes travel in JSON."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, what: str = "value") -> bytes:
    """Strict standard base64 (with padding); ValueError naming ``what`` otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"{what} is not valid base64: {error}") from None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that the log had ``tree_size`` leaves with root ``root_hash`` at ``signed_at``."""

    tree_size: int
    root_hash: bytes
    signed_at: datetime
    key_id: str
    signature: bytes

    def __post_init__(self) -> None:
        if isinstance(self.tree_size, bool) or not isinstance(self.tree_size, int) or self.tree_size < 0:
            raise ValueError(f"checkpoint tree_size must be an integer >= 0, got {self.tree_size!r}")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise ValueError(f"checkpoint root_hash must be {HASH_SIZE} bytes")
        if not isinstance(self.signed_at, datetime) or self.signed_at.utcoffset() is None:
            raise ValueError("checkpoint signed_at must be a timezone-aware datetime")
        if self.signed_at.tzinfo is not UTC:
            object.__setattr__(self, "signed_at", self.signed_at.astimezone(UTC))

    def body(self) -> bytes:
        """The signed text."""
        return f"{ORIGIN}\n{self.tree_size}\n{b64encode(self.root_hash)}\n{_iso(self.signed_at)}\n".encode("ascii")

    def to_dict(self) -> dict[str, Any]:
        """JSON form: origin, tree_size, root_hash (base64), signed_at (ISO), key_id, signature (base64)."""
        return {
            "origin": ORIGIN,
            "tree_size": self.tree_size,
            "root_hash": b64encode(self.root_hash),
            "signed_at": _iso(self.signed_at),
            "key_id": self.key_id,
            "signature": b64encode(self.signature),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """Parse ``to_dict`` output; ValueError on anything malformed (the signature is not checked here)."""
        if not isinstance(data, Mapping):
            raise ValueError("a checkpoint must be a JSON object")
        origin = data.get("origin")
        if origin != ORIGIN:
            raise ValueError(f"checkpoint origin is {origin!r}, expected {ORIGIN!r}")
        tree_size = data.get("tree_size")
        if isinstance(tree_size, bool) or not isinstance(tree_size, int) or tree_size < 0:
            raise ValueError(f"checkpoint tree_size must be an integer >= 0, got {tree_size!r}")
        root_hash = b64decode(data.get("root_hash"), "checkpoint root_hash")
        if len(root_hash) != HASH_SIZE:
            raise ValueError(f"checkpoint root_hash is {len(root_hash)} bytes, not {HASH_SIZE}")
        signed_at_text = data.get("signed_at")
        if not isinstance(signed_at_text, str):
            raise ValueError("checkpoint signed_at must be an ISO-8601 string")
        try:
            signed_at = datetime.fromisoformat(signed_at_text)
        except ValueError:
            raise ValueError(f"checkpoint signed_at {signed_at_text!r} is not ISO-8601") from None
        if signed_at.utcoffset() is None:
            raise ValueError(f"checkpoint signed_at {signed_at_text!r} has no time zone")
        key_id = data.get("key_id")
        if not isinstance(key_id, str) or not key_id:
            raise ValueError("checkpoint key_id must be a non-empty string")
        signature = b64decode(data.get("signature"), "checkpoint signature")
        if len(signature) != SIGNATURE_SIZE:
            raise ValueError(f"checkpoint signature is {len(signature)} bytes, not {SIGNATURE_SIZE}")
        return cls(tree_size, root_hash, signed_at, key_id, signature)


class CheckpointError(ValueError):
    """A checkpoint is not signed by the expected key."""


def key_id_of(public_key: bytes) -> str:
    """First 16 hex characters of SHA-256 of the raw 32-byte Ed25519 public key."""
    return hashlib.sha256(public_key).hexdigest()[:16]


class CheckpointSigner:
    """Signs checkpoints with an Ed25519 key given as its 32-byte seed."""

    def __init__(self, private_key: bytes) -> None:
        if len(private_key) != 32:
            raise ValueError(f"an Ed25519 private key seed is 32 bytes, got {len(private_key)}")
        self._key = Ed25519PrivateKey.from_private_bytes(bytes(private_key))
        self.public_key: bytes = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key_b64: str = b64encode(self.public_key)
        self.key_id: str = key_id_of(self.public_key)

    def sign(self, tree_size: int, root_hash: bytes, signed_at: datetime) -> Checkpoint:
        """A checkpoint of ``tree_size`` and ``root_hash`` at ``signed_at`` (timezone-aware), signed."""
        unsigned = Checkpoint(tree_size, bytes(root_hash), signed_at, self.key_id, b"")
        return replace(unsigned, signature=self._key.sign(unsigned.body()))

    def __repr__(self) -> str:
        return f"CheckpointSigner(key_id={self.key_id!r})"


def decode_public_key(text: str) -> bytes:
    """The raw 32-byte Ed25519 public key from base64 text (standard or URL-safe, padding optional)."""
    cleaned = "".join(text.split()) if isinstance(text, str) else ""
    if not cleaned or not _BASE64_TEXT.fullmatch(cleaned):
        raise ValueError("the public key must be the base64 of a raw 32-byte Ed25519 key")
    cleaned = cleaned.rstrip("=").replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        key = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the public key is not valid base64") from None
    if len(key) != PUBLIC_KEY_SIZE:
        raise ValueError(f"the public key must be {PUBLIC_KEY_SIZE} bytes, got {len(key)}")
    return key


def verify_checkpoint(checkpoint: Checkpoint, public_key: bytes) -> None:
    """Raise ``CheckpointError`` unless ``checkpoint`` carries a valid signature by ``public_key``."""
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise CheckpointError(f"the public key must be {PUBLIC_KEY_SIZE} bytes, got {len(public_key)}")
    expected = key_id_of(public_key)
    if checkpoint.key_id != expected:
        raise CheckpointError(
            f"checkpoint of tree size {checkpoint.tree_size} names key {checkpoint.key_id!r}, expected {expected!r}"
        )
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(checkpoint.signature, checkpoint.body())
    except InvalidSignature:
        raise CheckpointError(f"checkpoint of tree size {checkpoint.tree_size} has a bad signature") from None


def checkpoint_line(checkpoint: Checkpoint) -> str:
    """One line of a checkpoint file (JSON Lines, no newline): :meth:`Checkpoint.to_dict` as compact JSON."""
    return json.dumps(checkpoint.to_dict(), separators=(",", ":"), sort_keys=True)


def checkpoints_from_lines(lines: Iterable[str | bytes], what: str = "the checkpoint file") -> list[Checkpoint]:
    """The checkpoints of a JSON Lines text (a checkpoint file, or the checkpoints ``audit tail`` kept),
    smallest tree first, a repeated one once; blank lines are skipped. ``ValueError`` naming the line
    of anything else: a file an auditor relies on is read whole or not at all. (Signatures are the
    verifier's to check.)"""
    found: dict[tuple[int, bytes, bytes], Checkpoint] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            checkpoint = Checkpoint.from_dict(json.loads(line))
        except (ValueError, RecursionError) as error:  # (UnicodeDecodeError and JSONDecodeError included)
            raise ValueError(f"{what}, line {number}: {error if isinstance(error, ValueError) else 'not JSON'}") \
                from None
        found.setdefault((checkpoint.tree_size, checkpoint.root_hash, checkpoint.signature), checkpoint)
    return sorted(found.values(), key=lambda c: (c.tree_size, c.signed_at))
