"""The access-control pieces without a broker: settings, keys, role map,
revocations, token verification and the authenticator."""

from __future__ import annotations

import json
import time

import eventlet
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from upgestao_gateway.access.stream import AccessEventsStream
from upgestao_gateway.access.tokens import EXPIRED, INVALID, REVOKED, JwtAuthenticator, verify_access_token
from upgestao_gateway.definition import DEFINITION
from upgestao_gateway.domain.jwks import InvalidJwks, parse_jwks
from upgestao_gateway.domain.revocations import RevocationList
from upgestao_gateway.entrypoints.dependencies import AccessControl
from upgestao_gateway.entrypoints.http.problems import Problem
from upgestao_gateway.service_layer.public_keys import KeysUnavailable, PublicKeys
from upgestao_gateway.service_layer.role_permissions import PermissionsUnavailable, RolePermissions
from upgestao_gateway.settings import load_access_settings
from upgestao_kernel.config import ConfigError, load_settings
from upgestao_kernel.limits import MAX_ACCESS_TOKEN_TTL_S
from upgestao_kernel.testing import wait_for
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def bearer(token: str) -> Request:
    return Request(EnvironBuilder(path="/", headers={"Authorization": f"Bearer {token}"}).get_environ())


# -- settings ---------------------------------------------------------------------------


def test_access_settings_defaults():
    settings = load_access_settings({})
    assert (settings.events_max_age, settings.events_max_bytes) == ("2h", 100_000_000)
    assert settings.revocation_retention_s == MAX_ACCESS_TOKEN_TTL_S + 60 == 3660
    assert settings.static_keys is None


@pytest.mark.parametrize("variable, value, message", [
    ("GATEWAY_ACCESS_TOKEN_TTL_S", "900", "no longer read"),
    ("GATEWAY_ACCESS_EVENTS_MAX_AGE", "1 hour", "such as 1h"),
    ("GATEWAY_ACCESS_EVENTS_MAX_AGE", "0h", "such as 1h"),
    ("GATEWAY_ACCESS_EVENTS_MAX_AGE", "1h", r"at least the longest token lifetime plus 60s \(3660s\)"),
    ("GATEWAY_ACCESS_EVENTS_MAX_BYTES", "1000", "between 1000000 and"),
    ("UPGESTAO_IDENTITY_JWKS", "{not json", "not a valid JWKS document"),
    ("UPGESTAO_IDENTITY_JWKS", '{"keys": []}', "empty"),
    ("UPGESTAO_IDENTITY_JWKS", '{"keys": [{"kty": "RSA", "kid": "a", "n": "x", "e": "AQAB"}]}', "Ed25519"),
    ("UPGESTAO_IDENTITY_JWKS", "/nonexistent/jwks.json", "neither a JWKS document nor a readable file"),
    ("GATEWAY_JWT_PUBLIC_KEYS", '{"keys": []}', "renamed UPGESTAO_IDENTITY_JWKS"),
])
def test_bad_access_settings_name_the_variable(variable, value, message):
    with pytest.raises(ConfigError, match=message) as raised:
        load_access_settings({variable: value})
    assert raised.value.variable == variable


def test_the_stream_keeps_at_least_the_longest_token_lifetime():
    assert load_access_settings({"GATEWAY_ACCESS_EVENTS_MAX_AGE": "62m"}).events_max_age == "62m"
    with pytest.raises(ConfigError, match="3660s"):
        load_access_settings({"GATEWAY_ACCESS_EVENTS_MAX_AGE": "30m"})


def test_static_public_keys_come_from_the_environment(issuer):
    kid = issuer.new_key()
    settings = load_access_settings({"UPGESTAO_IDENTITY_JWKS": json.dumps(issuer.jwks(kid))})
    assert set(settings.static_keys) == {kid}


