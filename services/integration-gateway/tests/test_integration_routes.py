"""The integrations routes on a running gateway: a fake integrations service (its RPC methods as the contract
names them) on the real broker, the gateway's own database auditing refusals, a fixed table of tokens saying
who holds ``integrations.manage``.

What is proven: 401 without a token and 403 (audited, the service never asked) without the permission on every
route; the register and rotate answers carry the secret with ``Cache-Control: no-store`` (and the register a
``Location``), every other answer never holds it even when the service's record does; 422 naming the field (a
never-shareable field by name, an unknown one unquoted, an endpoint URL never echoed) before the service is
asked; a malformed id in a path is a 404 before the service is asked; the service's own problems (404, 409,
422) answered as it names them; 202 and ``Location`` for resend and recover."""

from __future__ import annotations

import uuid

import pytest
from upgestao_gateway.domain.principal import Principal
from upgestao_gateway.entrypoints.integrations.schemas import NEVER_SHAREABLE, WEBHOOK_TYPES
from upgestao_kernel.errors import ServiceError, conflict, invalid_field, not_found
from upgestao_kernel.nameko_ext import rpc

INTEGRATION = "int_" + "a1b2c3d4e5f60718293a4b5c6d"
OTHER = "int_" + "0" * 26  # unknown to the fake service
FORBIDDEN = "int_" + "f" * 26  # the fake service's own permission check refuses it (defence in depth)
MESSAGE = "msg_" + uuid.UUID("3f1c0a9e-1b7a-4c55-9a55-1c1f4a2e9d10").hex
RECOVERY = "rec_" + uuid.UUID("9b7e4c1a-2f3d-4e5a-8b6c-7d8e9f0a1b2c").hex[:26]
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw2aQq3mGaYkM="
NEW_SECRET = "whsec_" + "C2FVsBQIhrscChlQIMV+b5sSYspob7oD2eI1JRJ8c1A="
ENDPOINT = "https://hooks.example.com/upgestao?token=s3cr3t-endpoint-token"
POLICY = "https://example.com/privacy"
NEW = {"name": "CRM Vendas", "url": ENDPOINT, "events": ["message.created", "conversation.created"],
       "fields": ["email", "conversations"], "privacy_policy_url": POLICY}


def integration(**over) -> dict:
    return {"id": INTEGRATION, "name": "CRM Vendas", "url": ENDPOINT, "events": ["message.created"],
            "fields": ["email"], "privacy_policy_url": POLICY, "status": "enabled", "disabled_reason": None,
            "created_at": "2026-12-02T12:00:00+00:00", "updated_at": "2026-12-02T12:00:00+00:00",
            "secret_rotated_at": None, "previous_secret_valid_until": None, **over}


def attempt(**over) -> dict:
    return {"number": 1, "started_at": "2026-12-02T12:00:00+00:00", "finished_at": "2026-12-02T12:00:01+00:00",
            "status_code": 503, "outcome": "failed", "duration_ms": 812.5, "error": None, **over}


def message(**over) -> dict:
    return {"id": MESSAGE, "integration_id": INTEGRATION, "event_type": "message.created",
            "event_id": str(uuid.uuid4()), "status": "failed", "created_at": "2026-12-02T12:00:00+00:00",
            "next_attempt_at": None, "attempts": [attempt()], **over}


def recovery(**over) -> dict:
    return {"id": RECOVERY, "integration_id": INTEGRATION, "since": "2026-12-01T00:00:00+00:00",
            "status": "running", "total": 3, "queued": 1, "created_at": "2026-12-02T12:00:00+00:00",
            "completed_at": None, **over}


class Calls:
    calls: list[tuple] = []


def known(integration_id: str) -> None:
    if integration_id != INTEGRATION:
        raise not_found("integration")


