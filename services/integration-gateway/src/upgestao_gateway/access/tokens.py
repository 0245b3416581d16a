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

from collections.abc import Callable
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from upgestao_kernel import access_tokens as kernel_tokens
from upgestao_kernel.access_tokens import AccessClaims
from werkzeug.wrappers import Request

from ..domain.principal import Principal
from ..entrypoints.http.problems import Problem, service_unavailable, unauthenticated
from ..service_layer.public_keys import KeysUnavailable
from ..service_layer.role_permissions import PermissionsUnavailable
from ..settings import LEEWAY_S
from .authentication import bearer_token

ISSUER, AUDIENCE, ALGORITHM = kernel_tokens.ISSUER, kernel_tokens.AUDIENCE, kernel_tokens.ALGORITHM
REQUIRED_CLAIMS = kernel_tokens.REQUIRED_CLAIMS

EXPIRED = "The access token has expired."
INVALID = "The access token is invalid."
REVOKED = "The access token has been revoked."


def rejected(detail: str) -> Problem:
    return unauthenticated(detail, error="invalid_token")


_DETAIL = {kernel_tokens.EXPIRED: EXPIRED, kernel_tokens.INVALID: INVALID}


def verify_access_token(
    token: str, key_for: Callable[[str], Ed25519PublicKey | None], leeway_s: int = LEEWAY_S
) -> AccessClaims:
    """The claims of a valid access token (the kernel's check, the one every service makes); a 401
    :class:`Problem` otherwise. ``key_for(kid)`` may raise :class:`KeysUnavailable` (answered 503)."""
    try:
        return kernel_tokens.verify_access_token(token, key_for, leeway_s)
    except kernel_tokens.InvalidAccessToken as exc:
        raise rejected(_DETAIL[exc.reason]) from None


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
        # the kernel's verifier (the one every service uses) keeps the signatures it checked: a client sends
        # the same token for its whole lifetime, so the Ed25519 check (a tenth of this gateway's CPU per
        # request) runs once per token. Expiry, the signing key, revocation and permissions: every time.
        self._verifier = kernel_tokens.TokenVerifier(keys.key_for)

    def _claims(self, token: str) -> AccessClaims:
        try:
            return self._verifier.verify(token)
        except kernel_tokens.InvalidAccessToken as exc:
            raise rejected(_DETAIL[exc.reason]) from None

    def authenticate(self, request: Request) -> Principal | None:
        token = bearer_token(request)
        if token is None:
            return None
        return self.principal_of(token)

    def principal_of(self, token: str) -> Principal:
        """The principal of access token ``token`` (from a bearer header or the web session's cookie), or a
        401/503 :class:`Problem`."""
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