def test_production_pins_identitys_keys(issuer, tmp_path):
    """In production the keys never come from an RPC any consumer of rpc-identity could answer."""
    with pytest.raises(ConfigError, match="required in production") as raised:
        load_access_settings({"UPGESTAO_ENV": "production"})
    assert raised.value.variable == "UPGESTAO_IDENTITY_JWKS"
    kid = issuer.new_key()
    pinned = tmp_path / "jwks.json"  # a mounted Secret: the file's path
    pinned.write_text(json.dumps(issuer.jwks(kid)))
    assert set(load_access_settings({"UPGESTAO_ENV": "production",
                                     "UPGESTAO_IDENTITY_JWKS": str(pinned)}).static_keys) == {kid}


def test_the_service_definition_validates_the_access_settings(monkeypatch):
    monkeypatch.setenv("GATEWAY_ACCESS_EVENTS_MAX_AGE", "10m")
    with pytest.raises(ConfigError) as raised:
        DEFINITION.nameko_config(load_settings("gateway", {"UPGESTAO_ENV": "test"}))
    assert raised.value.variable == "GATEWAY_ACCESS_EVENTS_MAX_AGE"


# -- keys -------------------------------------------------------------------------------


@pytest.mark.parametrize("change, message", [
    ({"crv": "Ed448"}, "Ed25519"),
    ({"alg": "RS256"}, "alg must be EdDSA"),
    ({"use": "enc"}, "use sig"),
    ({"x": "AAAA"}, "32 bytes"),
    ({"x": "not base64!"}, "base64url"),
    ({"kid": ""}, "kid"),
    ({"d": "private"}, "private key"),
])
def test_jwks_entries_must_be_ed25519_signing_keys(issuer, change, message):
    kid = issuer.new_key()
    with pytest.raises(InvalidJwks, match=message):
        parse_jwks({"keys": [{**issuer.jwk(kid), **change}]})


def test_public_keys_are_fetched_at_first_need_and_kept(issuer):
    kid = issuer.new_key()
    fetched = []
    keys = PublicKeys(lambda: fetched.append(1) or issuer.jwks(kid), refetch_interval_s=5.0, clock=Clock())
    assert fetched == []
    assert keys.key_for(kid) is not None
    assert keys.key_for(kid) is not None
    assert len(fetched) == 1


def test_an_unknown_kid_refetches_at_most_once_per_interval(issuer):
    old, new = issuer.new_key(), issuer.new_key()
    published = [old]
    clock = Clock()
    keys = PublicKeys(lambda: issuer.jwks(*published), refetch_interval_s=5.0, clock=clock)
    assert keys.key_for(old) is not None
    published.append(new)
    clock.now += 1
    assert keys.key_for(new) is None  # fetched a second ago: not again yet
    assert keys.key_for("made-up") is None
    assert keys.fetches == 1
    clock.now += 5
    assert keys.key_for(new) is not None
    assert keys.key_for("made-up") is None
    assert keys.fetches == 2


def test_keys_that_cannot_be_fetched_are_unavailable(issuer):
    kid = issuer.new_key()
    answers = [RuntimeError("identity down"), {"keys": "nonsense"}, issuer.jwks(kid), RuntimeError("down again")]
    clock = Clock()

    def fetch():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    keys = PublicKeys(fetch, refetch_interval_s=5.0, clock=clock)
    with pytest.raises(KeysUnavailable):
        keys.key_for(kid)
    with pytest.raises(KeysUnavailable):  # no retry within the interval
        keys.key_for(kid)
    clock.now += 5
    with pytest.raises(KeysUnavailable):  # an invalid document is not a key set
        keys.key_for(kid)
    clock.now += 5
    assert keys.key_for(kid) is not None
    clock.now += 5
    with pytest.raises(KeysUnavailable):  # unknown kid and identity down: cannot tell
        keys.key_for("rotated")
    assert keys.key_for(kid) is not None  # known keys keep working


def test_static_keys_are_never_fetched(issuer):
    kid = issuer.new_key()
    keys = PublicKeys(lambda: pytest.fail("fetched"), static=parse_jwks(issuer.jwks(kid)))
    assert keys.key_for(kid) is not None
    assert keys.key_for("other") is None


# -- role permissions ---------------------------------------------------------------------


