"""The data-subject request routes and the privacy contact channel on a running gateway: a fake privacy
(its RPC methods as the contract names them) on the real broker, a fixed table of tokens.

What is proven: 401 without a token on the signed-in routes; 403 (audited, privacy never asked) without
``privacy.review`` for the DPO's routes; 422 naming a bad field before privacy is asked, and a refused
address or code never echoed back; the contact channel open to anyone (202, a request id); privacy's own
problems (404, 409, 410, 429) answered as it names them; answers shaped by the documented schemas."""

from __future__ import annotations

import uuid

import pytest
from upgestao_gateway.domain.principal import Principal
from upgestao_kernel.errors import ServiceError, not_found
from upgestao_kernel.nameko_ext import rpc

REQUEST = "6c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
EXPIRED = "0e0e0e0e-0000-4000-8000-000000000410"
THROTTLED = "throttled@example.com"


def request_view(**over) -> dict:
    return {"id": REQUEST, "type": "access", "state": "pending", "channel": "session", "subject_id": "user-att",
            "subject_kind": None, "requester_id": "user-att", "received_at": "2026-12-02T12:00:00+00:00",
            "due_at": "2026-12-17T12:00:00+00:00", "days_left": 15, "overdue": False, "closed_at": None, **over}


def detail(**over) -> dict:
    return request_view(outcome=None, answer=None, what_failed=None, history=[
        {"at": "2026-12-02T12:00:00+00:00", "by_id": "user-att", "by_role": "attendant", "from": None,
         "to": "pending", "event": "filed", "reason": None, "note": None}], **over)


class Calls:
    calls: list[tuple] = []


class FakePrivacy:
    name = "privacy"

    @rpc
    def file_request(self, type):
        Calls.calls.append(("file_request", type))
        return request_view(type=type, secret="not for the client")

    @rpc
    def list_requests(self, filters, limit, cursor):
        Calls.calls.append(("list_requests", filters, limit, cursor))
        return {"items": [request_view()], "next_cursor": None}

    @rpc
    def overdue_requests(self, limit, cursor):
        Calls.calls.append(("overdue_requests", limit, cursor))
        return {"items": [request_view(overdue=True, days_left=-2)], "overdue_count": 1, "next_cursor": None}

    @rpc
    def get_request(self, request_id):
        Calls.calls.append(("get_request", request_id))
        if request_id != REQUEST:
            raise not_found("request")
        return detail()

    @rpc
    def start_request(self, request_id):
        Calls.calls.append(("start_request", request_id))
        return detail(state="in_progress")

    @rpc
    def complete_request(self, request_id, note=None):
        Calls.calls.append(("complete_request", request_id, note))
        return detail(state="completed")

    @rpc
    def deny_request(self, request_id, reason=None):
        Calls.calls.append(("deny_request", request_id, reason))
        raise ServiceError("conflict", "A request denied cannot be denied.", 409)

    @rpc
    def cancel_request(self, request_id, reason=None):
        Calls.calls.append(("cancel_request", request_id, reason))
        return detail(state="canceled")

    @rpc
    def extend_request(self, request_id, due_at=None, reason=None):
        Calls.calls.append(("extend_request", request_id, due_at, reason))
        return detail(due_at=due_at)

    @rpc
    def contact_request(self, email, type, message=None):
        Calls.calls.append(("contact_request", email, type, message))
        if email == THROTTLED:
            raise ServiceError("too-many-requests", "Too many requests.", 429, {"retry_after": 30})
        return {"id": str(uuid.uuid4()), "status": "accepted"}

    @rpc
    def verify_contact_request(self, request_id, code):
        Calls.calls.append(("verify_contact_request", request_id, code))
        if request_id == EXPIRED:
            raise ServiceError("code-expired", "The code has expired: file the request again.", 410)
        return {"id": request_id, "state": "pending", "type": "deletion", "due_at": "2026-12-17T12:00:00+00:00",
                "days_left": 15}


