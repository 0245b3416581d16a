"""The web session's routes: sign in, read, refresh and end the privacy centre's cookie session.

Identity does the signing in, the rotation and the revocation, through the same RPCs as ``/v1/auth/...``
(same throttling, lockout and audit: the login is audited by identity); these routes only move the
tokens into HttpOnly cookies (:mod:`upgestao_gateway.access.web_session`) and answer what the page's
script may know::

    {"user": {"id", "role", "permissions": [...]}, "csrf_token", "expires_at"}

no token, no e-mail, no name: nothing personal (the profile is ``GET /v1/me``, audited there).

* ``POST /app/session`` ``{email, password}``: ``identity.login``; sets both cookies.
* ``GET /app/session``: the session of the cookie (401 without a valid one).
* ``POST /app/session/refresh``: spends the refresh cookie (``identity.refresh``: a spent one revokes the
  session) and sets both cookies again; a refused one clears them. No ``X-CSRF-Token`` is asked (the page
  may have lost it with an expired access cookie): the refresh cookie is ``SameSite=Strict`` and sent to
  ``/app/session`` only, ``Origin`` must be ours, and a forced refresh only rotates the victim's own
  cookies.
* ``DELETE /app/session``: cookie-authenticated and CSRF-checked like any write; ``identity.logout``;
  clears both cookies (204).

``POST /app/session`` and the refresh also refuse a foreign ``Origin`` (403 ``csrf``): a login CSRF would
sign the victim into the attacker's account.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from marshmallow import Schema, fields
from upgestao_kernel.errors import ServiceError
from werkzeug.wrappers import Response

from ...access.web_session import (
    REFRESH_COOKIE,
    REFRESH_COOKIE_PATH,
    SESSION_COOKIE,
    CookieSessionAuthenticator,
    authenticated_by_cookie,
    check_origin,
    clear_cookie_header,
    csrf_token,
    refresh_cookie,
    set_cookie_header,
)
from ...domain.principal import Principal
from ..http.problems import Problem, service_unavailable, unauthenticated
from ..http.request import GatewayRequest
from ..http.responses import json_response, problem_from_exception, problem_response
from ..http.routing import route
from ..identity.schemas import REFRESH_TOKEN_PATTERN, LoginSchema

WEB = ("web session",)
_REFRESH_TOKEN = re.compile(REFRESH_TOKEN_PATTERN)
NO_SESSION = "No web session: sign in."


class WebUserSchema(Schema):
    id = fields.String(required=True)
    role = fields.String(required=True)
    permissions = fields.List(fields.String(), required=True,
                              metadata={"description": "The role's permissions (what the pages may offer)."})


class WebSessionSchema(Schema):
    user = fields.Nested(WebUserSchema, required=True)
    csrf_token = fields.String(required=True, metadata={
        "description": "Send it as X-CSRF-Token with every POST, PUT, PATCH and DELETE the session cookie "
                       "authenticates (bound to this session; it does not change when the session is refreshed)."})
    expires_at = fields.String(required=True, metadata={
        "format": "date-time", "description": "When the access cookie expires (refresh before, or on a 401)."})


def _clear_cookies(response: Response) -> Response:
    response.headers.add("Set-Cookie", clear_cookie_header(SESSION_COOKIE, "/"))
    response.headers.add("Set-Cookie", clear_cookie_header(REFRESH_COOKIE, REFRESH_COOKIE_PATH))
    return response


class WebSessionRoutes:
    """Mixed into the gateway service (``self.rpc``, ``self.access``)."""

    def _web(self) -> CookieSessionAuthenticator:
        web = getattr(self.access, "web", None)
        if web is None:  # a gateway without identity's tokens (tests plugging another authenticator)
            raise service_unavailable("Web sessions are not available on this gateway.")
        return web

    def _session_body(self, principal: Principal) -> dict:
        expires_at = principal.expires_at or datetime.now(UTC)
        return {
            "user": {"id": principal.actor_id, "role": principal.role, "permissions": sorted(principal.permissions)},
            "csrf_token": csrf_token(self._web().key, principal.session_id or ""),
            "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
        }

    def _signed_in(self, tokens: dict) -> Response:
        """The session answer for identity's fresh ``tokens``, setting both cookies."""
        web = self._web()
        access_token, refresh_token = str(tokens["access_token"]), str(tokens["refresh_token"])
        principal = web.principal_of_token(access_token)
        response = json_response(self._session_body(principal), 200, {"Cache-Control": "no-store"})
        response.headers.add("Set-Cookie", set_cookie_header(SESSION_COOKIE, access_token,
                                                             int(tokens.get("expires_in") or 0), "/"))
        response.headers.add("Set-Cookie", set_cookie_header(REFRESH_COOKIE, refresh_token,
                                                             self.access.web_settings.refresh_max_age_s,
                                                             REFRESH_COOKIE_PATH))
        return response

    @route("POST", "/app/session", personal_data=True, body=LoginSchema, response=WebSessionSchema,
           errors=(401, 403, 429, 503), tags=WEB,
           summary="Sign in to the privacy centre: identity's login; the tokens go into HttpOnly cookies "
                   "(__Host-upg_session, __Secure-upg_refresh), the answer holds the CSRF token")
    def web_sign_in(self, request: GatewayRequest, body: dict) -> Response:
        check_origin(request)
        self._web()
        return self._signed_in(self.rpc.identity.login(body["email"], body["password"]))

    @route("GET", "/app/session", personal_data=False, response=WebSessionSchema, errors=(401, 503), tags=WEB,
           summary="The privacy centre's session of the cookie (401 without a valid one)")
    def web_session(self, request: GatewayRequest) -> dict:
        principal = self._web().session_of(request)
        if principal is None:
            raise unauthenticated(NO_SESSION)
        return self._session_body(principal)

    @route("POST", "/app/session/refresh", personal_data=False, response=WebSessionSchema, errors=(401, 403, 503),
           tags=WEB, summary="Rotate the session's cookies with the refresh cookie (identity's refresh; a spent "
                             "refresh token ends the session); a refused one clears both cookies")
    def web_refresh(self, request: GatewayRequest) -> Response:
        check_origin(request)
        self._web()
        token = refresh_cookie(request)
        if token is None:
            raise unauthenticated(NO_SESSION)
        try:
            if not _REFRESH_TOKEN.fullmatch(token):
                raise unauthenticated("The refresh token is invalid.", error="invalid_token")
            tokens = self.rpc.identity.refresh(token)
        except (Problem, ServiceError) as exc:
            problem = problem_from_exception(exc)
            response = problem_response(problem, request)
            return _clear_cookies(response) if problem.status == 401 else response
        return self._signed_in(tokens)

    @route("DELETE", "/app/session", personal_data=False, status=204, auth="required", permission="sessions.delete",
           errors=(503,), tags=WEB,
           summary="Sign out of the privacy centre: ends the session (identity's logout) and clears both cookies "
                   "(cookie-authenticated, X-CSRF-Token required)")
    def web_sign_out(self, request: GatewayRequest) -> Response:
        if not authenticated_by_cookie(request):
            raise unauthenticated(NO_SESSION)
        session_id = request.principal.session_id
        self.rpc.identity.logout(session_id)
        self.access.revoked_here([session_id])
        return _clear_cookies(Response(status=204, headers={"Cache-Control": "no-store"}))