class RoleSource:
    def __init__(self, roles: dict) -> None:
        self.roles = roles
        self.calls = 0
        self.fail = False

    def __call__(self):
        self.calls += 1
        if self.fail:
            raise RuntimeError("identity down")
        return {"roles": {role: list(permissions) for role, permissions in self.roles.items()}}


def test_role_permissions_are_fetched_once_and_unknown_roles_have_none():
    source = RoleSource({"admin": ["users.read"], "attendant": ["profile.read"]})
    permissions = RolePermissions(source, eventlet.spawn, clock=Clock())
    assert permissions.of("admin") == {"users.read"}
    assert permissions.of("attendant") == {"profile.read"}
    assert permissions.of("visitor") == frozenset()
    assert source.calls == 1


def test_an_old_role_map_is_refreshed_in_the_background():
    source = RoleSource({"admin": ["users.read"]})
    clock = Clock()
    permissions = RolePermissions(source, eventlet.spawn, max_age_s=60, clock=clock)
    assert permissions.of("admin") == {"users.read"}
    source.roles["admin"] = ["users.read", "users.update"]
    clock.now += 61
    assert permissions.of("admin") == {"users.read"}  # served from the cache meanwhile
    eventlet.sleep(0.01)
    assert permissions.of("admin") == {"users.read", "users.update"}
    assert source.calls == 2


def test_a_changed_role_map_is_waited_for():
    source = RoleSource({"attendant": ["profile.read", "users.read"]})
    permissions = RolePermissions(source, eventlet.spawn, clock=Clock())
    assert "users.read" in permissions.of("attendant")
    source.roles["attendant"] = ["profile.read"]
    permissions.invalidate()
    assert permissions.of("attendant") == {"profile.read"}


def test_a_role_map_that_cannot_be_fetched():
    source = RoleSource({"admin": ["users.read"]})
    source.fail = True
    clock = Clock()
    permissions = RolePermissions(source, eventlet.spawn, retry_s=5, clock=clock)
    with pytest.raises(PermissionsUnavailable):
        permissions.of("admin")
    with pytest.raises(PermissionsUnavailable):
        permissions.of("admin")
    assert source.calls == 1  # not asked again before retry_s
    source.fail = False
    clock.now += 5
    assert permissions.of("admin") == {"users.read"}
    source.fail = True
    permissions.invalidate()
    eventlet.sleep(0.01)
    assert permissions.of("admin") == {"users.read"}  # identity down: the cached map serves


def test_a_change_before_the_first_fetch_does_not_start_one():
    source = RoleSource({"admin": ["users.read"]})
    permissions = RolePermissions(source, eventlet.spawn, clock=Clock())
    permissions.invalidate()
    eventlet.sleep(0.01)
    assert source.calls == 0


# -- revocations --------------------------------------------------------------------------


def test_revoked_sessions_are_forgotten_once_their_tokens_expired():
    clock = Clock(10_000.0)
    revocations = RevocationList(retention_s=960, clock=clock)
    assert revocations.revoke("s-1")
    assert revocations.revoke("s-2", revoked_at=clock.now - 900)
    assert not revocations.revoke("s-3", revoked_at=clock.now - 961)  # its tokens are long expired
    assert revocations.is_revoked("s-1") and revocations.is_revoked("s-2")
    assert not revocations.is_revoked("s-3")
    clock.now += 60
    assert not revocations.is_revoked("s-2")
    assert revocations.is_revoked("s-1")
    assert len(revocations) == 1
    clock.now += 900
    assert not revocations.is_revoked("s-1")
    assert len(revocations) == 0


def test_a_session_revoked_twice_is_kept_for_the_later_revocation():
    clock = Clock(10_000.0)
    revocations = RevocationList(retention_s=960, clock=clock)
    revocations.revoke("s-1", revoked_at=clock.now - 900)
    revocations.revoke("s-1")
    clock.now += 100
    assert revocations.is_revoked("s-1")


# -- token verification -------------------------------------------------------------------


@pytest.fixture
def kid(issuer) -> str:
    return issuer.new_key()