class FakeIntegrations:
    """The integrations service's RPC as the contract names it; its records hold what must not leave (the
    secret, a payload) to prove the gateway answers only the documented members."""

    name = "integrations"

    @rpc
    def register(self, name, url, events, fields, privacy_policy_url):
        Calls.calls.append(("register", name, url, events, fields, privacy_policy_url))
        if name == "taken":
            raise conflict("An integration of that name exists.")
        if "phone" in fields:  # the service's own check (defence in depth), as a ServiceError naming the field
            raise invalid_field("fields", "phone is not allowed for this account")
        return integration(name=name, url=url, events=events, fields=fields, privacy_policy_url=privacy_policy_url,
                           secret=SECRET, secret_hash="not for the client")

    @rpc
    def integrations(self, limit=50, cursor=None):
        Calls.calls.append(("integrations", limit, cursor))
        return {"items": [integration(secret=SECRET)], "next_cursor": "next-page"}

    @rpc
    def integration(self, integration_id):
        Calls.calls.append(("integration", integration_id))
        if integration_id == FORBIDDEN:
            raise ServiceError("forbidden", "This needs the permission integrations.manage.", 403,
                               {"permission": "integrations.manage"})
        known(integration_id)
        return integration(secret=SECRET, previous_secret="whsec_old")

    @rpc
    def update_integration(self, integration_id, changes):
        Calls.calls.append(("update_integration", integration_id, changes))
        known(integration_id)
        if not changes:
            raise invalid_field("changes", "an object with some of name, url, events, fields, privacy_policy_url, "
                                           "status")
        status = changes.get("status", "enabled")
        return integration(**changes, disabled_reason="manual" if status == "disabled" else None, secret=SECRET)

    @rpc
    def rotate_secret(self, integration_id):
        Calls.calls.append(("rotate_secret", integration_id))
        known(integration_id)
        return {"id": integration_id, "secret": NEW_SECRET, "previous_valid_until": "2026-12-03T12:00:00+00:00",
                "previous_secret": SECRET}

    @rpc
    def webhook_messages(self, integration_id, status=None, limit=50, cursor=None):
        Calls.calls.append(("webhook_messages", integration_id, status, limit, cursor))
        known(integration_id)
        if cursor == "refuse":
            raise invalid_field("cursor", "is not a cursor this service issued")
        return {"items": [message(payload={"data": {"email": "maria.silva@example.com.br"}})], "next_cursor": None}

    @rpc
    def webhook_message(self, integration_id, message_id):
        Calls.calls.append(("webhook_message", integration_id, message_id))
        known(integration_id)
        if message_id != MESSAGE:
            raise not_found("message")
        return message(attempts=[attempt(), attempt(number=2, status_code=None, outcome="timeout",
                                                    error="no answer within 15 s", finished_at=None)],
                       body='{"data":{"email":"maria.silva@example.com.br"}}')

    @rpc
    def resend(self, integration_id, message_id):
        Calls.calls.append(("resend", integration_id, message_id))
        known(integration_id)
        if message_id != MESSAGE:
            raise not_found("message")
        return message(status="pending", next_attempt_at="2026-12-02T12:00:00+00:00")

    @rpc
    def recover(self, integration_id, since):
        Calls.calls.append(("recover", integration_id, since))
        known(integration_id)
        return recovery(since=since)

    @rpc
    def recovery(self, integration_id, job_id):
        Calls.calls.append(("recovery", integration_id, job_id))
        known(integration_id)
        if job_id != RECOVERY:
            raise not_found("recovery")
        return recovery(status="completed", queued=3, completed_at="2026-12-02T12:01:00+00:00")


# the admin holds integrations.manage; the dpo (who reads audit and privacy) does not
PRINCIPALS = {
    "admin-token": Principal(actor_id="user-admin", role="admin", session_id="sess-admin",
                             permissions=frozenset({"integrations.manage", "users.read"})),
    "dpo-token": Principal(actor_id="user-dpo", role="dpo", session_id="sess-dpo",
                           permissions=frozenset({"audit.read", "privacy.review"})),
}
ADMIN = "admin-token"


