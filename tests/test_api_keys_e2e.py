"""API keys end to end through the gateway, every service running as a process (issue 15: R2.1, R3.1, D3):
an integrated tool's key records a customer's incoming message and is refused where its scopes do not reach,
its actions are audited with the key as the actor, a revocation takes effect on the next request, and an
expired key is refused like an unknown one.

Each test makes its own key (the platform is shared). Nothing sleeps: what happens asynchronously (the audit
log, a key's expiry) is polled for with a deadline.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from e2e_api import wait_for_audit
from upgestao_kernel.testing import wait_for

pytestmark = pytest.mark.e2e
pytest_plugins = ["e2e_messaging_fixtures"]  # api, admin_token, dpo, desk

INVALID_KEY = "The API key is invalid, revoked or expired."


def issue(api, admin_token: str, scopes: list[str], **over) -> dict:
    created = api.post("/v1/api-keys", admin_token, json={"name": f"Tool {uuid.uuid4().hex[:6]}", "scopes": scopes,
                                                          **over})
    assert created.status_code == 201, created.text
    assert created.headers["Cache-Control"] == "no-store"
    assert created.headers["Location"] == f"/v1/api-keys/{created.json()['id']}"
    return created.json()


def refused_as_invalid(response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["detail"] == INVALID_KEY
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_key_records_an_incoming_message_within_its_scopes_audited_as_itself(desk, api, admin_token, dpo):
    a = desk.staff("a")
    customer = desk.customer()
    conversation = desk.conversation(a, customer, team_id=desk.team(a))
    created = issue(api, admin_token, ["conversations.read", "conversations.read_all",
                                       "conversations.record_incoming", "customers.read"])
    key, key_id = created["key"], created["id"]
    assert (created["last_used_at"], created["created_by"]) == (None, desk.admin.id)

    sent = api.post(f"/v1/conversations/{conversation['id']}/messages", key,
                    json={"body": "Ligação recebida: cliente pede segunda via", "direction": "incoming"})
    assert sent.status_code == 201, sent.text
    assert sent.json()["direction"] == "incoming"
    read = api.get(f"/v1/customers/{customer}", key)
    assert read.status_code == 200 and read.json()["id"] == customer

    # what its scopes do not reach: 403, whatever the route
    for method, path, body in (("GET", "/v1/customers", None), ("POST", "/v1/teams", {"name": "X", "member_ids": []}),
                               ("POST", f"/v1/conversations/{conversation['id']}/messages",
                                {"body": "Resposta", "direction": "outgoing"}),
                               ("GET", "/v1/api-keys", None), ("GET", "/v1/users", None)):
        answer = api.request(method, path, key, json=body)
        assert answer.status_code == 403, f"{method} {path}: {answer.status_code} {answer.text}"

    # the keys are listed without the key; the key's use is recorded
    listed = api.get("/v1/api-keys", admin_token, params={"limit": 100})
    assert listed.status_code == 200 and key not in listed.text
    mine = api.get(f"/v1/api-keys/{key_id}", admin_token).json()
    assert mine["last_used_at"] is not None and mine["scopes"] == sorted(created["scopes"])

    # audited like a user, with the key as the actor
    role = f"apikey:{key_id}"
    wait_for_audit(api, dpo, {"action": "read", "resource_type": "customer", "actor_id": key_id,
                              "actor_role": role, "outcome": "success"},
                   what="the key's read of the customer", subject_id=customer)
    wait_for_audit(api, dpo, {"action": "create", "resource_type": "message", "actor_id": key_id,
                              "outcome": "success"}, what="the key's incoming message", subject_id=customer)


def test_a_revoked_key_is_refused_on_the_next_request(api, admin_token):
    created = issue(api, admin_token, ["customers.list"])
    assert api.get("/v1/customers", created["key"], params={"limit": 1}).status_code == 200
    assert api.delete(f"/v1/api-keys/{created['id']}", admin_token).status_code == 204
    refused_as_invalid(api.get("/v1/customers", created["key"], params={"limit": 1}))  # no waiting
    assert api.get(f"/v1/api-keys/{created['id']}", admin_token).json()["status"] == "revoked"
    assert api.delete(f"/v1/api-keys/{created['id']}", admin_token).status_code == 204  # again: nothing changes


def test_expired_unknown_and_malformed_keys_get_one_answer(api, admin_token):
    soon = datetime.now(UTC) + timedelta(seconds=3)
    created = issue(api, admin_token, ["customers.list"], expires_at=soon.isoformat())
    assert api.get("/v1/customers", created["key"], params={"limit": 1}).status_code == 200
    wait_for(lambda: api.get("/v1/customers", created["key"], params={"limit": 1}).status_code == 401,
             timeout=20, interval=0.25)
    refused_as_invalid(api.get("/v1/customers", created["key"], params={"limit": 1}))
    unknown = f"upk_{uuid.uuid4()}_" + "A" * 43
    refused_as_invalid(api.get("/v1/customers", unknown))
    refused_as_invalid(api.get("/v1/customers", created["key"][:-1]))

    # what a key cannot be given
    for body, field in (({"name": "x", "scopes": ["roles.update"]}, "scopes"),
                        ({"name": "x", "scopes": ["audit.read"]}, "scopes"),
                        ({"name": "x", "scopes": ["customers.read"],
                          "expires_at": (datetime.now(UTC) + timedelta(days=400)).isoformat()}, "expires_at")):
        answer = api.post("/v1/api-keys", admin_token, json=body)
        assert answer.status_code == 422 and [e["field"] for e in answer.json()["errors"]] == [field], answer.text