def verify(issuer, token):
    return verify_access_token(token, lambda k: issuer.keys[k].public_key() if k in issuer.keys else None)


def test_a_valid_token_gives_its_claims(issuer, kid):
    claims = issuer.claims(sub="user-9", sid="sess-9", role="admin")
    verified = verify(issuer, issuer.token(kid, claims))
    assert (verified.subject, verified.session_id, verified.role) == ("user-9", "sess-9", "admin")
    assert verified.expires_at.timestamp() == claims["exp"]
    assert verified.token_id == claims["jti"]


def test_a_token_within_the_leeway_is_accepted(issuer, kid):
    assert verify(issuer, issuer.token(kid, issuer.claims(iat=int(time.time()) - 920)))


def rejection(issuer, token) -> str:
    with pytest.raises(Problem) as raised:
        verify(issuer, token)
    assert raised.value.status == 401
    assert raised.value.headers["WWW-Authenticate"] == 'Bearer realm="upgestao", error="invalid_token"'
    return raised.value.detail


def test_an_expired_token_says_so(issuer, kid):
    assert rejection(issuer, issuer.token(kid, issuer.claims(iat=int(time.time()) - 1000))) == EXPIRED


@pytest.mark.parametrize("overrides", [
    {"sid": None}, {"role": None}, {"sub": None}, {"exp": None}, {"iat": None},
    {"aud": "someone-else"}, {"aud": None}, {"iss": "somebody"}, {"iss": None},
    {"iat": int(time.time()) + 3600}, {"sub": 42}, {"role": ""},
])
def test_tokens_with_wrong_claims_are_invalid(issuer, kid, overrides):
    assert rejection(issuer, issuer.token(kid, **overrides)) == INVALID


def test_tokens_not_signed_by_identity_are_invalid(issuer, kid):
    claims = issuer.claims()
    public_raw = issuer.keys[kid].public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    forged = [
        issuer.token(kid, claims, signing_key=Ed25519PrivateKey.generate()),  # another key, the right kid
        jwt.encode(claims, public_raw, algorithm="HS256", headers={"kid": kid}),  # algorithm confusion
        jwt.encode(claims, None, algorithm="none", headers={"kid": kid}),
        issuer.token("unknown-kid", claims, signing_key=issuer.keys[kid]),
        jwt.encode(claims, issuer.keys[kid], algorithm="EdDSA"),  # no kid
        "not-a-jwt", "a.b.c", issuer.token(kid, claims)[:-4] + "AAAA",
    ]
    for token in forged:
        assert rejection(issuer, token) == INVALID, token


# -- the authenticator ----------------------------------------------------------------------


class View:
    def __init__(self, current: bool = True, revoked: tuple[str, ...] = (), reason: str = "loading") -> None:
        self.current = current
        self.revoked = set(revoked)
        self.reason = reason

    def wait_current(self, timeout_s: float) -> bool:
        return self.current

    def stale_reason(self) -> str:
        return self.reason

    def is_revoked(self, session_id: str) -> bool:
        return session_id in self.revoked


class Keys:
    def __init__(self, issuer, available: bool = True) -> None:
        self.issuer = issuer
        self.available = available

    def key_for(self, kid):
        if not self.available:
            raise KeysUnavailable("down")
        return self.issuer.keys[kid].public_key() if kid in self.issuer.keys else None


class Permissions:
    def __init__(self, roles: dict | None) -> None:
        self.roles = roles

    def of(self, role):
        if self.roles is None:
            raise PermissionsUnavailable("down")
        return frozenset(self.roles.get(role, ()))


def authenticator(issuer, *, view=None, keys=None, roles=()) -> JwtAuthenticator:
    roles = {"attendant": ["profile.read"]} if roles == () else roles
    return JwtAuthenticator(keys or Keys(issuer), Permissions(roles), view or View(), caught_up_wait_s=0.01)


