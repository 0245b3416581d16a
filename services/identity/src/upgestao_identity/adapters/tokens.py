"""Access tokens: JWTs signed with Ed25519, verified by the gateway locally.

Signing keys come from ``IDENTITY_JWT_SIGNING_KEYS`` (comma-separated
base64 32-byte Ed25519 seeds, the first signs, the others still verify) or,
outside production, from a key file generated once under
``<data dir>/keys/jwt-signing.key``. The public halves are served as a JWKS
document (``identity.public_keys()``), so the gateway verifies every request
without calling identity.

Refresh tokens are opaque: ``<session id>.<32 random bytes, base64url>``;
only their SHA-256 is recorded.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from upgestao_kernel.config import ConfigError, Settings
from upgestao_kernel.events import new_id
from upgestao_kernel.keys import decode_key, local_key_file

SIGNING_KEYS_VAR = "IDENTITY_JWT_SIGNING_KEYS"
ISSUER = "upgestao-identity"
AUDIENCE = "upgestao"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    kid: str
    public_raw: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        private = Ed25519PrivateKey.from_private_bytes(seed)
        public_raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return cls(private, hashlib.sha256(public_raw).hexdigest()[:16], public_raw)

    def jwk(self) -> dict:
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(self.public_raw), "kid": self.kid,
                "alg": "EdDSA", "use": "sig"}


def load_signing_keys(settings: Settings, environ: Mapping[str, str]) -> list[SigningKey]:
    raw = (environ.get(SIGNING_KEYS_VAR) or "").strip()
    if raw:
        seeds = [decode_key(SIGNING_KEYS_VAR, part) for part in raw.split(",") if part.strip()]
    elif settings.production:
        raise ConfigError(SIGNING_KEYS_VAR, "required in production")
    else:
        seeds = [local_key_file(settings, SIGNING_KEYS_VAR, "jwt-signing.key")]
    if not seeds:
        raise ConfigError(SIGNING_KEYS_VAR, "no key given")
    return [SigningKey.from_seed(seed) for seed in seeds]


class TokenIssuer:
    def __init__(self, keys: list[SigningKey], access_ttl_s: int) -> None:
        self.keys = keys
        self.access_ttl_s = access_ttl_s

    def access_token(self, *, user_id: str, session_id: str, role: str, now: datetime,
                     ttl_s: int | None = None) -> str:
        """A signed access token; ``ttl_s`` shortens it (an API key's expires with the key)."""
        iat = int(now.timestamp())
        ttl = self.access_ttl_s if ttl_s is None else min(int(ttl_s), self.access_ttl_s)
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": user_id, "sid": session_id, "role": role,
                  "iat": iat, "nbf": iat, "exp": iat + ttl, "jti": new_id()}
        key = self.keys[0]
        return jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid})

    def jwks(self) -> dict:
        return {"keys": [key.jwk() for key in self.keys]}


def new_refresh_token(session_id: str) -> str:
    return f"{session_id}.{secrets.token_urlsafe(32)}"


def refresh_token_session(token: str) -> str | None:
    session_id, dot, secret = (token or "").partition(".")
    return session_id if dot and secret and len(session_id) == 36 else None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def in_seconds(now: datetime, seconds: int) -> str:
    return (now + timedelta(seconds=seconds)).isoformat()
