"""The privacy centre's cookie session, fuzzed through the running gateway (issue 17's routes under
``/app/session`` are not in the OpenAPI document, so the API fuzz never reaches them).

An attacker controls every cookie, header and body a browser sends. Whatever they send:

- the gateway answers below 500, and every refusal is problem+json;
- nothing is granted without the session's own cookie: a forged, truncated or altered access or refresh
  cookie never reads a session, never refreshes one, and never sets a session cookie;
- a cookie-authenticated write goes through only with the session's exact ``X-CSRF-Token`` and, when an
  ``Origin`` is sent, our own; anything else is 403 ``csrf`` and changes nothing (the profile's locale is
  checked afterwards);
- nothing the client sent comes back in the answer (no reflection of a cookie or a header).

Bounded: about 150 requests in all (``WEB_FUZZ_EXAMPLES`` per property). Sign-in bodies are fuzzed only
where the schema refuses them (a well-formed wrong login would spend 127.0.0.1's login budget, which the
other tests share).
"""

from __future__ import annotations

import json
import os
import string

import pytest
import requests
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_web_session_e2e import REFRESH, SESSION, Web, set_cookies, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EXAMPLES = int(os.environ.get("WEB_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
COOKIE_SAFE = string.ascii_letters + string.digits + "-._~+/=%!#$&'*^`|"


def _mutations(real: str) -> st.SearchStrategy[str]:
    """Values near the real one: truncated, extended, one character changed, its segments shuffled."""
    def changed(data: tuple[int, str]) -> str:
        at, char = data
        at %= max(1, len(real))
        return real[:at] + char + real[at + 1:] if real[at:at + 1] != char else real[:at] + real[at + 1:]

    return st.one_of(
        st.integers(0, max(0, len(real) - 1)).map(lambda n: real[:n]),
        st.text(COOKIE_SAFE, min_size=1, max_size=40).map(lambda tail: real + tail),
        st.tuples(st.integers(0, 10_000), st.sampled_from(COOKIE_SAFE)).map(changed),
        st.just(".".join(reversed(real.split(".")))).filter(lambda v: v != real),
        st.text(COOKIE_SAFE, min_size=0, max_size=300),
        st.text(COOKIE_SAFE, min_size=5000, max_size=9000),
    )


def _assert_refusal_is_a_problem(response: requests.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert response.headers.get("Content-Type", "").startswith("application/problem+json"), response.headers
        body = response.json()
        assert {"type", "title", "status"} <= set(body) and body["status"] == response.status_code, body
        assert "Traceback" not in response.text


def _sets_a_session(response: requests.Response) -> bool:
    cookies = set_cookies(response)
    return any(cookies[name].value for name in (SESSION, REFRESH) if name in cookies)


def _not_reflected(response: requests.Response, *sent: str) -> None:
    text = response.text
    for value in sent:
        if value and len(value) >= 8:
            assert value not in text, f"the answer reflects what the client sent: {value[:40]!r}"


@pytest.fixture(scope="module")
def victim(platform) -> Web:
    api = Api(platform.url)
    admin = api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    user, _ = api.create_staff(admin, "attendant")
    response, web = sign_in(platform.url, user["email"])
    assert response.status_code == 200, response.text
    return web


def _locale(web: Web) -> str:
    me = web.request("GET", "/v1/me")
    assert me.status_code == 200, me.text
    return me.json()["locale"]


@given(data=st.data())
@FUZZ
def test_a_forged_or_altered_cookie_never_reads_or_refreshes_a_session(victim, data):
    name = data.draw(st.sampled_from([SESSION, REFRESH]), label="cookie")
    value = data.draw(_mutations(victim.cookies[name]), label="value")
    assume(value != victim.cookies[name])
    extra = data.draw(st.dictionaries(st.text(string.ascii_letters + "_-", min_size=1, max_size=12),
                                      st.text(COOKIE_SAFE, max_size=30), max_size=3), label="other cookies")
    jar = {**extra, name: value}
    method, path = data.draw(st.sampled_from([("GET", "/app/session"), ("POST", "/app/session/refresh"),
                                              ("DELETE", "/app/session"), ("GET", "/v1/me")]), label="route")
    headers = {"Origin": victim.origin, "Sec-Fetch-Site": "same-origin"}
    if data.draw(st.booleans(), label="with the real csrf token"):
        headers["X-CSRF-Token"] = victim.csrf
    response = victim.request(method, path, cookies=jar, headers=headers)
    _assert_refusal_is_a_problem(response)
    # 431: the headers over the server's limit (a cookie of thousands of characters), refused before anything
    assert response.status_code in (401, 403, 429, 431), (method, path, response.status_code, response.text[:300])
    assert not _sets_a_session(response)
    _not_reflected(response, value)


@given(data=st.data())
@FUZZ
def test_a_cookie_authenticated_write_needs_the_exact_csrf_token_and_our_origin(victim, data):
    before = _locale(victim)
    csrf = data.draw(st.one_of(st.none(), _mutations(victim.csrf), st.just(victim.csrf)), label="X-CSRF-Token")
    origin = data.draw(st.one_of(st.none(), st.just(victim.origin), st.sampled_from(
        ["null", "https://evil.example.com", victim.origin + ".evil.example.com",
         victim.origin.replace("http", "https"), victim.origin + "/", "file://", ""]),
        st.text(COOKIE_SAFE, max_size=40)), label="Origin")
    fetch_site = data.draw(st.sampled_from([None, "same-origin", "same-site", "cross-site", "none", "bogus"]),
                           label="Sec-Fetch-Site")
    headers = {}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    if origin is not None:
        headers["Origin"] = origin
    if fetch_site is not None:
        headers["Sec-Fetch-Site"] = fetch_site
    wanted = "en" if before == "pt-BR" else "pt-BR"
    response = victim.request("PATCH", "/v1/me", json={"locale": wanted}, headers=headers)
    _assert_refusal_is_a_problem(response)
    # our origin: no Origin, or our host and port (the scheme is not compared: behind a TLS proxy the
    # gateway serves http to the proxy while the page's origin is https)
    ours = (None, victim.origin, victim.origin.replace("http://", "https://", 1))
    honest = csrf == victim.csrf and origin in ours and fetch_site in (None, "same-origin", "none")
    if not honest:
        too_large = response.status_code == 431 and response.json()["type"].endswith("/header-fields-too-large")
        assert too_large or (response.status_code == 403 and response.json()["type"].endswith("/csrf")), \
            (headers, response.status_code, response.text[:300])
        assert _locale(victim) == before
    else:
        assert response.status_code in (200, 202), (headers, response.status_code, response.text[:300])
        assert _locale(victim) == wanted
    _not_reflected(response, csrf or "", origin or "")


def _well_formed_login(body: object) -> bool:
    return (isinstance(body, dict) and isinstance(body.get("email"), str) and isinstance(body.get("password"), str)
            and 1 <= len(body["email"]) <= 254 and 1 <= len(body["password"]) <= 1024)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10)


@given(data=st.data())
@FUZZ
def test_a_malformed_sign_in_is_refused_without_a_cookie(platform, data):
    body = data.draw(st.one_of(
        JSON,
        st.fixed_dictionaries({"email": JSON, "password": JSON}),
        st.fixed_dictionaries({"email": st.text(max_size=300), "password": st.just("")}),
        st.fixed_dictionaries({"email": st.just(""), "password": st.text(max_size=40)}),
        st.fixed_dictionaries({"email": st.text(min_size=255, max_size=400), "password": st.text(min_size=1)}),
    ), label="body")
    assume(not _well_formed_login(body))
    raw = data.draw(st.one_of(st.just(json.dumps(body).encode()), st.binary(max_size=200)), label="raw body")
    content_type = data.draw(st.sampled_from(["application/json", "application/json; charset=latin-1", "text/plain",
                                              "application/x-www-form-urlencoded", None]), label="Content-Type")
    if content_type == "application/json" and raw != json.dumps(body).encode():
        try:
            assume(not _well_formed_login(json.loads(raw)))
        except (ValueError, UnicodeDecodeError):
            pass
    headers = {"Origin": platform.url.rstrip("/")}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = requests.post(platform.url + "/app/session", data=raw, headers=headers, timeout=30)
    _assert_refusal_is_a_problem(response)
    assert response.status_code in (400, 403, 413, 415, 422, 429), (raw[:200], content_type, response.status_code,
                                                                     response.text[:300])
    assert not _sets_a_session(response)