@pytest.fixture(scope="module")
def gateway(routes_gateway):
    return routes_gateway(FakeIntegrations, PRINCIPALS)


@pytest.fixture(autouse=True)
def calls():
    Calls.calls.clear()
    yield Calls.calls


_I = f"/v1/integrations/{INTEGRATION}"
ROUTES = [
    ("POST", "/v1/integrations", NEW),
    ("GET", "/v1/integrations", None),
    ("GET", _I, None),
    ("PATCH", _I, {"status": "disabled"}),
    ("POST", f"{_I}/secret/rotate", None),
    ("GET", f"{_I}/messages", None),
    ("GET", f"{_I}/messages/{MESSAGE}", None),
    ("POST", f"{_I}/messages/{MESSAGE}/resend", None),
    ("POST", f"{_I}/recover", {"since": "2026-12-01T00:00:00Z"}),
    ("GET", f"{_I}/recoveries/{RECOVERY}", None),
]


def call(gateway, method: str, path: str, body: dict | None = None, token: str | None = ADMIN, **kwargs):
    return gateway.request(method, path, token, json=body, **kwargs)


# -- access -------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, path, body", ROUTES)
def test_without_a_token_it_is_401(gateway, calls, method, path, body):
    gateway.problem(call(gateway, method, path, body, token=None), 401, "unauthenticated")
    assert calls == []


@pytest.mark.parametrize("method, path, body", ROUTES)
def test_without_integrations_manage_it_is_403_audited_and_the_service_is_not_asked(gateway, calls, method, path,
                                                                                     body):
    request_id = f"integ-denied-{uuid.uuid4().hex[:12]}"
    response = call(gateway, method, path, body, token="dpo-token", headers={"X-Request-ID": request_id})
    assert gateway.problem(response, 403, "forbidden")["permission"] == "integrations.manage"
    assert calls == []
    (record,) = gateway.denials(request_id)
    assert (record["service"], record["actor_id"], record["outcome"]) == ("gateway", "user-dpo", "denied")


# -- the registry ---------------------------------------------------------------------------


def test_registering_answers_201_with_the_secret_once_not_to_be_cached_and_its_location(gateway, calls):
    response = call(gateway, "POST", "/v1/integrations", NEW)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["secret"] == SECRET and "secret_hash" not in body
    assert (body["id"], body["fields"], body["privacy_policy_url"]) == (INTEGRATION, ["email", "conversations"], POLICY)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Location"] == f"/v1/integrations/{INTEGRATION}"
    assert calls == [("register", "CRM Vendas", ENDPOINT, ["message.created", "conversation.created"],
                      ["email", "conversations"], POLICY)]


def test_every_other_answer_leaves_the_secret_out_even_when_the_service_gives_it(gateway):
    listed = call(gateway, "GET", "/v1/integrations")
    assert listed.status_code == 200, listed.text
    assert listed.json()["next_cursor"] == "next-page"
    (item,) = listed.json()["items"]
    assert set(item) == set(integration())
    one = call(gateway, "GET", _I)
    assert one.status_code == 200 and set(one.json()) == set(integration())
    changed = call(gateway, "PATCH", _I, {"name": "CRM 2"})
    assert changed.status_code == 200 and set(changed.json()) == set(integration())
    for response in (listed, one, changed):
        assert "whsec_" not in response.text
        assert "no-store" not in response.headers.get("Cache-Control", "")


def test_a_list_passes_its_page_on(gateway, calls):
    assert call(gateway, "GET", "/v1/integrations", params={"limit": "10", "cursor": "c-1"}).status_code == 200
    assert call(gateway, "GET", "/v1/integrations").status_code == 200
    assert calls == [("integrations", 10, "c-1"), ("integrations", 50, None)]


