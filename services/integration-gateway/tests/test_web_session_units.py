"""The web session without a broker: the CSRF token and its check, the origin rule, the cookie
authenticator (bearer first, cookie otherwise), the cookie headers and the session key's settings."""

from __future__ import annotations

import os
import stat
import threading

import pytest
from upgestao_gateway.access.web_session import (
    CSRF_HEADER,
    ENV_COOKIE_SESSION,
    SESSION_COOKIE,
    CookieSessionAuthenticator,
    check_csrf,
    clear_cookie_header,
    csrf_token,
    same_origin,
    set_cookie_header,
)
from upgestao_gateway.domain.principal import Principal
from upgestao_gateway.entrypoints.http.problems import Problem, unauthenticated
from upgestao_gateway.settings import (
    WEB_SESSION_KEY_FILE,
    WEB_SESSION_KEY_VAR,
    load_web_session_settings,
    local_web_session_key,
)
from upgestao_kernel.config import ConfigError
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

KEY = b"k" * 32
SID = "6f1d7a52-2a52-4a0e-9d3c-6f7c0b9e2f10"


def request(method: str = "GET", headers: dict | None = None, cookie: str | None = None) -> Request:
    headers = {"Host": "gateway.test", **(headers or {})}
    if cookie is not None:
        headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
    return Request(EnvironBuilder(method=method, path="/v1/me", headers=headers).get_environ())


def refused(fn, *args) -> Problem:
    with pytest.raises(Problem) as raised:
        fn(*args)
    assert raised.value.status == 403 and raised.value.type.endswith("/csrf")
    return raised.value


# -- the token ------------------------------------------------------------------------------------


def test_the_csrf_token_is_bound_to_the_session_and_the_key():
    token = csrf_token(KEY, SID)
    assert token == csrf_token(KEY, SID) and len(token) == 43
    assert csrf_token(KEY, SID.replace("6", "7")) != token
    assert csrf_token(b"j" * 32, SID) != token


def test_the_right_token_passes_and_every_other_is_refused():
    check_csrf(request("PATCH", {CSRF_HEADER: csrf_token(KEY, SID)}), KEY, SID)
    refused(check_csrf, request("PATCH"), KEY, SID)
    refused(check_csrf, request("PATCH", {CSRF_HEADER: ""}), KEY, SID)
    refused(check_csrf, request("PATCH", {CSRF_HEADER: csrf_token(KEY, "another")}), KEY, SID)
    refused(check_csrf, request("PATCH", {CSRF_HEADER: csrf_token(b"j" * 32, SID)}), KEY, SID)
    refused(check_csrf, request("PATCH", {CSRF_HEADER: "é" * 43}), KEY, SID)
    refused(check_csrf, request("PATCH", {CSRF_HEADER: csrf_token(KEY, SID)}), KEY, None)


@pytest.mark.parametrize("headers, allowed", [
    ({}, True),
    ({"Origin": "http://gateway.test"}, True),
    ({"Origin": "https://gateway.test"}, True),
    ({"Origin": "HTTPS://Gateway.Test"}, True),
    ({"Sec-Fetch-Site": "same-origin"}, True),
    ({"Sec-Fetch-Site": "none"}, True),
    ({"Origin": "https://evil.example"}, False),
    ({"Origin": "https://gateway.test.evil.example"}, False),
    ({"Origin": "https://gateway.test:444"}, False),
    ({"Origin": "https://gateway.test:443"}, True),  # the default port, said or not
    ({"Origin": "http://gateway.test:80"}, True),
    ({"Origin": "http://gateway.test:443"}, False),
    ({"Origin": "null"}, False),
    ({"Origin": "https://gateway.test/path"}, False),
    ({"Origin": "ftp://gateway.test"}, False),
    ({"Sec-Fetch-Site": "cross-site"}, False),
    ({"Sec-Fetch-Site": "same-site"}, False),
    ({"Origin": "https://gateway.test", "Sec-Fetch-Site": "cross-site"}, False),
])
def test_the_origin_rule(headers, allowed):
    assert same_origin(request("POST", headers)) is allowed
    if not allowed:
        refused(check_csrf, request("POST", {**headers, CSRF_HEADER: csrf_token(KEY, SID)}), KEY, SID)


# -- the authenticator ----------------------------------------------------------------------------


class Bearer:
    def __init__(self) -> None:
        self.asked = 0

    def authenticate(self, req):
        self.asked += 1
        return Principal(actor_id="bearer", role="admin", session_id="bearer-session")


def principal_of_token(token: str) -> Principal:
    if token != "good-token":
        raise unauthenticated("The access token is invalid.", error="invalid_token")
    return Principal(actor_id="user-1", role="attendant", session_id=SID, permissions=frozenset({"profile.read"}))