PRINCIPALS = {
    "dpo-token": Principal(actor_id="user-dpo", role="dpo", session_id="sess-dpo",
                           permissions=frozenset({"privacy.self", "privacy.review"})),
    "attendant-token": Principal(actor_id="user-att", role="attendant", session_id="sess-att",
                                 permissions=frozenset({"privacy.self"})),
}


@pytest.fixture(scope="module")
def gateway(routes_gateway):
    return routes_gateway(FakePrivacy, PRINCIPALS)


@pytest.fixture(autouse=True)
def calls():
    Calls.calls.clear()
    yield Calls.calls


def post(gateway, path, token=None, json=None, **kwargs):
    return gateway.request("POST", path, token, json=json if json is not None else {}, **kwargs)


def test_signed_in_routes_need_a_token(gateway, calls):
    gateway.problem(gateway.get("/v1/privacy/requests"), 401, "unauthenticated")
    gateway.problem(post(gateway, "/v1/privacy/requests", json={"type": "access"}), 401, "unauthenticated")
    gateway.problem(gateway.get(f"/v1/privacy/requests/{REQUEST}"), 401, "unauthenticated")
    assert calls == []


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/v1/privacy/requests/overdue", None),
    ("POST", f"/v1/privacy/requests/{REQUEST}/start", {}),
    ("POST", f"/v1/privacy/requests/{REQUEST}/complete", {}),
    ("POST", f"/v1/privacy/requests/{REQUEST}/deny", {"reason": "não"}),
    ("POST", f"/v1/privacy/requests/{REQUEST}/extend", {"due_at": "2027-01-30T00:00:00Z", "reason": "volume"}),
])
def test_without_privacy_review_the_dpos_routes_are_403_audited(gateway, calls, method, path, body):
    request_id = f"privacy-denied-{uuid.uuid4().hex[:12]}"
    response = gateway.request(method, path, "attendant-token", json=body, headers={"X-Request-ID": request_id})
    assert gateway.problem(response, 403, "forbidden")["permission"] == "privacy.review"
    assert calls == []
    (record,) = gateway.denials(request_id)
    assert (record["actor_id"], record["outcome"]) == ("user-att", "denied")


def test_filing_listing_and_reading(gateway, calls):
    filed = post(gateway, "/v1/privacy/requests", "attendant-token", json={"type": "portability"})
    assert filed.status_code == 201, filed.text
    assert filed.json() == request_view(type="portability")  # nothing else reaches the client
    listed = gateway.get("/v1/privacy/requests", "dpo-token", params={"state": "pending", "type": "access",
                                                                      "limit": "5"})
    assert listed.status_code == 200 and listed.json()["items"] == [request_view()]
    one = gateway.get(f"/v1/privacy/requests/{REQUEST}", "attendant-token")
    assert one.status_code == 200 and one.json()["history"][0]["from"] is None
    gateway.problem(gateway.get(f"/v1/privacy/requests/{uuid.uuid4()}", "attendant-token"), 404, "not-found")
    overdue = gateway.get("/v1/privacy/requests/overdue", "dpo-token")
    assert overdue.json()["overdue_count"] == 1 and overdue.json()["items"][0]["overdue"] is True
    assert calls[:3] == [("file_request", "portability"),
                         ("list_requests", {"state": "pending", "type": "access"}, 5, None),
                         ("get_request", REQUEST)]


