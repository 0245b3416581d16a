"""``Bearer upk_...`` at the gateway without a broker (issue 15): the exchange with identity and its cache,
the one answer for every unusable key, immediate revocation, and every other bearer left to the JWT
verifier."""

from __future__ import annotations

import eventlet
import pytest
from upgestao_gateway.access.api_keys import INVALID_KEY, REFRESH_MARGIN_S, REFUSAL_TTL_S, ApiKeyAuthenticator
from upgestao_gateway.adapters.identity import IdentityUnavailable
from upgestao_gateway.domain.principal import Principal
from upgestao_gateway.entrypoints.http.problems import Problem
from upgestao_kernel.errors import ServiceError
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

KEY_ID = "0b5c6a52-3f0e-4a8e-9a57-1c1d2e3f4a5b"
KEY = f"upk_{KEY_ID}_" + "A" * 43
OTHER_ID = "1b5c6a52-3f0e-4a8e-9a57-1c1d2e3f4a5b"


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class View:
    def __init__(self, current: bool = True) -> None:
        self.current = current
        self.revoked: set[str] = set()

    def wait_current(self, timeout_s: float) -> bool:
        return self.current

    def stale_reason(self) -> str:
        return "loading"

    def is_revoked(self, session_id: str) -> bool:
        return session_id in self.revoked


class Identity:
    """identity.exchange_api_key: valid keys by their text; counts the calls."""

    def __init__(self, ttl: int = 900) -> None:
        self.valid = {KEY: KEY_ID}
        self.ttl = ttl
        self.calls: list[str] = []
        self.down = False
        self.slow = False

    def __call__(self, key: str) -> dict:
        self.calls.append(key)
        if self.slow:
            eventlet.sleep(0.05)
        if self.down:
            raise IdentityUnavailable("exchange_api_key", "Timeout")
        if key not in self.valid:
            raise ServiceError("invalid-api-key", "The API key is invalid, revoked or expired.", 401)
        key_id = self.valid[key]
        return {"access_token": f"token-{len(self.calls)}", "token_type": "Bearer", "expires_in": self.ttl,
                "key_id": key_id, "role": f"apikey:{key_id}", "scopes": ["conversations.record_incoming"]}


class Tokens:
    def __init__(self) -> None:
        self.asked = 0

    def authenticate(self, request: Request) -> Principal | None:
        self.asked += 1
        return Principal(actor_id="user-1", role="attendant", session_id="sess-1")


def bearer(token: str) -> Request:
    return Request(EnvironBuilder(path="/", headers={"Authorization": f"Bearer {token}"}).get_environ())


@pytest.fixture
def parts():
    identity, view, clock, tokens = Identity(), View(), Clock(), Tokens()
    return identity, view, clock, tokens, ApiKeyAuthenticator(tokens, identity, view, caught_up_wait_s=0.01,
                                                               clock=clock)


def refusal(authenticator: ApiKeyAuthenticator, key: str) -> Problem:
    with pytest.raises(Problem) as refused:
        authenticator.authenticate(bearer(key))
    return refused.value


def test_a_key_is_exchanged_once_and_its_principal_is_the_key(parts):
    identity, _, _, tokens, authenticator = parts
    first = authenticator.authenticate(bearer(KEY))
    again = authenticator.authenticate(bearer(KEY))
    assert identity.calls == [KEY] and tokens.asked == 0
    assert first == again and first.token == again.token == "token-1"
    assert (first.actor_id, first.session_id, first.role) == (KEY_ID, KEY_ID, f"apikey:{KEY_ID}")
    assert first.permissions == {"conversations.record_incoming"} and not first.can("customers.list")


def test_a_token_is_exchanged_again_shortly_before_it_expires(parts):
    identity, _, clock, _, authenticator = parts
    authenticator.authenticate(bearer(KEY))
    clock.now += 900 - REFRESH_MARGIN_S - 1
    assert authenticator.authenticate(bearer(KEY)).token == "token-1"
    clock.now += 1
    assert authenticator.authenticate(bearer(KEY)).token == "token-2" and len(identity.calls) == 2