@pytest.fixture
def authenticator() -> CookieSessionAuthenticator:
    return CookieSessionAuthenticator(Bearer(), principal_of_token, lambda: KEY)


def test_an_authorization_header_wins_and_skips_the_csrf_check(authenticator):
    req = request("PATCH", {"Authorization": "Bearer x"}, cookie="good-token")
    assert authenticator.authenticate(req).actor_id == "bearer"
    assert ENV_COOKIE_SESSION not in req.environ


def test_no_cookie_is_no_principal(authenticator):
    assert authenticator.authenticate(request("GET")) is None
    assert authenticator.bearer.asked == 0


def test_the_cookie_is_verified_like_a_bearer_token(authenticator):
    req = request("GET", cookie="good-token")
    assert authenticator.authenticate(req).actor_id == "user-1"
    assert req.environ[ENV_COOKIE_SESSION] is True
    with pytest.raises(Problem) as raised:
        authenticator.authenticate(request("GET", cookie="forged"))
    assert raised.value.status == 401


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_cookie_authenticated_write_needs_the_sessions_csrf_token(authenticator, method):
    refused(authenticator.authenticate, request(method, cookie="good-token"))
    refused(authenticator.authenticate, request(method, {CSRF_HEADER: csrf_token(KEY, "other")}, cookie="good-token"))
    refused(authenticator.authenticate, request(method, {CSRF_HEADER: csrf_token(KEY, SID),
                                                         "Origin": "https://evil.example"}, cookie="good-token"))
    ok = request(method, {CSRF_HEADER: csrf_token(KEY, SID), "Origin": "https://gateway.test"}, cookie="good-token")
    assert authenticator.authenticate(ok).actor_id == "user-1"


def test_the_cookie_headers():
    assert set_cookie_header(SESSION_COOKIE, "t", 900, "/") == \
        "__Host-upg_session=t; Max-Age=900; Path=/; Secure; HttpOnly; SameSite=Strict"
    assert clear_cookie_header("__Secure-upg_refresh", "/app/session") == \
        "__Secure-upg_refresh=; Max-Age=0; Path=/app/session; Secure; HttpOnly; SameSite=Strict"


# -- the key ----------------------------------------------------------------------------------------


def test_the_key_is_required_in_production():
    with pytest.raises(ConfigError) as raised:
        load_web_session_settings({"UPGESTAO_ENV": "production"})
    assert raised.value.variable == WEB_SESSION_KEY_VAR
    given = load_web_session_settings({"UPGESTAO_ENV": "production", WEB_SESSION_KEY_VAR: "s" * 40})
    assert given.key == b"s" * 40


def test_a_short_key_is_refused():
    with pytest.raises(ConfigError) as raised:
        load_web_session_settings({WEB_SESSION_KEY_VAR: "short"})
    assert raised.value.variable == WEB_SESSION_KEY_VAR


def test_the_refresh_cookie_lifetime_is_identitys():
    assert load_web_session_settings({WEB_SESSION_KEY_VAR: "s" * 40}).refresh_max_age_s == 14 * 24 * 3600
    settings = load_web_session_settings({WEB_SESSION_KEY_VAR: "s" * 40, "IDENTITY_REFRESH_TOKEN_TTL_S": "3600"})
    assert settings.refresh_max_age_s == 3600
    with pytest.raises(ConfigError):
        load_web_session_settings({WEB_SESSION_KEY_VAR: "s" * 40, "IDENTITY_REFRESH_TOKEN_TTL_S": "many"})


def test_unset_outside_production_one_key_file_is_shared_by_the_data_dir(tmp_path):
    environ = {"UPGESTAO_ENV": "local", "UPGESTAO_DATA_DIR": str(tmp_path / "data")}
    checked = load_web_session_settings(environ, make_key=False)  # check-config: nothing made
    assert checked.key == b"" and not (tmp_path / "data").exists()
    first = load_web_session_settings(environ).key
    assert len(first) >= 32
    path = tmp_path / "data" / WEB_SESSION_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_web_session_settings(environ).key == first  # another process of the same platform
    other = load_web_session_settings({**environ, "UPGESTAO_DATA_DIR": str(tmp_path / "other")}).key
    assert other != first


def test_concurrent_starts_agree_on_one_key(tmp_path):
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda: keys.append(local_web_session_key(tmp_path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1
    assert sorted(os.listdir(tmp_path)) == [WEB_SESSION_KEY_FILE]  # nothing left aside


def test_an_empty_key_file_is_a_config_error(tmp_path):
    (tmp_path / WEB_SESSION_KEY_FILE).write_text("")
    with pytest.raises(ConfigError) as raised:
        load_web_session_settings({"UPGESTAO_DATA_DIR": str(tmp_path)})
    assert raised.value.variable == WEB_SESSION_KEY_VAR