def test_the_authenticator_builds_the_principal(issuer, kid):
    claims = issuer.claims(sub="user-1", sid="sess-1", role="attendant")
    principal = authenticator(issuer).authenticate(bearer(issuer.token(kid, claims)))
    assert (principal.actor_id, principal.role, principal.session_id) == ("user-1", "attendant", "sess-1")
    assert principal.permissions == {"profile.read"} and principal.can("profile.read")
    assert principal.expires_at.timestamp() == claims["exp"]


def test_no_bearer_token_is_no_principal(issuer):
    request = Request(EnvironBuilder(path="/").get_environ())
    assert authenticator(issuer).authenticate(request) is None


def test_a_revoked_session_is_refused(issuer, kid):
    token = issuer.token(kid, issuer.claims(sid="sess-revoked"))
    with pytest.raises(Problem) as raised:
        authenticator(issuer, view=View(revoked=("sess-revoked",))).authenticate(bearer(token))
    assert (raised.value.status, raised.value.detail) == (401, REVOKED)


class RevocationView(View):
    """The authenticator's view over a real :class:`RevocationList`."""

    def __init__(self, revocations: RevocationList) -> None:
        super().__init__()
        self.revocations = revocations

    def is_revoked(self, session_id: str) -> bool:
        return self.revocations.is_revoked(session_id)


def test_a_revoked_token_living_an_hour_stays_revoked_after_sixteen_minutes(issuer, kid):
    """Issue 11, finding 10: the gateway remembered a revocation for its own GATEWAY_ACCESS_TOKEN_TTL_S
    (900 s) + 60 s while identity may issue tokens living 3600 s: 16 minutes after its revocation such a
    token was accepted again. The retention is now identity's maximum lifetime, whatever is configured."""
    now = int(time.time())
    issued_at = now - 16 * 60 - 1
    claims = issuer.claims(sid="sess-long", iat=issued_at, ttl=MAX_ACCESS_TOKEN_TTL_S)
    token = issuer.token(kid, claims)
    clock = Clock(float(now))
    revocations = RevocationList(load_access_settings({}).revocation_retention_s, clock=clock)
    assert revocations.revoke("sess-long", revoked_at=issued_at)  # revoked the moment it was issued
    with pytest.raises(Problem) as raised:
        authenticator(issuer, view=RevocationView(revocations)).authenticate(bearer(token))
    assert (raised.value.status, raised.value.detail) == (401, REVOKED)
    clock.now = claims["exp"] + 61.0  # forgotten only once the token itself cannot be accepted
    assert not revocations.is_revoked("sess-long")


@pytest.mark.parametrize("case", ["view not current", "keys unavailable", "permissions unavailable"])
def test_what_cannot_be_checked_now_is_503(issuer, kid, case):
    parts = {
        "view not current": {"view": View(current=False)},
        "keys unavailable": {"keys": Keys(issuer, available=False)},
        "permissions unavailable": {"roles": None},
    }[case]
    with pytest.raises(Problem) as raised:
        authenticator(issuer, **parts).authenticate(bearer(issuer.token(kid)))
    assert raised.value.status == 503
    assert raised.value.headers["Retry-After"]


def test_a_token_is_verified_once_then_served_from_the_cache(issuer, kid, monkeypatch):
    from upgestao_kernel import access_tokens as kernel_tokens

    calls = []
    real = kernel_tokens.verify_access_token
    monkeypatch.setattr(kernel_tokens, "verify_access_token", lambda *a, **k: calls.append(1) or real(*a, **k))
    auth = authenticator(issuer)
    token = issuer.token(kid, issuer.claims(sid="sess-cached"))
    for _ in range(3):
        assert auth.authenticate(bearer(token)).session_id == "sess-cached"
    assert len(calls) == 1
    # revocation is still checked on every request
    auth.revocations = View(revoked=("sess-cached",))
    with pytest.raises(Problem) as raised:
        auth.authenticate(bearer(token))
    assert raised.value.detail == REVOKED


