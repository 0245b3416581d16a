"""Identity's public keys as a JWKS document: parsed and checked, nothing fetched.

Access tokens are signed with Ed25519; identity publishes the public halves
as a JWKS document (``identity.public_keys()``, or pinned in ``UPGESTAO_IDENTITY_JWKS``)::

    {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "<base64url, 32 bytes>",
               "kid": "<id>", "alg": "EdDSA", "use": "sig"}]}

Anything else (another key type, a private key, a repeated ``kid``, too many
keys) is refused with :class:`InvalidJwks` saying what is wrong: a service
never verifies a token with a key it did not understand.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .config import ConfigError

MAX_KEYS = 32
JWKS_VAR = "UPGESTAO_IDENTITY_JWKS"  # identity's public keys, pinned (every service that verifies tokens)


class InvalidJwks(ValueError):
    """A JWKS document that is not a set of Ed25519 signing keys."""


def _b64url_decode(value: str) -> bytes:
    if not isinstance(value, str) or "=" in value:
        raise InvalidJwks("x must be base64url without padding")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise InvalidJwks("x is not base64url") from None


def parse_jwks(document: Any) -> dict[str, Ed25519PublicKey]:
    """``{kid: public key}`` of a JWKS document; :class:`InvalidJwks` says what is wrong."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise InvalidJwks('expected a JWKS document: {"keys": [...]}')
    entries = document["keys"]
    if not entries:
        raise InvalidJwks("the key set is empty")
    if len(entries) > MAX_KEYS:
        raise InvalidJwks(f"more than {MAX_KEYS} keys")
    keys: dict[str, Ed25519PublicKey] = {}
    for index, entry in enumerate(entries):
        where = f"keys[{index}]"
        if not isinstance(entry, Mapping):
            raise InvalidJwks(f"{where} is not an object")
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 128:
            raise InvalidJwks(f"{where}: kid must be a non-empty string")
        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
            raise InvalidJwks(f"{where} ({kid}): only kty OKP with crv Ed25519 is accepted")
        if entry.get("alg", "EdDSA") != "EdDSA" or entry.get("use", "sig") != "sig":
            raise InvalidJwks(f"{where} ({kid}): alg must be EdDSA and use sig")
        if "d" in entry:
            raise InvalidJwks(f"{where} ({kid}) holds a private key: publish the public half only")
        raw = _b64url_decode(entry.get("x"))
        if len(raw) != 32:
            raise InvalidJwks(f"{where} ({kid}): x must encode 32 bytes, got {len(raw)}")
        if kid in keys:
            raise InvalidJwks(f"{where}: kid {kid} appears twice")
        keys[kid] = Ed25519PublicKey.from_public_bytes(raw)
    return keys


def pinned_jwks(environ: Mapping[str, str], *, production: bool) -> dict[str, Ed25519PublicKey] | None:
    """Identity's public keys from ``UPGESTAO_IDENTITY_JWKS`` (JSON, or a file path); ``None`` when unset
    outside production; :class:`ConfigError` when wrong, or unset in production."""
    raw = (environ.get(JWKS_VAR) or "").strip()
    if not raw:
        if production:
            raise ConfigError(JWKS_VAR, "required in production: identity's public keys (the JWKS document "
                              "identity.public_keys answers), pinned from a Secret")
        return None
    if not raw.startswith("{"):
        try:
            raw = Path(raw).read_text()
        except OSError as exc:
            raise ConfigError(JWKS_VAR, f"neither a JWKS document nor a readable file: {exc.strerror}") from None
    try:
        return parse_jwks(json.loads(raw))
    except (ValueError, InvalidJwks) as exc:
        raise ConfigError(JWKS_VAR, f"not a valid JWKS document: {exc}") from None