def test_concurrent_first_requests_of_a_key_make_one_exchange(parts):
    identity, _, _, _, authenticator = parts
    identity.slow = True
    pool = eventlet.GreenPool()
    principals = list(pool.imap(lambda _: authenticator.authenticate(bearer(KEY)), range(10)))
    assert len(identity.calls) == 1 and {p.token for p in principals} == {"token-1"}
    assert authenticator._locks == {}


def test_every_unusable_key_gets_the_same_401_and_a_malformed_one_asks_nobody(parts):
    identity, _, _, _, authenticator = parts
    malformed = [f"upk_{KEY_ID}", f"upk_{KEY_ID}_" + "A" * 42, "upk_" + "A" * 80, f"upk_{KEY_ID.upper()}_" + "A" * 43]
    problems = [refusal(authenticator, key) for key in malformed]
    assert identity.calls == []
    unknown = f"upk_{OTHER_ID}_" + "B" * 43
    problems.append(refusal(authenticator, unknown))
    assert identity.calls == [unknown]
    assert {(p.status, p.detail) for p in problems} == {(401, INVALID_KEY)}
    assert all('error="invalid_token"' in p.headers["WWW-Authenticate"] for p in problems)


def test_a_refused_key_is_refused_again_briefly_without_asking(parts):
    identity, _, clock, _, authenticator = parts
    unknown = f"upk_{OTHER_ID}_" + "B" * 43
    refusal(authenticator, unknown)
    refusal(authenticator, unknown)
    assert identity.calls == [unknown]
    clock.now += REFUSAL_TTL_S
    refusal(authenticator, unknown)
    assert identity.calls == [unknown, unknown]


def test_a_revoked_key_is_refused_at_once_and_its_token_dropped(parts):
    identity, view, _, _, authenticator = parts
    authenticator.authenticate(bearer(KEY))
    view.revoked.add(KEY_ID)
    assert refusal(authenticator, KEY).status == 401
    assert authenticator._cache == {} and identity.calls == [KEY]


def test_a_key_revoked_through_this_replica_loses_its_cached_token(parts):
    identity, _, _, _, authenticator = parts
    authenticator.authenticate(bearer(KEY))
    authenticator.forget_key(KEY_ID)
    assert authenticator._cache == {}
    authenticator.authenticate(bearer(KEY))
    assert len(identity.calls) == 2


def test_what_cannot_be_checked_now_is_503(parts):
    identity, view, _, _, authenticator = parts
    identity.down = True
    assert refusal(authenticator, KEY).status == 503
    identity.down = False
    view.current = False
    assert refusal(authenticator, KEY).status == 503
    view.current = True
    assert authenticator.authenticate(bearer(KEY)).actor_id == KEY_ID


def test_an_answer_for_another_key_is_refused(parts):
    identity, _, _, _, authenticator = parts
    identity.valid[KEY] = OTHER_ID
    assert refusal(authenticator, KEY).status == 401


def test_a_short_lived_token_is_used_for_half_its_life(parts):
    identity, _, clock, _, authenticator = parts
    identity.ttl = 60
    authenticator.authenticate(bearer(KEY))
    clock.now += 29
    authenticator.authenticate(bearer(KEY))
    clock.now += 1
    authenticator.authenticate(bearer(KEY))
    assert len(identity.calls) == 2


def test_other_bearers_and_no_bearer_go_to_the_token_verifier(parts):
    identity, _, _, tokens, authenticator = parts
    assert authenticator.authenticate(bearer("eyJhbGciOi.x.y")).actor_id == "user-1"
    assert authenticator.authenticate(Request(EnvironBuilder(path="/").get_environ())).actor_id == "user-1"
    assert tokens.asked == 2 and identity.calls == []