def test_rotating_answers_the_new_secret_once_not_to_be_cached(gateway, calls):
    response = call(gateway, "POST", f"{_I}/secret/rotate")
    assert response.status_code == 200, response.text
    assert response.json() == {"id": INTEGRATION, "secret": NEW_SECRET,
                               "previous_valid_until": "2026-12-03T12:00:00+00:00"}
    assert response.headers["Cache-Control"] == "no-store"
    assert calls == [("rotate_secret", INTEGRATION)]


def test_patch_passes_only_what_was_given(gateway, calls):
    response = call(gateway, "PATCH", _I, {"status": "disabled", "fields": []})
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["disabled_reason"]) == ("disabled", "manual")
    assert calls == [("update_integration", INTEGRATION, {"status": "disabled", "fields": []})]


@pytest.mark.parametrize("field", NEVER_SHAREABLE)
def test_a_field_the_policy_never_shares_is_a_422_naming_it(gateway, calls, field):
    response = call(gateway, "POST", "/v1/integrations", {**NEW, "fields": ["email", field]})
    body = gateway.problem(response, 422, "validation-error")
    (error,) = body["errors"]
    assert error["field"] == "fields" and field in error["message"]
    assert calls == []
    body = gateway.problem(call(gateway, "PATCH", _I, {"fields": [field]}), 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == ["fields"] and field in body["errors"][0]["message"]
    assert calls == []


@pytest.mark.parametrize("change, field", [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 121}, "name"),
    ({"url": "ftp://hooks.example.com/x"}, "url"),
    ({"url": "/relative/path"}, "url"),
    ({"url": "https://user:pass@hooks.example.com/"}, "url"),
    ({"url": "https://hooks.example.com/" + "a" * 2048}, "url"),
    ({"url": "https://hooks.example.com:99999/"}, "url"),
    ({"privacy_policy_url": "mailto:dpo@example.com"}, "privacy_policy_url"),
    ({"events": []}, "events"),
    ({"events": ["message.sent"]}, "events"),
    ({"events": ["message.created", 7]}, "events"),
    ({"events": "*"}, "events"),
    ({"events": ["*"] * 21}, "events"),
    ({"fields": ["password"]}, "fields"),
    ({"fields": ["email", None]}, "fields"),
    ({"url": "https://[::1]:8443/hook"}, "url"),
    ({"status": "paused"}, "status"),
    ({"secret": SECRET}, "secret"),  # an unknown member: a secret is never chosen by the client
])
def test_a_bad_setting_is_a_422_naming_it_before_the_service_is_asked(gateway, calls, change, field):
    body = gateway.problem(call(gateway, "POST", "/v1/integrations", {**NEW, **change}), 422, "validation-error")
    assert {e["field"] for e in body["errors"]} == {field}
    body = gateway.problem(call(gateway, "PATCH", _I, change), 422, "validation-error")
    assert {e["field"] for e in body["errors"]} == {field}
    assert calls == []


