"""The privacy centre's web session, attacked end to end through the running gateway (issue 17).

The session lives in HttpOnly cookies the gateway sets (``POST /app/session``); a state change the cookie
authenticates needs the session's ``X-CSRF-Token`` and, when an ``Origin`` is sent, this origin. The
cookies are ``Secure``, so ``requests`` would not send them over the test's plain http: every request
here names its cookies itself (as a browser does on ``https`` or ``http://127.0.0.1``).
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
import requests
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, Api
from e2e_privacy_consent import SEEDED_POLICY
from upgestao_kernel.testing import wait_for

pytestmark = pytest.mark.e2e

SESSION = "__Host-upg_session"
REFRESH = "__Secure-upg_refresh"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@dataclass
class Cookie:
    name: str
    value: str
    attributes: dict[str, str] = field(default_factory=dict)  # lower-cased names; flags map to ""
    raw: str = ""


def set_cookies(response: requests.Response) -> dict[str, Cookie]:
    found = {}
    for raw in response.raw.headers.getlist("Set-Cookie"):
        first, *rest = [part.strip() for part in raw.split(";")]
        name, _, value = first.partition("=")
        attributes = {}
        for part in rest:
            key, _, val = part.partition("=")
            attributes[key.lower()] = val
        found[name] = Cookie(name, value, attributes, raw)
    return found


@dataclass
class Web:
    """One browser's session: its cookies and what the session's JSON said."""

    base: str
    cookies: dict[str, str]
    body: dict

    @property
    def csrf(self) -> str:
        return self.body["csrf_token"]

    @property
    def origin(self) -> str:
        parts = urlsplit(self.base)
        return f"{parts.scheme}://{parts.netloc}"

    def request(self, method: str, path: str, *, cookies: dict[str, str] | None = None, **kwargs) -> requests.Response:
        jar = self.cookies if cookies is None else cookies
        headers = dict(kwargs.pop("headers", {}) or {})
        if jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        return requests.request(method, self.base + path, headers=headers, timeout=30, **kwargs)


def sign_in(base: str, email: str, password: str = PASSWORD, **headers) -> tuple[requests.Response, Web | None]:
    response = requests.post(base + "/app/session", json={"email": email, "password": password}, headers=headers,
                             timeout=30)
    if response.status_code != 200:
        return response, None
    cookies = set_cookies(response)
    return response, Web(base, {name: c.value for name, c in cookies.items()}, response.json())


def problem(response: requests.Response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith("/" + slug), body
    return body


@pytest.fixture(scope="module")
def api(platform) -> Api:
    return Api(platform.url)


@pytest.fixture(scope="module")
def admin(api) -> str:
    return api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]


@pytest.fixture
def attendant(api, admin) -> dict:
    user, _ = api.create_staff(admin, "attendant")
    return user


@pytest.fixture
def web(platform, attendant) -> Web:
    response, session = sign_in(platform.url, attendant["email"])
    assert response.status_code == 200, response.text
    return session


def locale_of(web: Web) -> str:
    me = web.request("GET", "/v1/me")
    assert me.status_code == 200, me.text
    return me.json()["locale"]


# -- signing in --------------------------------------------------------------------------------------


def test_sign_in_sets_httponly_secure_strict_cookies_and_answers_nothing_personal(platform, api, attendant):
    response, web = sign_in(platform.url, attendant["email"])
    assert response.status_code == 200, response.text
    cookies = set_cookies(response)
    assert set(cookies) == {SESSION, REFRESH}
    session, refresh = cookies[SESSION], cookies[REFRESH]
    assert session.raw == f"{SESSION}={session.value}; Max-Age=900; Path=/; Secure; HttpOnly; SameSite=Strict"
    assert session.value.count(".") == 2  # identity's access token (a JWT)
    max_age = int(refresh.attributes["max-age"])
    assert max_age == 14 * 24 * 3600  # identity's refresh lifetime (IDENTITY_REFRESH_TOKEN_TTL_S' default)
    assert refresh.raw == (f"{REFRESH}={refresh.value}; Max-Age={max_age}; Path=/app/session; Secure; HttpOnly; "
                           "SameSite=Strict")

    body = response.json()
    assert set(body) == {"user", "csrf_token", "expires_at"}
    assert set(body["user"]) == {"id", "role", "permissions"}
    assert body["user"]["id"] == attendant["id"] and body["user"]["role"] == "attendant"
    assert "profile.read" in body["user"]["permissions"]
    assert len(body["csrf_token"]) == 43
    for personal in (attendant["email"], attendant["full_name"], session.value, refresh.value):
        assert personal not in response.text  # no e-mail, no name, no token in what the script reads
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Security-Policy"] == CSP

    again = web.request("GET", "/app/session")
    assert again.status_code == 200 and again.json() == body
    assert again.headers["Cache-Control"] == "no-store"
    # the cookie is a bearer token's equal on the API
    assert locale_of(web) in ("pt-BR", "en")


def test_a_wrong_password_is_identitys_401_and_sets_no_cookie(platform, attendant):
    response, _ = sign_in(platform.url, attendant["email"], "not the password at all")
    assert response.status_code == 401, response.text
    assert "Set-Cookie" not in response.headers


def test_signing_in_from_a_foreign_origin_is_refused(platform, attendant):
    response, _ = sign_in(platform.url, attendant["email"], Origin="https://evil.example")
    problem(response, 403, "csrf")
    assert "Set-Cookie" not in response.headers


def test_without_a_valid_cookie_there_is_no_session(platform, web):
    problem(web.request("GET", "/app/session", cookies={}), 401, "unauthenticated")
    tampered = {SESSION: web.cookies[SESSION][:-4] + "AAAA"}
    assert web.request("GET", "/app/session", cookies=tampered).status_code == 401
    assert web.request("GET", "/v1/me", cookies=tampered).status_code == 401


# -- CSRF ----------------------------------------------------------------------------------------------


def test_a_cookie_authenticated_write_without_the_csrf_token_is_refused_and_changes_nothing(web):
    before = locale_of(web)
    target = "en" if before == "pt-BR" else "pt-BR"
    problem(web.request("PATCH", "/v1/me", json={"locale": target}), 403, "csrf")
    problem(web.request("PATCH", "/v1/me", json={"locale": target}, headers={"X-CSRF-Token": "x" * 43}), 403, "csrf")
    problem(web.request("PATCH", "/v1/me", json={"locale": target},
                        headers={"X-CSRF-Token": web.csrf, "Origin": "https://evil.example"}), 403, "csrf")
    problem(web.request("PATCH", "/v1/me", json={"locale": target},
                        headers={"X-CSRF-Token": web.csrf, "Origin": "null"}), 403, "csrf")
    problem(web.request("PATCH", "/v1/me", json={"locale": target},
                        headers={"X-CSRF-Token": web.csrf, "Sec-Fetch-Site": "cross-site"}), 403, "csrf")
    assert locale_of(web) == before

    done = web.request("PATCH", "/v1/me", json={"locale": target},
                       headers={"X-CSRF-Token": web.csrf, "Origin": web.origin, "Sec-Fetch-Site": "same-origin"})
    assert done.status_code == 200, done.text
    assert locale_of(web) == target


def test_the_csrf_token_of_another_session_is_refused(platform, web, attendant):
    _, other = sign_in(platform.url, attendant["email"])  # the same person, another session
    assert other.csrf != web.csrf
    before = locale_of(web)
    target = "en" if before == "pt-BR" else "pt-BR"
    problem(web.request("PATCH", "/v1/me", json={"locale": target}, headers={"X-CSRF-Token": other.csrf}),
            403, "csrf")
    assert locale_of(web) == before


def test_a_bearer_authenticated_write_needs_no_csrf_token(api, web, attendant):
    tokens = api.tokens(attendant["email"])
    before = locale_of(web)
    target = "en" if before == "pt-BR" else "pt-BR"
    # the Authorization header wins over the cookie: no CSRF check for it
    response = web.request("PATCH", "/v1/me", json={"locale": target},
                           headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 200, response.text
    assert locale_of(web) == target


def test_public_routes_need_neither_cookie_nor_csrf_token(platform, web):
    choice = {"purposes": {"essential": True, "analytics": True, "personalisation": False},
              "policy_version": SEEDED_POLICY}
    anonymous = requests.put(platform.url + "/v1/privacy/consents/visitor", json=choice, timeout=30)
    assert anonymous.status_code == 200, anonymous.text
    # a visitor who also holds a session cookie: the public route does not look at it
    with_cookie = web.request("PUT", "/v1/privacy/consents/visitor", json=choice)
    assert with_cookie.status_code == 200, with_cookie.text


# -- refresh and sign-out -----------------------------------------------------------------------------


def test_refresh_rotates_both_cookies_and_a_reused_refresh_cookie_ends_the_session(web):
    rotated = web.request("POST", "/app/session/refresh", cookies={REFRESH: web.cookies[REFRESH]})
    assert rotated.status_code == 200, rotated.text
    cookies = set_cookies(rotated)
    assert set(cookies) == {SESSION, REFRESH}
    assert cookies[REFRESH].value != web.cookies[REFRESH]
    assert cookies[REFRESH].attributes["path"] == "/app/session"
    assert rotated.json()["csrf_token"] == web.csrf  # bound to the session, which is the same
    fresh = {name: cookie.value for name, cookie in cookies.items()}
    assert web.request("GET", "/app/session", cookies=fresh).status_code == 200

    reused = web.request("POST", "/app/session/refresh", cookies={REFRESH: web.cookies[REFRESH]})
    problem(reused, 401, "invalid-token")
    cleared = set_cookies(reused)
    assert cleared[SESSION].attributes["max-age"] == "0" and cleared[REFRESH].attributes["max-age"] == "0"
    # identity's reuse detection revoked the whole session: the newest pair is refused too
    assert web.request("POST", "/app/session/refresh", cookies={REFRESH: fresh[REFRESH]}).status_code == 401
    wait_for(lambda: web.request("GET", "/app/session", cookies=fresh).status_code == 401, timeout=10)


def test_refresh_without_a_cookie_or_from_a_foreign_origin_is_refused(web):
    problem(web.request("POST", "/app/session/refresh", cookies={}), 401, "unauthenticated")
    problem(web.request("POST", "/app/session/refresh", cookies={REFRESH: "junk"}), 401, "unauthenticated")
    problem(web.request("POST", "/app/session/refresh", cookies={REFRESH: web.cookies[REFRESH]},
                        headers={"Origin": "https://evil.example"}), 403, "csrf")


def test_sign_out_is_csrf_checked_revokes_the_session_and_clears_both_cookies(web):
    problem(web.request("DELETE", "/app/session"), 403, "csrf")
    assert web.request("GET", "/app/session").status_code == 200  # still signed in

    out = web.request("DELETE", "/app/session", headers={"X-CSRF-Token": web.csrf})
    assert out.status_code == 204, out.text
    cleared = set_cookies(out)
    assert cleared[SESSION].raw == f"{SESSION}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Strict"
    assert cleared[REFRESH].raw == f"{REFRESH}=; Max-Age=0; Path=/app/session; Secure; HttpOnly; SameSite=Strict"
    # the old cookies are worth nothing now, at once
    problem(web.request("GET", "/app/session"), 401, "unauthenticated")
    assert web.request("GET", "/v1/me").status_code == 401
    assert web.request("POST", "/app/session/refresh", cookies={REFRESH: web.cookies[REFRESH]}).status_code == 401


# -- the pages and files -------------------------------------------------------------------------------


def raw_get(base: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` exactly as written (``requests`` would resolve dot segments before sending)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("path", [
    "/app/static/../../../../etc/passwd",
    "/app/static/%2e%2e/%2e%2e/settings.py",
    "/app/static/js/..%2f..%2f..%2fsettings.py",
    "/app/static/..%5csettings.py",
    "/app/static/.hidden",
    "/app/static/nothing.js",
])
def test_a_static_path_out_of_the_directory_is_a_404_problem(platform, path):
    status, headers, body = raw_get(platform.url, path)
    assert status == 404, body
    assert headers["content-type"].startswith("application/problem+json")
    assert b"root:" not in body and b"import" not in body


@pytest.mark.parametrize("path, content_type, cache", [
    ("/app/", "text/html; charset=utf-8", "no-store"),
    ("/app/dpo/requests/3f1c2d4e-0000-4000-8000-000000000000", "text/html; charset=utf-8", "no-store"),
    ("/app/static/js/app.js", "text/javascript; charset=utf-8", "no-cache"),
    ("/app/static/app.css", "text/css; charset=utf-8", "no-cache"),
])
def test_pages_and_files_carry_the_security_headers(platform, path, content_type, cache):
    response = requests.get(platform.url + path, timeout=10)
    assert response.status_code == 200
    headers = response.headers
    assert headers["Content-Type"] == content_type
    assert headers["Cache-Control"] == cache
    assert headers["Content-Security-Policy"] == CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["X-Frame-Options"] == "DENY"
    assert "camera=()" in headers["Permissions-Policy"] and "geolocation=()" in headers["Permissions-Policy"]
    assert "Strict-Transport-Security" not in headers  # not production
    if cache == "no-cache":
        etag = headers["ETag"]
        assert requests.get(platform.url + path, headers={"If-None-Match": etag}, timeout=10).status_code == 304