def test_a_cached_token_still_expires_and_loses_a_withdrawn_key(issuer, kid, monkeypatch):
    from upgestao_kernel import access_tokens as tokens_module

    auth = authenticator(issuer)
    token = issuer.token(kid, issuer.claims(sid="sess-short"))
    assert auth.authenticate(bearer(token)) is not None
    later = time.time() + 3600
    monkeypatch.setattr(tokens_module.time, "time", lambda: later)
    with pytest.raises(Problem) as expired:
        auth.authenticate(bearer(token))
    assert expired.value.detail == EXPIRED

    monkeypatch.undo()
    other = issuer.token(kid, issuer.claims(sid="sess-key"))
    assert auth.authenticate(bearer(other)) is not None
    del issuer.keys[kid]  # the key is withdrawn from identity's JWKS
    with pytest.raises(Problem) as withdrawn:
        auth.authenticate(bearer(other))
    assert withdrawn.value.status == 401


@pytest.mark.parametrize(("reason", "detail"), [("loading", "still loading revoked sessions"),
                                              ("broker-unreachable", "message broker is unreachable")])
def test_a_view_that_is_not_current_says_why(issuer, kid, reason, detail):
    """During a broker outage the 503 names the broker, not a load that is not happening (defect 4)."""
    with pytest.raises(Problem) as raised:
        authenticator(issuer, view=View(current=False, reason=reason)).authenticate(bearer(issuer.token(kid)))
    assert raised.value.status == 503 and detail in raised.value.detail


def test_an_invalid_token_is_refused_before_waiting_for_the_view(issuer, kid):
    with pytest.raises(Problem) as raised:
        authenticator(issuer, view=View(current=False)).authenticate(bearer("garbage"))
    assert raised.value.status == 401


# -- events ---------------------------------------------------------------------------------


def test_events_revoke_sessions_and_invalidate_the_role_map():
    control = AccessControl()
    control.revocations = RevocationList(retention_s=960)
    invalidated = []
    control.permissions = type("P", (), {"invalidate": lambda self: invalidated.append(1)})()
    now = time.time()
    occurred = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 10))
    control.handle_event({"type": "identity.session_revoked.v1", "occurred_at": occurred,
                          "data": {"session_id": "s-1", "user_id": "u-1", "reason": "logout"}})
    control.handle_event({"type": "identity.session_revoked.v1", "occurred_at": "2001-01-01T00:00:00+00:00",
                          "data": {"session_id": "s-old"}})
    control.handle_event({"type": "identity.session_revoked.v1", "data": {}})
    control.handle_event({"type": "identity.role_permissions_changed.v1", "data": {"role": "admin"}})
    control.handle_event({"type": "identity.something_else.v1", "data": {"session_id": "s-2"}})
    assert control.is_revoked("s-1")
    assert not control.is_revoked("s-old") and not control.is_revoked("s-2")
    assert invalidated == [1]


def test_the_stream_starts_the_longest_token_lifetime_back_then_resumes_after_the_last_offset():
    stream = AccessEventsStream("amqp://unused", load_access_settings({}), handle=lambda body: None,
                                clock=lambda: 100_000.0)
    assert stream.start_offset().timestamp() == 100_000.0 - (MAX_ACCESS_TOKEN_TTL_S + 60)
    stream.last_offset = 41
    assert stream.start_offset() == 42
    assert not stream.current and not stream.wait_current(0.01)


def test_the_stream_does_not_make_requests_wait_while_the_broker_is_unreachable():
    """Nothing to read: the broker refuses connections. ``wait_current`` answers at once and the
    reason is the broker (issue 9, defect 4)."""
    stream = AccessEventsStream("amqp://guest:guest@127.0.0.1:1//", load_access_settings({}), handle=lambda b: None)
    stream.connect_timeout_s = 0.5
    thread = eventlet.spawn(stream.run)
    try:
        wait_for(lambda: stream.broker_unreachable, timeout=5)
        started = time.monotonic()
        assert not stream.wait_current(3.0)
        assert time.monotonic() - started < 0.1
        control = AccessControl()
        control.stream = stream
        assert control.stale_reason() == "broker-unreachable"
    finally:
        stream.stop()
        thread.kill()
