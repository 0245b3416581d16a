"""The gateway's own settings beyond the kernel's: its access control, from the environment.

    GATEWAY_ACCESS_TOKEN_TTL_S       lifetime of identity's access tokens (default 900 s)
    GATEWAY_ACCESS_EVENTS_MAX_AGE    retention of the access-events stream (default 1h)
    GATEWAY_ACCESS_EVENTS_MAX_BYTES  size bound of that stream (default 100 MB)
    GATEWAY_JWT_PUBLIC_KEYS          a JWKS document; when unset the keys come from identity

Each is validated once, at start; a wrong value is a ``ConfigError`` naming it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from upgestao_kernel.config import ConfigError
from upgestao_kernel.config import int_setting as _int

from .domain.jwks import InvalidJwks, parse_jwks

TOKEN_TTL_VAR = "GATEWAY_ACCESS_TOKEN_TTL_S"
MAX_AGE_VAR = "GATEWAY_ACCESS_EVENTS_MAX_AGE"
MAX_BYTES_VAR = "GATEWAY_ACCESS_EVENTS_MAX_BYTES"
PUBLIC_KEYS_VAR = "GATEWAY_JWT_PUBLIC_KEYS"

DEFAULT_TOKEN_TTL_S = 900
DEFAULT_MAX_AGE = "1h"
DEFAULT_MAX_BYTES = 100_000_000
# A token is accepted up to LEEWAY_S after its exp; a revocation is kept
# RETENTION_MARGIN_S beyond the token lifetime (leeway plus clock skew).
LEEWAY_S = 30
RETENTION_MARGIN_S = 60

# RabbitMQ's x-max-age units (Y and M as RabbitMQ counts them: 365 and 30 days).
_AGE = re.compile(r"^(?P<n>[1-9][0-9]{0,6})(?P<unit>[YMDhms])$")
_UNIT_S = {"Y": 365 * 86400, "M": 30 * 86400, "D": 86400, "h": 3600, "m": 60, "s": 1}


@dataclass(frozen=True)
class AccessSettings:
    access_token_ttl_s: int = DEFAULT_TOKEN_TTL_S
    events_max_age: str = DEFAULT_MAX_AGE
    events_max_bytes: int = DEFAULT_MAX_BYTES
    static_keys: Mapping[str, Ed25519PublicKey] | None = field(default=None, repr=False)

    @property
    def revocation_retention_s(self) -> int:
        """How long a revoked session is remembered (and how far back the stream is replayed)."""
        return self.access_token_ttl_s + RETENTION_MARGIN_S


def max_age_seconds(value: str) -> int:
    match = _AGE.match(value)
    if match is None:
        raise ValueError(value)
    return int(match["n"]) * _UNIT_S[match["unit"]]


def load_access_settings(environ: Mapping[str, str] | None = None) -> AccessSettings:
    environ = os.environ if environ is None else environ
    ttl = _int(environ, TOKEN_TTL_VAR, DEFAULT_TOKEN_TTL_S, 30, 86_400)
    max_bytes = _int(environ, MAX_BYTES_VAR, DEFAULT_MAX_BYTES, 1_000_000, 100_000_000_000)

    max_age = environ.get(MAX_AGE_VAR) or DEFAULT_MAX_AGE
    try:
        age_s = max_age_seconds(max_age)
    except ValueError:
        problem = f"expected a number and a unit (Y, M, D, h, m, s) such as 1h, got {max_age!r}"
        raise ConfigError(MAX_AGE_VAR, problem) from None
    if age_s < ttl + RETENTION_MARGIN_S:
        raise ConfigError(MAX_AGE_VAR, f"must keep at least the token lifetime plus {RETENTION_MARGIN_S}s "
                                       f"({ttl + RETENTION_MARGIN_S}s), got {max_age} ({age_s}s)")

    static_keys = None
    raw_keys = environ.get(PUBLIC_KEYS_VAR)
    if raw_keys:
        try:
            static_keys = parse_jwks(json.loads(raw_keys))
        except json.JSONDecodeError:
            raise ConfigError(PUBLIC_KEYS_VAR, "is not valid JSON (expected a JWKS document)") from None
        except InvalidJwks as exc:
            raise ConfigError(PUBLIC_KEYS_VAR, str(exc)) from None
    return AccessSettings(ttl, max_age, max_bytes, static_keys)