@pytest.mark.parametrize("missing", sorted(NEW))
def test_every_setting_is_required_to_register(gateway, calls, missing):
    body = {k: v for k, v in NEW.items() if k != missing}
    problem = gateway.problem(call(gateway, "POST", "/v1/integrations", body), 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == [missing]
    assert calls == []


def test_an_empty_patch_is_the_services_422(gateway, calls):
    body = gateway.problem(call(gateway, "PATCH", _I, {}), 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == ["changes"]
    assert calls == [("update_integration", INTEGRATION, {})]


def test_names_are_kept_once_and_star_with_others_is_every_type(gateway, calls):
    body = {**NEW, "events": ["message.created", "*", "message.created"], "fields": ["name", "email", "name"]}
    assert call(gateway, "POST", "/v1/integrations", body).status_code == 201
    assert call(gateway, "PATCH", _I, {"events": ["message.edited", "message.edited"]}).status_code == 200
    assert calls[0][3:5] == (["*"], ["name", "email"])
    assert calls[1] == ("update_integration", INTEGRATION, {"events": ["message.edited"]})


def test_a_refused_value_is_not_echoed_back(gateway):
    response = call(gateway, "POST", "/v1/integrations",
                    {**NEW, "url": "ftp://hooks.example.com/?token=s3cr3t-endpoint-token", "fields": ["maria.silva"]})
    body = gateway.problem(response, 422, "validation-error")
    assert {e["field"] for e in body["errors"]} == {"url", "fields"}
    assert "s3cr3t" not in response.text and "maria" not in response.text


@pytest.mark.parametrize("webhook_type", [*WEBHOOK_TYPES, "*"])
def test_every_webhook_type_may_be_subscribed(gateway, calls, webhook_type):
    response = call(gateway, "POST", "/v1/integrations", {**NEW, "events": [webhook_type]})
    assert response.status_code == 201, response.text
    assert calls[0][3] == [webhook_type]


def test_the_services_own_refusals_are_answered_as_its_problems(gateway):
    body = gateway.problem(call(gateway, "POST", "/v1/integrations", {**NEW, "fields": ["phone"]}), 422,
                           "validation-error")
    assert body["errors"] == [{"field": "fields", "message": "phone is not allowed for this account"}]
    gateway.problem(call(gateway, "POST", "/v1/integrations", {**NEW, "name": "taken"}), 409, "conflict")
    gateway.problem(call(gateway, "GET", f"/v1/integrations/{OTHER}"), 404, "not-found")
    body = gateway.problem(call(gateway, "GET", f"{_I}/messages", params={"cursor": "refuse"}), 422,
                           "validation-error")
    assert body["errors"] == [{"field": "cursor", "message": "is not a cursor this service issued"}]


def test_the_services_own_permission_check_is_answered_as_a_403(gateway, calls):
    body = gateway.problem(call(gateway, "GET", f"/v1/integrations/{FORBIDDEN}"), 403, "forbidden")
    assert body["permission"] == "integrations.manage"
    assert calls == [("integration", FORBIDDEN)]


# -- ids in paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("method, path", [
    ("GET", "/v1/integrations/int_short"),
    ("GET", "/v1/integrations/maria.silva@example.com.br"),
    ("GET", f"/v1/integrations/{INTEGRATION.upper().replace('INT_', 'INT-')}"),
    ("GET", f"/v1/integrations/{uuid.uuid4()}"),
    ("PATCH", "/v1/integrations/int_" + "a" * 27),
    ("POST", "/v1/integrations/int_/secret/rotate"),
    ("GET", f"{_I}/messages/not-a-message"),
    ("GET", f"{_I}/messages/msg_short"),
    ("POST", f"{_I}/messages/{MESSAGE}x!/resend"),
    ("GET", f"{_I}/recoveries/rec_1"),
    ("GET", f"{_I}/recoveries/job-1"),
    ("GET", f"{_I}/recoveries/{uuid.uuid4()}"),
    ("GET", f"/v1/integrations/int_bad/messages/{MESSAGE}"),
    ("POST", "/v1/integrations/int_bad/recover"),
])
def test_a_malformed_id_is_a_404_before_the_service_is_asked(gateway, calls, method, path):
    body = {"name": "x"} if method == "PATCH" else ({"since": "2026-12-01T00:00:00Z"} if path.endswith("recover")
                                                     else None)
    gateway.problem(call(gateway, method, path, body), 404, "not-found")
    assert calls == []


def test_a_refusal_audits_no_subject_whatever_the_path_holds(gateway, calls):
    # an integration (or a message, a job) is nobody: the denial's record names no subject, and a malformed
    # id sent by someone without the permission (an address here) is not kept in the audit log
    for path in (f"{_I}/messages/{MESSAGE}", "/v1/integrations/maria.silva@example.com.br"):
        request_id = f"integ-denied-{uuid.uuid4().hex[:12]}"
        response = call(gateway, "GET", path, token="dpo-token", headers={"X-Request-ID": request_id})
        gateway.problem(response, 403, "forbidden")
        (record,) = gateway.denials(request_id)
        assert record["subject_id"] is None and record["resource_id"] is None
        assert "maria" not in str(record)
    assert calls == []


