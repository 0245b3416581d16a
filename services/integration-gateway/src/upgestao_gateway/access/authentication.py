"""Authentication: the gateway's slot for it, and the bearer credential every authenticator reads.

A route declares ``auth="required"`` and the permission it needs
(``permission="users.read"``); before its worker starts, the gateway asks the
service's ``authenticator`` for the :class:`~upgestao_gateway.domain.principal.Principal`
behind the request:

* ``authenticate(request)`` returns the principal, or ``None`` when the request
  carries no credentials it can accept (answered 401 with
  ``WWW-Authenticate: Bearer``);
* it may raise :class:`~upgestao_gateway.entrypoints.http.problems.Problem` itself (e.g.
  ``unauthenticated(error="invalid_token")`` for an expired token).

It runs in the request's green thread, before any worker, so it may do green
I/O but has no nameko dependencies. The permission check happens later, in
the worker, so that a denial is audited (see :mod:`upgestao_gateway.entrypoints.http.guards`).

``GatewayService.authenticator`` is either an :class:`Authenticator` or an
:class:`AuthenticatorFactory` whose ``bind(access)`` builds the container's
authenticator (the JWT verifier, :class:`upgestao_gateway.entrypoints.dependencies.JwtAuthentication`,
needs per-container state). :class:`NoAuthenticator` accepts nobody.
"""

from __future__ import annotations

import re
from typing import Any, Protocol, runtime_checkable

from werkzeug.wrappers import Request

from ..domain.principal import Principal
from ..entrypoints.http.problems import unauthenticated


@runtime_checkable
class Authenticator(Protocol):
    def authenticate(self, request: Request) -> Principal | None: ...


@runtime_checkable
class AuthenticatorFactory(Protocol):
    """Declared on the service class; builds the authenticator of one container."""

    def bind(self, access: Any) -> Authenticator: ...


class NoAuthenticator:
    """No verifier configured: nobody can authenticate."""

    def authenticate(self, request: Request) -> Principal | None:
        return None


# RFC 6750 section 2.1: credentials = "Bearer" 1*SP b64token
_BEARER = re.compile(r"^Bearer +([A-Za-z0-9\-._~+/]+=*) *$", re.IGNORECASE)
MAX_TOKEN_LENGTH = 8192


def bearer_token(request: Request) -> str | None:
    """The bearer token of the ``Authorization`` header; ``None`` when there is none.

    A header that is present but not a well-formed bearer credential is
    answered 401 ``invalid_request`` (never silently ignored).
    """
    header = request.headers.get("Authorization")
    if header is None:
        return None
    match = _BEARER.match(header)
    if match is None or len(match.group(1)) > MAX_TOKEN_LENGTH:
        raise unauthenticated("The Authorization header must be 'Bearer <token>'.", error="invalid_request")
    return match.group(1)
