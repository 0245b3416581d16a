"""Standard Webhooks 1.0 signatures (https://www.standardwebhooks.com/, the scheme Svix signs with).

A secret is ``whsec_`` + base64 of 32 random bytes; the key is the decoded bytes after the prefix. A message
is signed as ``v1,`` + base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")). During a secret
rotation both the new and the previous secret sign, and ``webhook-signature`` carries both signatures
separated by a space: a receiver holding either secret verifies the message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"
USER_AGENT = "UpGestao-Webhooks/1"


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + base64 of 32 random bytes from the OS's CSPRNG."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_bytes(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret; ValueError (never quoting the secret) when it is not one."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    encoded = secret[len(SECRET_PREFIX):]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if len(key) < 24 or len(key) > 64:
        raise ValueError("a webhook secret's key is 24 to 64 bytes")
    return key


def _check_parts(msg_id: str, timestamp: int) -> None:
    if not msg_id or "." in msg_id or any(c.isspace() for c in msg_id):
        raise ValueError("a webhook-id is a non-empty token without dots or spaces")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("a webhook-timestamp is a non-negative integer of Unix seconds")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`` with the key of ``secret``."""
    _check_parts(msg_id, timestamp)
    signed = msg_id.encode() + b"." + str(timestamp).encode("ascii") + b"." + bytes(body)
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per secret (the current first), space-separated."""
    if isinstance(secrets, str) or not secrets:
        raise ValueError("sign with a list of at least one secret")
    unique = list(dict.fromkeys(secrets))
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in unique)


def webhook_headers(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """Every header of one delivery attempt (the same ``webhook-id`` on every retry of one message)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def verify(secret: str, msg_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """Whether one of the ``v1`` signatures of ``header`` is ours for this message (constant-time compare).

    The platform itself never receives webhooks; this is for tests and tools (e.g. a replay check)."""
    expected = sign(secret, msg_id, timestamp, body).encode("ascii")
    found = False
    for candidate in header.split(" "):
        if candidate.startswith(SIGNATURE_VERSION + ","):
            found |= hmac.compare_digest(expected, candidate.encode("ascii", "replace"))
    return found
