"""Rate limits and Idempotency-Key in flight on a running gateway: a fake messaging (RPC ``teams``,
``create_team``) on the real broker, a fixed table of tokens, low quotas from the environment
(users 12 a minute, API keys 6 a minute, bursts of 3).

What is proven: every answer to a signed-in caller carries ``RateLimit-Limit``/``-Remaining``/``-Reset``
(a 403 too), anonymous and unauthenticated answers none; past the burst, 429 problem+json ``rate-limited``
with ``Retry-After`` and the same headers, and the service is never asked (a refused write changes
nothing); an API key counts apart from a user, at its own rate; a write with the Idempotency-Key of a
request still in flight is 409 ``idempotency-key-in-use`` with ``Retry-After: 1`` and never reaches the
service, while another caller's same key, and writes without a key, go through; the key is free again
once the first is answered."""

from __future__ import annotations

import uuid

import eventlet
import pytest
import requests
from upgestao_gateway.domain.principal import Principal
from upgestao_kernel.nameko_ext import rpc
from upgestao_kernel.testing import wait_for

MANAGE, READ = "teams.manage", "conversations.read"
MEMBER = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"
SLOW = "slow team"


class Calls:
    """What the fake messaging was asked, and the gate a slow create waits at (shared with the tests)."""

    creates: list[tuple[str, str]] = []  # (name, request_id)
    gate_open = False


class FakeMessaging:
    name = "messaging"

    @rpc
    def teams(self) -> dict:
        return {"items": []}

    @rpc
    def create_team(self, name: str, member_ids: list[str]) -> dict:
        Calls.creates.append((name, str(uuid.uuid4())))
        while name == SLOW and not Calls.gate_open:
            eventlet.sleep(0.01)
        return {"id": str(uuid.uuid4()), "name": name, "member_ids": member_ids,
                "created_at": "2026-12-02T04:00:00+00:00", "updated_at": "2026-12-02T04:00:00+00:00"}


def principal(actor_id: str, role: str = "supervisor", permissions=(MANAGE, READ)) -> Principal:
    return Principal(actor_id=actor_id, role=role, session_id=f"sess-{actor_id}", permissions=frozenset(permissions))


PRINCIPALS = {
    **{f"user-{n}": principal(f"user-{n}") for n in range(1, 8)},
    "reader": principal("user-reader", permissions=(READ,)),
    "key-1": principal("key-actor-1", role="apikey:key-1"),
    "same-as-user-7": principal("user-7", role="apikey:key-7"),  # an API key's actor id clashing with a user's
}


@pytest.fixture(scope="module")
def gateway(routes_gateway):
    mp = pytest.MonkeyPatch()
    mp.setenv("GATEWAY_RATE_LIMIT_USER_PER_MIN", "12")  # one every 5 s
    mp.setenv("GATEWAY_RATE_LIMIT_KEY_PER_MIN", "6")  # one every 10 s
    mp.setenv("GATEWAY_RATE_LIMIT_BURST", "3")
    try:
        yield routes_gateway(FakeMessaging, PRINCIPALS)
    finally:
        mp.undo()


def team(name: str = "Suporte N1") -> dict:
    return {"name": name, "member_ids": [MEMBER]}


def limits(response: requests.Response) -> tuple[int, int, int]:
    headers = response.headers
    return int(headers["RateLimit-Limit"]), int(headers["RateLimit-Remaining"]), int(headers["RateLimit-Reset"])


def test_every_answer_to_a_signed_in_caller_carries_its_quota(gateway):
    first = gateway.get("/v1/teams", "user-1")
    assert first.status_code == 200, first.text
    assert limits(first) == (3, 2, 5)
    second = gateway.get("/v1/teams", "user-1")
    limit, remaining, reset = limits(second)
    assert (limit, remaining) == (3, 1) and 5 < reset <= 10
    assert "Retry-After" not in second.headers


def test_a_refused_permission_is_counted_and_answered_with_the_headers(gateway):
    denied = gateway.request("POST", "/v1/teams", "reader", json=team())
    gateway.problem(denied, 403, "forbidden")
    assert limits(denied)[:2] == (3, 2)


def test_anonymous_and_unauthenticated_answers_carry_no_quota(gateway):
    for response in (gateway.get("/healthz"), gateway.get("/v1/teams"), gateway.get("/v1/teams", "nobody")):
        assert not any(name.lower().startswith("ratelimit-") for name in response.headers), response.headers


