"""Access tokens: verified locally, without a call per request.

An access token is a JWT issued by the identity service::

    header  {"alg": "EdDSA", "kid": "<key id>", "typ": "JWT"}
    claims  {"iss": "upgestao-identity", "aud": "upgestao", "sub": <user id>,
             "sid": <session id>, "role": <role>, "iat": ..., "exp": iat + 900, "jti": ...}

Only EdDSA (Ed25519) is accepted; ``exp``, ``iat``, ``sub``, ``sid`` and
``role`` are required; 30 s of clock leeway. :class:`JwtAuthenticator` then
checks that the session is not revoked (after the revocation view is
current) and attaches the role's permissions to the :class:`Principal`.

Every refusal is 401 ``invalid_token`` whose detail says expired, invalid or
revoked, and nothing more; when the keys, the role map or the revocation view
cannot be had, the answer is 503.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from werkzeug.wrappers import Request

from ..domain.principal import Principal
from ..entrypoints.http.problems import Problem, service_unavailable, unauthenticated
from ..service_layer.public_keys import KeysUnavailable
from ..service_layer.role_permissions import PermissionsUnavailable
from ..settings import LEEWAY_S
from .authentication import bearer_token

ISSUER = "upgestao-identity"
AUDIENCE = "upgestao"
ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ("exp", "iat", "sub", "sid", "role")

EXPIRED = "The access token has expired."
INVALID = "The access token is invalid."
REVOKED = "The access token has been revoked."


@dataclass(frozen=True)
class AccessClaims:
    subject: str
    session_id: str
    role: str
    expires_at: datetime
    token_id: str | None = None


def rejected(detail: str) -> Problem:
    return unauthenticated(detail, error="invalid_token")


def verify_access_token(
    token: str, key_for: Callable[[str], Ed25519PublicKey | None], leeway_s: int = LEEWAY_S
) -> AccessClaims:
    """The claims of a valid access token; a 401 :class:`Problem` otherwise.

    ``key_for(kid)`` may raise :class:`KeysUnavailable` (answered 503 by the caller).
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise rejected(INVALID) from None
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or not isinstance(kid, str) or not kid:
        raise rejected(INVALID)
    key = key_for(kid)
    if key is None:
        raise rejected(INVALID)
    try:
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER, leeway=leeway_s,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.ExpiredSignatureError:
        raise rejected(EXPIRED) from None
    except jwt.PyJWTError:
        raise rejected(INVALID) from None
    subject, session_id, role = claims["sub"], claims["sid"], claims["role"]
    if not all(isinstance(value, str) and value for value in (subject, session_id, role)):
        raise rejected(INVALID)
    try:
        expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
    except (OverflowError, OSError, ValueError):  # an exp past what a datetime holds (year 9999)
        raise rejected(INVALID) from None
    token_id = claims.get("jti")
    return AccessClaims(
        subject=subject,
        session_id=session_id,
        role=role,
        expires_at=expires_at,
        token_id=token_id if isinstance(token_id, str) else None,
    )


# Why a revocation view is not current (RevocationView.stale_reason).
BROKER_UNREACHABLE = "broker-unreachable"
LOADING = "loading"
STALE_DETAIL = {
    BROKER_UNREACHABLE: "The message broker is unreachable; try again shortly.",
    LOADING: "The gateway is still loading revoked sessions; try again shortly.",
}


class RevocationView(Protocol):
    def wait_current(self, timeout_s: float) -> bool: ...

    def stale_reason(self) -> str: ...

    def is_revoked(self, session_id: str) -> bool: ...


class KeySource(Protocol):
    def key_for(self, kid: str) -> Ed25519PublicKey | None: ...


class PermissionSource(Protocol):
    def of(self, role: str) -> frozenset[str]: ...


class JwtAuthenticator:
    """The gateway's :class:`~upgestao_gateway.access.authentication.Authenticator` for identity's tokens."""

    def __init__(
        self,
        keys: KeySource,
        permissions: PermissionSource,
        revocations: RevocationView,
        caught_up_wait_s: float = 5.0,
    ) -> None:
        self.keys = keys
        self.permissions = permissions
        self.revocations = revocations
        self.caught_up_wait_s = caught_up_wait_s
        # token -> (kid, claims) of signatures already verified: a client sends the same token for
        # up to 15 minutes, so the Ed25519 check (a tenth of this gateway's CPU per request) runs
        # once per token. Expiry, the signing key, revocation and permissions are checked every time.
        self._verified: OrderedDict[str, tuple[str, AccessClaims]] = OrderedDict()
        self.verified_cache_size = 10_000

    def _claims(self, token: str) -> AccessClaims:
        hit = self._verified.get(token)
        if hit is not None:
            kid, claims = hit
            if claims.expires_at.timestamp() + LEEWAY_S < time.time():
                del self._verified[token]
                raise rejected(EXPIRED)
            if self.keys.key_for(kid) is not None:  # the key may have been withdrawn since
                self._verified.move_to_end(token)
                return claims
            del self._verified[token]
        claims = verify_access_token(token, self.keys.key_for)
        self._verified[token] = (jwt.get_unverified_header(token)["kid"], claims)
        if len(self._verified) > self.verified_cache_size:
            self._verified.popitem(last=False)
        return claims

    def authenticate(self, request: Request) -> Principal | None:
        token = bearer_token(request)
        if token is None:
            return None
        try:
            claims = self._claims(token)
        except KeysUnavailable:
            raise service_unavailable("Access tokens cannot be verified now; try again later.") from None
        if not self.revocations.wait_current(self.caught_up_wait_s):
            raise service_unavailable(STALE_DETAIL.get(self.revocations.stale_reason(), STALE_DETAIL[LOADING]))
        if self.revocations.is_revoked(claims.session_id):
            raise rejected(REVOKED)
        try:
            permissions = self.permissions.of(claims.role)
        except PermissionsUnavailable:
            raise service_unavailable("Permissions cannot be checked now; try again later.") from None
        return Principal(
            actor_id=claims.subject,
            role=claims.role,
            session_id=claims.session_id,
            permissions=permissions,
            expires_at=claims.expires_at,
            token=token,
        )

