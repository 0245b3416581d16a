"""Who is asking, from proof: identity's access token, verified by every service that is asked.

The gateway verifies the bearer token of each HTTP request, then sends the token itself with every call the
request makes (context data ``access_token``). A service takes the actor from that token, verified here
with identity's public keys, never from a header a caller wrote: anyone holding broker credentials can
write headers, nobody but identity can sign a token. ::

    header  {"alg": "EdDSA", "kid": "<key id>", "typ": "JWT"}
    claims  {"iss": "upgestao-identity", "aud": "upgestao", "sub": <user id>, "sid": <session id>,
             "role": <role>, "iat": ..., "nbf": ..., "exp": ..., "jti": ...}

Only EdDSA (Ed25519); ``exp``, ``iat``, ``sub``, ``sid`` and ``role`` required; 30 s of clock leeway. A
token claiming the role ``system`` is refused: ``system`` is work no person asked for, done by a service
itself, never something a token (or a header) can say.

:class:`TokenVerifier` keeps the signatures it verified (a client sends one token for up to its lifetime,
so the Ed25519 check runs once per token per process); expiry and the signing key are checked every time.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ISSUER = "upgestao-identity"
AUDIENCE = "upgestao"
ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ("exp", "iat", "sub", "sid", "role")
LEEWAY_S = 30
SYSTEM_ROLE = "system"

EXPIRED = "expired"
INVALID = "invalid"


class InvalidAccessToken(Exception):
    """The token proves nothing: ``reason`` is :data:`EXPIRED` or :data:`INVALID` (nothing more is said)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AccessClaims:
    subject: str
    session_id: str
    role: str
    expires_at: datetime
    token_id: str | None = None


def verify_access_token(
    token: str, key_for: Callable[[str], Ed25519PublicKey | None], leeway_s: int = LEEWAY_S
) -> AccessClaims:
    """The claims of a valid access token; :class:`InvalidAccessToken` otherwise.

    ``key_for(kid)`` may raise (the keys cannot be had now): that propagates, it is not the token's fault.
    """
    if not isinstance(token, str) or not token:
        raise InvalidAccessToken(INVALID)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidAccessToken(INVALID) from None
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or not isinstance(kid, str) or not kid:
        raise InvalidAccessToken(INVALID)
    key = key_for(kid)
    if key is None:
        raise InvalidAccessToken(INVALID)
    try:
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER, leeway=leeway_s,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidAccessToken(EXPIRED) from None
    except jwt.PyJWTError:
        raise InvalidAccessToken(INVALID) from None
    subject, session_id, role = claims["sub"], claims["sid"], claims["role"]
    if not all(isinstance(value, str) and value for value in (subject, session_id, role)):
        raise InvalidAccessToken(INVALID)
    if role == SYSTEM_ROLE or subject == SYSTEM_ROLE:
        raise InvalidAccessToken(INVALID)
    try:
        expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
    except (OverflowError, OSError, ValueError):  # an exp past what a datetime holds (year 9999)
        raise InvalidAccessToken(INVALID) from None
    token_id = claims.get("jti")
    return AccessClaims(subject=subject, session_id=session_id, role=role, expires_at=expires_at,
                        token_id=token_id if isinstance(token_id, str) else None)


class TokenVerifier:
    """Verifies tokens with ``key_for`` (pinned keys, a service's own keys, or a fetching cache), keeping
    the claims of the last ``cache_size`` signatures it checked."""

    def __init__(self, key_for: Callable[[str], Ed25519PublicKey | None], cache_size: int = 10_000,
                 clock: Callable[[], float] | None = None) -> None:
        self.key_for = key_for
        self.cache_size = cache_size
        self._clock = clock or (lambda: time.time())
        self._verified: OrderedDict[str, tuple[str, AccessClaims]] = OrderedDict()

    def verify(self, token: str) -> AccessClaims:
        hit = self._verified.get(token)
        if hit is not None:
            kid, claims = hit
            if claims.expires_at.timestamp() + LEEWAY_S < self._clock():
                self._verified.pop(token, None)
                raise InvalidAccessToken(EXPIRED)
            if self.key_for(kid) is not None:  # the key may have been withdrawn since
                self._verified.move_to_end(token)
                return claims
            self._verified.pop(token, None)
        claims = verify_access_token(token, self.key_for)
        self._verified[token] = (jwt.get_unverified_header(token)["kid"], claims)
        if len(self._verified) > self.cache_size:
            self._verified.popitem(last=False)
        return claims