def test_an_unknown_recovery_of_the_right_shape_is_the_services_404(gateway, calls):
    job = "rec_" + uuid.uuid4().hex[:26]
    gateway.problem(call(gateway, "GET", f"{_I}/recoveries/{job}"), 404, "not-found")  # the fake knows only one
    assert calls == [("recovery", INTEGRATION, job)]


# -- messages ---------------------------------------------------------------------------------


def test_messages_are_listed_with_their_attempts_and_never_a_payload(gateway, calls):
    response = call(gateway, "GET", f"{_I}/messages", params={"status": "failed", "limit": "20"})
    assert response.status_code == 200, response.text
    (item,) = response.json()["items"]
    assert set(item) == set(message()) and item["attempts"] == [attempt()]
    assert "maria" not in response.text
    assert calls == [("webhook_messages", INTEGRATION, "failed", 20, None)]


@pytest.mark.parametrize("params, field", [
    ({"status": "delivered"}, "status"),
    ({"limit": "0"}, "limit"),
    ({"limit": "201"}, "limit"),
    ({"cursor": ""}, "cursor"),
    ({"email": "maria@example.com"}, "email"),
])
def test_a_bad_messages_parameter_is_a_422_naming_it(gateway, calls, params, field):
    body = gateway.problem(call(gateway, "GET", f"{_I}/messages", params=params), 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == [field]
    assert calls == []


def test_a_message_is_read_with_every_attempt(gateway, calls):
    response = call(gateway, "GET", f"{_I}/messages/{MESSAGE}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == set(message()) and "maria" not in response.text
    assert [a["outcome"] for a in body["attempts"]] == ["failed", "timeout"]
    assert body["attempts"][1] == attempt(number=2, status_code=None, outcome="timeout",
                                          error="no answer within 15 s", finished_at=None)
    unknown = "msg_" + uuid.uuid4().hex
    gateway.problem(call(gateway, "GET", f"{_I}/messages/{unknown}"), 404, "not-found")
    assert calls == [("webhook_message", INTEGRATION, MESSAGE), ("webhook_message", INTEGRATION, unknown)]


def test_resending_is_a_202_with_the_message_queued_again(gateway, calls):
    response = call(gateway, "POST", f"{_I}/messages/{MESSAGE}/resend")
    assert response.status_code == 202, response.text
    assert (response.json()["id"], response.json()["status"]) == (MESSAGE, "pending")
    assert calls == [("resend", INTEGRATION, MESSAGE)]


# -- recovery ---------------------------------------------------------------------------------


def test_recovering_is_a_202_job_with_its_location_and_its_progress_can_be_read(gateway, calls):
    response = call(gateway, "POST", f"{_I}/recover", {"since": "2026-12-01T00:00:00-03:00"})
    assert response.status_code == 202, response.text
    assert response.json() == recovery(since="2026-12-01T00:00:00-03:00")
    location = response.headers["Location"]
    assert location == f"{_I}/recoveries/{RECOVERY}"
    progress = call(gateway, "GET", location)
    assert progress.status_code == 200, progress.text
    assert (progress.json()["status"], progress.json()["queued"]) == ("completed", 3)
    assert calls == [("recover", INTEGRATION, "2026-12-01T00:00:00-03:00"), ("recovery", INTEGRATION, RECOVERY)]


@pytest.mark.parametrize("body", [{}, {"since": "yesterday"}, {"since": "2026-12-01T00:00:00"}, {"since": None}])
def test_recover_needs_an_instant_with_its_offset(gateway, calls, body):
    problem = gateway.problem(call(gateway, "POST", f"{_I}/recover", body), 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == ["since"]
    assert calls == []