def test_the_dpos_actions_reach_privacy_with_their_arguments(gateway, calls):
    assert post(gateway, f"/v1/privacy/requests/{REQUEST}/start", "dpo-token").json()["state"] == "in_progress"
    assert post(gateway, f"/v1/privacy/requests/{REQUEST}/complete", "dpo-token",
                json={"note": "corrigido"}).json()["state"] == "completed"
    gateway.problem(post(gateway, f"/v1/privacy/requests/{REQUEST}/deny", "dpo-token", json={"reason": "x"}),
                    409, "conflict")
    extended = post(gateway, f"/v1/privacy/requests/{REQUEST}/extend", "dpo-token",
                    json={"due_at": "2027-01-30T00:00:00-03:00", "reason": "volume"})
    assert extended.status_code == 200, extended.text
    assert post(gateway, f"/v1/privacy/requests/{REQUEST}/cancel", "attendant-token").json()["state"] == "canceled"
    assert calls == [("start_request", REQUEST), ("complete_request", REQUEST, "corrigido"),
                     ("deny_request", REQUEST, "x"),
                     ("extend_request", REQUEST, "2027-01-30T00:00:00-03:00", "volume"),
                     ("cancel_request", REQUEST, None)]


@pytest.mark.parametrize("path, body, field", [
    ("/v1/privacy/requests", {"type": "everything"}, "type"),
    ("/v1/privacy/requests", {}, "type"),
    (f"/v1/privacy/requests/{REQUEST}/deny", {}, "reason"),
    (f"/v1/privacy/requests/{REQUEST}/deny", {"reason": ""}, "reason"),
    (f"/v1/privacy/requests/{REQUEST}/deny", {"reason": " \n\t "}, "reason"),
    (f"/v1/privacy/requests/{REQUEST}/complete", {"note": "   "}, "note"),
    (f"/v1/privacy/requests/{REQUEST}/extend", {"due_at": "2027-01-30", "reason": "x"}, "due_at"),
    (f"/v1/privacy/requests/{REQUEST}/extend", {"due_at": "2027-01-30T00:00:00Z"}, "reason"),
])
def test_a_bad_body_is_422_naming_the_field_before_privacy_is_asked(gateway, calls, path, body, field):
    body = gateway.problem(post(gateway, path, "dpo-token", json=body), 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == [field]
    assert calls == []


def test_the_contact_channel_is_open_and_always_accepts(gateway, calls):
    response = post(gateway, "/v1/privacy/contact", json={"email": "ana@example.com", "type": "deletion",
                                                          "message": "apaguem"})
    assert response.status_code == 202, response.text
    assert set(response.json()) == {"id", "status"} and response.json()["status"] == "accepted"
    throttled = gateway.problem(post(gateway, "/v1/privacy/contact", json={"email": THROTTLED, "type": "access"}),
                                429, "too-many-requests")
    assert throttled["retry_after"] == 30
    assert calls == [("contact_request", "ana@example.com", "deletion", "apaguem"),
                     ("contact_request", THROTTLED, "access", None)]


@pytest.mark.parametrize("body, field", [
    ({"email": "maria.silva.example.com", "type": "access"}, "email"),
    ({"email": "maria@example.com", "type": "tudo"}, "type"),
    ({"email": "maria@example.com", "type": "access", "message": "x" * 5001}, "message"),
])
def test_a_bad_contact_is_422_and_the_address_is_not_echoed(gateway, calls, body, field):
    response = post(gateway, "/v1/privacy/contact", json=body)
    assert [e["field"] for e in gateway.problem(response, 422, "validation-error")["errors"]] == [field]
    assert "maria" not in response.text and calls == []


def test_verifying_a_code(gateway, calls):
    ok = post(gateway, f"/v1/privacy/contact/{REQUEST}/verify", json={"code": "012345"})
    assert ok.status_code == 200 and ok.json()["state"] == "pending"
    gateway.problem(post(gateway, f"/v1/privacy/contact/{EXPIRED}/verify", json={"code": "012345"}), 410,
                    "code-expired")
    bad = post(gateway, f"/v1/privacy/contact/{REQUEST}/verify", json={"code": "98765x"})
    assert [e["field"] for e in gateway.problem(bad, 422, "validation-error")["errors"]] == ["code"]
    assert "98765x" not in bad.text
    assert calls == [("verify_contact_request", REQUEST, "012345"), ("verify_contact_request", EXPIRED, "012345")]
