"""Access tokens for tests: a fixed test signing key, its JWKS, and the context data of a caller acting as
a given user (what the gateway sends: the token is the proof, actor_id/actor_role only ride along).

A service under test pins the test key (``service_env`` sets ``UPGESTAO_IDENTITY_JWKS``); identity also
trusts its own signing keys. Never used outside tests: the key is public, in this file.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .access_tokens import AUDIENCE, ISSUER

_SEED = hashlib.sha256(b"upgestao test token key (public: tests only)").digest()
_KEY = Ed25519PrivateKey.from_private_bytes(_SEED)
_PUBLIC = _KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
TEST_KID = "test-" + hashlib.sha256(_PUBLIC).hexdigest()[:11]


def _b64url(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def token_jwks() -> dict:
    return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": _b64url(_PUBLIC), "kid": TEST_KID, "alg": "EdDSA",
                      "use": "sig"}]}


def token_jwks_json() -> str:
    return json.dumps(token_jwks())


def signed_token(actor_id: str, role: str, *, ttl_s: int = 900, session_id: str | None = None,
               **claims: Any) -> str:
    """An access token for ``actor_id`` with ``role``, signed with the test key."""
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": actor_id, "sid": session_id or str(uuid.uuid4()),
            "role": role, "iat": now, "nbf": now, "exp": now + ttl_s, "jti": str(uuid.uuid4()), **claims}
    return jwt.encode(body, _KEY, algorithm="EdDSA", headers={"kid": TEST_KID})


def acting_as(actor_id: str, role: str, **context: Any) -> dict:
    """Context data of a call made on behalf of ``actor_id`` (as the gateway makes it)."""
    return {"access_token": signed_token(actor_id, role), "actor_id": actor_id, "actor_role": role, **context}
