"""The web session: identity's tokens in HttpOnly cookies, and the CSRF check of the writes they authenticate.

The privacy centre's script never holds a token (an XSS could not steal one): ``POST /app/session`` signs
in through identity's login and sets

* ``__Host-upg_session=<access token>; HttpOnly; Secure; SameSite=Strict; Path=/`` (Max-Age: the token's
  lifetime), which :class:`CookieSessionAuthenticator` accepts on every route exactly as the same token
  in ``Authorization: Bearer`` (signature, expiry, revocation, permissions) when a request has no
  ``Authorization`` header: a bearer request is never looked at for cookies;
* ``__Secure-upg_refresh=<refresh token>; HttpOnly; Secure; SameSite=Strict; Path=/app/session``, sent
  to the session routes only, where ``POST /app/session/refresh`` spends it (identity's rotation and
  reuse detection).

A cookie is sent by the browser whoever made the page that asks, so a state change (POST, PUT, PATCH,
DELETE) authenticated by the cookie must also prove it comes from this origin's script:

* ``X-CSRF-Token`` must equal :func:`csrf_token` of the session: HMAC-SHA256, under the gateway's web
  session key, of the session id the token carries (``sid``). The script learns it from the session's
  JSON answer (same-origin only); it is bound to one session (another session's is refused), survives
  token refreshes (the session id does not change) and needs no server-side storage, so any gateway
  replica checks it;
* an ``Origin`` header, when present, must be this gateway's own (``Host``), and ``Sec-Fetch-Site``, when
  present, ``same-origin`` (or ``none``: typed by the user).

Anything else is a 403 ``csrf`` problem, before the route runs: nothing changes and nothing is read.
``SameSite=Strict`` already keeps the cookies off cross-site requests in current browsers; the token is
the defence that does not depend on the browser (older ones, a sibling subdomain that is "same-site").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from urllib.parse import urlsplit

from werkzeug.wrappers import Request

from ..domain.principal import Principal
from ..entrypoints.http.problems import Problem
from .authentication import Authenticator

SESSION_COOKIE = "__Host-upg_session"
REFRESH_COOKIE = "__Secure-upg_refresh"
REFRESH_COOKIE_PATH = "/app/session"
CSRF_HEADER = "X-CSRF-Token"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_COOKIE_TOKEN = 8192
_CSRF_CONTEXT = b"upgestao.web-session.csrf\x00"
# the environ key saying a request was authenticated by the session cookie (not a bearer token)
ENV_COOKIE_SESSION = "upgestao.cookie_session"


def csrf_token(key: bytes, session_id: str) -> str:
    """The CSRF token of session ``session_id``: base64url(HMAC-SHA256(key, context || sid)), 43 characters."""
    digest = hmac.new(key, _CSRF_CONTEXT + session_id.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def csrf_refused(detail: str) -> Problem:
    return Problem("csrf", detail, status=403)


def same_origin(request: Request) -> bool:
    """Whether the request may come from this origin's own pages: no ``Origin`` header, or one naming the
    gateway's own host (``Host``), and no ``Sec-Fetch-Site`` other than ``same-origin``/``none``."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.strip().lower() not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc or parts.path:
        return False
    host = request.headers.get("Host", "")
    return _without_default_port(parts.netloc, parts.scheme) == _without_default_port(host.strip(), parts.scheme)


_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def _without_default_port(netloc: str, scheme: str) -> str:
    netloc = netloc.lower()
    return netloc.removesuffix(_DEFAULT_PORTS[scheme])


def check_origin(request: Request) -> None:
    """403 ``csrf`` unless :func:`same_origin`."""
    if not same_origin(request):
        raise csrf_refused("This request does not come from the privacy centre's own origin.")


def check_csrf(request: Request, key: bytes, session_id: str | None) -> None:
    """The CSRF check of a cookie-authenticated state change (see the module docstring); 403 ``csrf``."""
    check_origin(request)
    given = request.headers.get(CSRF_HEADER)
    if not given or not session_id:
        raise csrf_refused(f"A state change signed in by the session cookie needs the {CSRF_HEADER} header "
                           "of the session.")
    if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), csrf_token(key, session_id).encode()):
        raise csrf_refused(f"The {CSRF_HEADER} header does not belong to this session.")


def session_cookie(request: Request) -> str | None:
    """The access token of the session cookie, when there is one (an over-long one counts as none)."""
    value = request.cookies.get(SESSION_COOKIE)
    return value if value and len(value) <= MAX_COOKIE_TOKEN else None


def refresh_cookie(request: Request) -> str | None:
    value = request.cookies.get(REFRESH_COOKIE)
    return value if value and len(value) <= MAX_COOKIE_TOKEN else None


def authenticated_by_cookie(request: Request) -> bool:
    return bool(request.environ.get(ENV_COOKIE_SESSION))


class CookieSessionAuthenticator:
    """Bearer credentials as ``bearer`` checks them; else the session cookie, verified by
    ``principal_of_token`` (the JWT verifier, exactly as for a bearer token), with the CSRF check of a
    state change."""

    def __init__(self, bearer: Authenticator, principal_of_token: Callable[[str], Principal],
                 key: Callable[[], bytes]) -> None:
        self.bearer = bearer
        self.principal_of_token = principal_of_token
        self._key = key

    @property
    def key(self) -> bytes:
        return self._key()

    def authenticate(self, request: Request) -> Principal | None:
        if "Authorization" in request.headers:
            return self.bearer.authenticate(request)
        token = session_cookie(request)
        if token is None:
            return None
        principal = self.principal_of_token(token)
        if request.method in STATE_CHANGING:
            check_csrf(request, self.key, principal.session_id)
        request.environ[ENV_COOKIE_SESSION] = True
        return principal

    def session_of(self, request: Request) -> Principal | None:
        """The principal of the session cookie alone (None without one; 401 problem for a bad one)."""
        token = session_cookie(request)
        return None if token is None else self.principal_of_token(token)


def set_cookie_header(name: str, value: str, max_age: int, path: str) -> str:
    return f"{name}={value}; Max-Age={max(0, int(max_age))}; Path={path}; Secure; HttpOnly; SameSite=Strict"


def clear_cookie_header(name: str, path: str) -> str:
    return f"{name}=; Max-Age=0; Path={path}; Secure; HttpOnly; SameSite=Strict"