def test_past_the_burst_a_write_is_429_and_reaches_no_service(gateway):
    for _ in range(3):
        assert gateway.request("POST", "/v1/teams", "user-2", json=team("Allowed")).status_code == 201
    before = len(Calls.creates)
    refused = gateway.request("POST", "/v1/teams", "user-2", json=team("Refused"),
                              headers={"Idempotency-Key": "refused-key-0001"})
    body = gateway.problem(refused, 429, "rate-limited")
    assert body["status"] == 429 and body["request_id"] == refused.headers["X-Request-ID"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 5
    limit, remaining, reset = limits(refused)
    assert (limit, remaining) == (3, 0) and 10 < reset <= 15
    assert len(Calls.creates) == before and "Refused" not in [name for name, _ in Calls.creates]
    # a read is refused as well: the quota is the principal's, whatever the route
    gateway.problem(gateway.get("/v1/teams", "user-2"), 429, "rate-limited")
    # another user is not affected
    assert gateway.get("/v1/teams", "user-3").status_code == 200


def test_an_api_key_is_limited_apart_at_its_own_rate(gateway):
    answers = [gateway.get("/v1/teams", "key-1") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert limits(answers[0]) == (3, 2, 10)  # one token back every 10 s
    assert 5 < int(answers[3].headers["Retry-After"]) <= 10
    # an API key whose actor id is a user's does not spend that user's quota (nor the user its)
    assert limits(gateway.get("/v1/teams", "same-as-user-7"))[1] == 2
    assert limits(gateway.get("/v1/teams", "user-7"))[1] == 2


def _post_in_green_thread(gateway, token: str, key: str | None, name: str) -> eventlet.greenthread.GreenThread:
    headers = {"Authorization": f"Bearer {token}", **({"Idempotency-Key": key} if key else {})}
    return eventlet.spawn(requests.post, gateway.base_url + "/v1/teams", json=team(name), headers=headers, timeout=10)


def test_a_write_whose_key_is_in_flight_is_409_until_the_first_is_answered(gateway):
    Calls.gate_open = False
    key = f"in-flight-{uuid.uuid4().hex}"
    first = _post_in_green_thread(gateway, "user-4", key, SLOW)
    try:
        wait_for(lambda: SLOW in [name for name, _ in Calls.creates], timeout=10, interval=0.01)
        asked = len(Calls.creates)
        again = gateway.request("POST", "/v1/teams", "user-4", json=team(SLOW), headers={"Idempotency-Key": key})
        body = gateway.problem(again, 409, "idempotency-key-in-use")
        assert again.headers["Retry-After"] == "1"
        assert again.headers["Idempotency-Key"] == key
        assert body["errors"] == [{"field": "Idempotency-Key", "message": "is in use by a request in flight"}]
        assert "RateLimit-Remaining" in again.headers
        assert len(Calls.creates) == asked  # the retry never reached the service
        # another caller's key of the same name is another key
        other = gateway.request("POST", "/v1/teams", "user-5", json=team("Other"), headers={"Idempotency-Key": key})
        assert other.status_code == 201, other.text
    finally:
        Calls.gate_open = True
    answered = first.wait()
    assert answered.status_code == 201, answered.text
    # answered: the key is free again (the service's keyed requests answer its replay)
    after = gateway.request("POST", "/v1/teams", "user-4", json=team("After"), headers={"Idempotency-Key": key})
    assert after.status_code == 201, after.text


def test_writes_without_a_key_are_never_held_back_by_each_other(gateway):
    Calls.gate_open = False
    slow_before = [name for name, _ in Calls.creates].count(SLOW)
    first = _post_in_green_thread(gateway, "user-6", None, SLOW)
    try:
        wait_for(lambda: [name for name, _ in Calls.creates].count(SLOW) > slow_before, timeout=10, interval=0.01)
        second = gateway.request("POST", "/v1/teams", "user-6", json=team("Unkeyed"))
        assert second.status_code == 201, second.text
    finally:
        Calls.gate_open = True
    assert first.wait().status_code == 201


def test_a_malformed_key_is_refused_and_holds_nothing(gateway):
    response = gateway.request("POST", "/v1/teams", "user-3", json=team(), headers={"Idempotency-Key": "bad key"})
    gateway.problem(response, 400, "malformed-request")
