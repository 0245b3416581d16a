"""Idempotent POST under concurrent retries, through the whole platform (issue 15, "API keys: idempotent
POST under concurrent retries (one effect)").

A client -- a signed-in user, or an integrated tool with its API key -- whose first request seems lost
sends it again, several times and at once, with the same
``Idempotency-Key`` and body: exactly one customer exists afterwards; every answer is the first's (201,
the same id: the services' keyed requests replay it) or ``409 idempotency-key-in-use`` while the first is
still in flight in the gateway (draft-ietf-httpapi-idempotency-key-header); the key with another body is
422 naming ``Idempotency-Key``; the key and body later, the stored answer. Every answer to the signed-in
caller carries its rate limit (``RateLimit-*``); the 429 itself is proven in the gateway's tests
(services/integration-gateway/tests/test_rate_limit_routes.py), with low quotas this shared platform
does not take.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, Api

PROBLEMS = "https://upgestao.com.br/problems/"
CONCURRENT = 8
ROUNDS = 5  # a round where the first is answered before any retry arrives proves less: try again


@pytest.fixture(scope="module")
def api(platform):
    return Api(platform.url)


@pytest.fixture(scope="module")
def admin(api):
    return api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]


@pytest.fixture(scope="module")
def callers(api, admin) -> dict[str, str]:
    """Bearer credentials of the two kinds of principal: a signed-in attendant, an integrated tool's API key."""
    attendant = api.create_staff(admin, "attendant")[1]["access_token"]
    issued = api.post("/v1/api-keys", admin, json={"name": f"Ferramenta {uuid.uuid4().hex[:6]}",
                                                   "scopes": ["customers.create", "customers.list"]})
    assert issued.status_code == 201, issued.text
    return {"attendant": attendant, "api key": issued.json()["key"]}


def concurrent_posts(url: str, token: str, body: dict, key: str) -> list[requests.Response]:
    """``CONCURRENT`` POSTs of ``body`` under ``key``, each on its own warm connection, let go at once."""
    sessions = [requests.Session() for _ in range(CONCURRENT)]
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    for session in sessions:  # connected before the race
        assert session.get(url + "/healthz", timeout=10).status_code == 200
    start = threading.Barrier(CONCURRENT)

    def post(session: requests.Session) -> requests.Response:
        start.wait(timeout=10)
        return session.post(url + "/v1/customers", json=body, headers=headers, timeout=30)

    try:
        with ThreadPoolExecutor(CONCURRENT) as pool:
            return list(pool.map(post, sessions))
    finally:
        for session in sessions:
            session.close()


@pytest.mark.parametrize("caller", ["attendant", "api key"])
def test_concurrent_retries_of_a_keyed_post_have_one_effect(api, platform, callers, caller):
    token = callers[caller]  # whoever asks: a user, or an API key acting with its scopes
    in_flight_seen = False
    for _ in range(ROUNDS):
        email = f"concorrente.{uuid.uuid4().hex[:10]}@example.com"
        body = {"full_name": "Cliente Concorrente", "email": email}
        key = f"race-{uuid.uuid4()}"
        answers = concurrent_posts(platform.url, token, body, key)

        created = [a for a in answers if a.status_code == 201]
        in_flight = [a for a in answers if a.status_code == 409]
        assert len(created) + len(in_flight) == CONCURRENT, [(a.status_code, a.text) for a in answers]
        assert created, "no request was carried out"
        assert len({a.json()["id"] for a in created}) == 1  # replays of the one that was
        for answer in in_flight:
            problem = answer.json()
            assert answer.headers["Content-Type"].startswith("application/problem+json")
            assert problem["type"] == PROBLEMS + "idempotency-key-in-use", problem
            assert answer.headers["Retry-After"] == "1"
        for answer in answers:
            assert answer.headers["Idempotency-Key"] == key
            assert int(answer.headers["RateLimit-Limit"]) >= 1 and "RateLimit-Remaining" in answer.headers
        customer_id = created[0].json()["id"]
        found = api.post("/v1/customers/search", token, json={"email": email}).json()["items"]
        assert [c["id"] for c in found] == [customer_id]  # exactly one customer

        # later, the same key and body: the stored answer; another body under the key: 422 naming it
        later = api.post("/v1/customers", token, json=body, headers={"Idempotency-Key": key})
        assert later.status_code == 201 and later.json() == created[0].json(), later.text
        other = api.post("/v1/customers", token, json={**body, "full_name": "Outro Nome"},
                         headers={"Idempotency-Key": key})
        assert other.status_code == 422, other.text
        assert other.json()["type"] == PROBLEMS + "idempotency-key-reused"
        assert other.json()["field"] == "Idempotency-Key"

        in_flight_seen = in_flight_seen or bool(in_flight)
        if in_flight_seen:
            break
    assert in_flight_seen, f"in {ROUNDS} rounds of {CONCURRENT} at once, no retry arrived while the first ran"
