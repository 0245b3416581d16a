"""Every route × every role, through the gateway (R2.1): deny by default.

The table below is the specification, written out by hand: for each route the
status each built-in role gets with a valid request. A route of the OpenAPI
document missing from the table fails the test, so a new route cannot ship
without its row. Without a token, every protected route is 401.

Every refusal is audited: each request carries its own ``X-Request-ID``, and
each 403 cell must have left exactly one ``denied`` record naming the caller
and its role in the audit log (read as the dpo through ``GET /v1/audit``);
an allowed cell leaves no denial.
"""

from __future__ import annotations

import io
import time
import uuid

import pytest
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, Api, address, audit_search, new_request_id, staff_payload
from e2e_identity import create_dpo
from e2e_integrations import INTEGRATION_PERMISSIONS, integration_path, integration_request_json
from e2e_messaging import messaging_routes
from e2e_privacy_consent import PRIVACY_CONSENT_PERMISSIONS, PRIVACY_CONSENT_PUBLIC, SEEDED_POLICY, consent_request_json
from e2e_privacy_exports import PRIVACY_EXPORT_PERMISSIONS, PRIVACY_EXPORT_PUBLIC
from e2e_privacy_incidents import PRIVACY_INCIDENT_PERMISSIONS, incident_request_json
from e2e_privacy_requests import PRIVACY_REQUEST_PERMISSIONS, PRIVACY_REQUEST_PUBLIC, request_request_json
from PIL import Image

pytestmark = pytest.mark.e2e

ROLES = ("attendant", "supervisor", "dpo", "admin")  # admin last: its calls may change the target

# (method, path template) -> statuses for (attendant, supervisor, dpo, admin)
TABLE: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("GET", "/v1/me"): (200, 200, 200, 200),
    ("PATCH", "/v1/me"): (200, 200, 200, 200),
    ("GET", "/v1/auth/sessions"): (200, 200, 200, 200),
    ("DELETE", "/v1/auth/sessions/{session_id}"): (404, 404, 404, 404),  # someone else's: as good as absent
    ("POST", "/v1/auth/logout"): (204, 204, 204, 204),
    # the privacy centre's sign-out ends the session of its cookie: a bearer token is not one (401; the cookie
    # and its CSRF check: tests/test_web_session_e2e.py)
    ("DELETE", "/app/session"): (401, 401, 401, 401),
    ("POST", "/v1/auth/password"): (403, 403, 403, 403),  # wrong current password: authorised, then refused
    ("GET", "/v1/data-map"): (200, 200, 200, 200),
    ("POST", "/v1/users"): (403, 403, 403, 201),
    ("GET", "/v1/users"): (403, 200, 200, 200),
    ("GET", "/v1/users/{user_id}"): (403, 200, 200, 200),
    ("PATCH", "/v1/users/{user_id}"): (403, 403, 403, 200),
    ("POST", "/v1/users/{user_id}/deactivate"): (403, 403, 403, 200),
    ("PUT", "/v1/users/{user_id}/photo"): (403, 403, 403, 200),  # another user's photo needs users.update
    ("GET", "/v1/users/{user_id}/photo"): (403, 200, 200, 200),  # another user's photo needs users.read
    ("POST", "/v1/customers"): (201, 201, 403, 201),
    ("GET", "/v1/customers"): (200, 200, 200, 200),
    ("POST", "/v1/customers/search"): (200, 200, 200, 200),
    ("GET", "/v1/customers/{customer_id}"): (200, 200, 200, 200),
    ("PATCH", "/v1/customers/{customer_id}"): (200, 200, 403, 200),
    ("GET", "/v1/roles"): (403, 403, 200, 200),
    ("PUT", "/v1/roles/{name}"): (403, 403, 403, 200),
    # the audit log: the dpo's alone (audit.read), not even the admin's
    ("GET", "/v1/audit"): (403, 403, 200, 403),
    ("GET", "/v1/audit/subjects/{subject_id}/summary"): (403, 403, 200, 403),
    ("GET", "/v1/audit/checkpoint"): (403, 403, 200, 403),
    ("GET", "/v1/audit/public-key"): (403, 403, 200, 403),
    ("GET", "/v1/audit/proof/inclusion"): (403, 403, 200, 403),
    ("GET", "/v1/audit/proof/consistency"): (403, 403, 200, 403),
    ("GET", "/v1/audit/export"): (403, 403, 200, 403),
    # the notifier's delivery records: the admin's and the dpo's (notifications.read); a random campaign is absent
    ("GET", "/v1/notifications/deliveries"): (403, 403, 200, 200),
    ("GET", "/v1/notifications/campaigns/{campaign_id}"): (403, 403, 404, 404),
}
# privacy's routes (issue 14): each area's rows, written beside its other e2e helpers (tests/e2e_privacy_*.py)
PRIVACY = {**PRIVACY_REQUEST_PERMISSIONS, **PRIVACY_CONSENT_PERMISSIONS, **PRIVACY_INCIDENT_PERMISSIONS,
           **PRIVACY_EXPORT_PERMISSIONS}
assert not set(PRIVACY) & set(TABLE), "a privacy row written twice"
TABLE.update(PRIVACY)
# the integrations' and API keys' routes (issue 15): tests/e2e_integrations.py
assert not set(INTEGRATION_PERMISSIONS) & set(TABLE), "an integrations row written twice"
TABLE.update(INTEGRATION_PERMISSIONS)
# query parameters a valid request needs (the log holds records by then: the world's creations)
QUERIES: dict[str, dict] = {
    "/v1/audit": {"limit": 5},
    "/v1/audit/proof/inclusion": {"seq": 0, "tree_size": 1},
    "/v1/audit/proof/consistency": {"first": 1, "second": 1},
}
PUBLIC = {
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/v1/ping"), ("GET", "/v1/openapi.json"),
    ("POST", "/v1/auth/login"), ("POST", "/v1/auth/refresh"), ("POST", "/v1/auth/password-reset"),
    ("POST", "/v1/auth/password-reset/confirm"),
    ("POST", "/app/session"), ("GET", "/app/session"), ("POST", "/app/session/refresh"),  # the web session's cookies
} | PRIVACY_REQUEST_PUBLIC | PRIVACY_CONSENT_PUBLIC | PRIVACY_EXPORT_PUBLIC


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 120, 200)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def api(platform):
    return Api(platform.url)


@pytest.fixture(scope="module")
def world(platform, api):
    """Staff of every role, a target user with a photo, a customer."""
    admin = api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    people = {role: api.create_staff(admin, role) for role in ROLES if role not in ("admin", "dpo")}
    people["dpo"] = create_dpo(platform, api, admin)  # no admin may make a dpo (issue 11): the system does
    admin_user = api.get("/v1/me", admin).json()
    people["admin"] = (admin_user, {"access_token": admin})
    target, target_tokens = api.create_staff(admin, "attendant")
    assert api.put(f"/v1/users/{target['id']}/photo", target_tokens["access_token"], data=_png(),
                   headers={"Content-Type": "image/png"}).status_code == 200
    customer = api.post("/v1/customers", admin, json={"full_name": "Cliente Tabela",
                                                      "email": f"tabela.{uuid.uuid4().hex[:8]}@example.com"})
    assert customer.status_code == 201, customer.text
    return {"admin": admin, "people": people, "target": target, "customer": customer.json()}


def _path(world: dict, template: str, target: str | None = None) -> str:
    target = target or world["target"]["id"]
    return integration_path(template.replace("{user_id}", target).replace("{customer_id}", world["customer"]["id"])
            .replace("{session_id}", str(uuid.uuid4())).replace("{name}", "supervisor")
            .replace("{subject_id}", world["target"]["id"]).replace("{campaign_id}", str(uuid.uuid4()))
            .replace("{request_id}", str(uuid.uuid4())).replace("{correction_id}", str(uuid.uuid4()))
            .replace("{incident_id}", str(uuid.uuid4())).replace("{version}", SEEDED_POLICY))


def _request(api: Api, world: dict, role: str, method: str, template: str, request_id: str):
    user, tokens = world["people"][role]
    token = tokens["access_token"]
    target = world["target"]["id"]
    if (method, template) in {("POST", "/v1/auth/logout")}:
        token = api.tokens(user["email"])["access_token"] if role != "admin" else \
            api.tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    if template == "/v1/users/{user_id}/deactivate":
        target = api.create_staff(world["admin"], "attendant")[0]["id"] if role == "admin" else target
    path = _path(world, template, target)
    kwargs: dict = {"params": QUERIES.get(template)}
    if (method, template) == ("PATCH", "/v1/me"):
        kwargs["json"] = {"gender": "não informado"}
    elif (method, template) == ("POST", "/v1/auth/password"):
        kwargs["json"] = {"current_password": "not-the-current-one", "new_password": "Nova-Senha-Comprida-8"}
    elif (method, template) == ("POST", "/v1/users"):
        kwargs["json"] = staff_payload("attendant")
    elif (method, template) == ("PATCH", "/v1/users/{user_id}"):
        kwargs["json"] = {"job_title": f"Atendente {role}"}
    elif (method, template) == ("PUT", "/v1/users/{user_id}/photo"):
        kwargs.update(data=_png(), headers={"Content-Type": "image/png"})
    elif (method, template) == ("POST", "/v1/customers"):
        kwargs["json"] = {"full_name": "Cliente Novo", "email": f"novo.{uuid.uuid4().hex[:8]}@example.com",
                          "address": address()}
    elif (method, template) == ("POST", "/v1/customers/search"):
        kwargs["json"] = {"email": world["customer"]["email"]}
    elif (method, template) == ("PATCH", "/v1/customers/{customer_id}"):
        kwargs["json"] = {"gender": f"g-{role}"}
    elif (method, template) == ("PUT", "/v1/roles/{name}"):
        current = next(r for r in api.get("/v1/roles", world["admin"]).json()["items"] if r["name"] == "supervisor")
        kwargs["json"] = {"permissions": current["permissions"],
                          "self_editable_fields": current["self_editable_fields"]}
    elif (body := integration_request_json(method, template)) is not None:
        kwargs["json"] = body
    elif template.startswith("/v1/privacy/"):
        body = next((found for make in (request_request_json, consent_request_json, incident_request_json)
                     if (found := make(method, template)) is not None), None)
        if body is not None:
            kwargs["json"] = body
    kwargs["headers"] = {**kwargs.get("headers", {}), "X-Request-ID": request_id}
    return api.request(method, path, token, **kwargs)


def test_the_table_covers_every_route_of_the_openapi_document(api):
    document = api.get("/v1/openapi.json").json()
    routes = {(method.upper(), path) for path, item in document["paths"].items() for method in item
              if method in ("get", "post", "put", "patch", "delete")}
    # messaging's routes have their table in test_messaging_visibility_e2e.py (viewers, not only roles)
    assert routes - set(TABLE) - PUBLIC - messaging_routes(document) == set(), \
        "routes without a row in the permission table"
    assert set(TABLE) - routes == set(), "rows for routes that no longer exist"
    for method, path in TABLE:
        operation = document["paths"][path][method.lower()]
        assert operation.get("security"), f"{method} {path} is protected but documents no security"


AUDIT_TIMEOUT_S = 20.0


def _denials(api: Api, dpo_token: str, request_ids: dict[str, str]) -> dict[str, list[dict]]:
    """role -> the denied records of its request, polled until every request has one (or the timeout)."""
    deadline = time.monotonic() + AUDIT_TIMEOUT_S
    while True:
        found = {role: [r for r in audit_search(api, dpo_token, request_id=rid, limit=50)["items"]
                        if r["outcome"] == "denied"] for role, rid in request_ids.items()}
        if all(found.values()) or time.monotonic() >= deadline:
            return found
        time.sleep(0.25)


@pytest.mark.parametrize(("method", "template"), sorted(TABLE))
def test_route_by_role(api, world, method, template):
    got, rids = {}, {}
    for role in ROLES:
        rids[role] = new_request_id(f"{role}-{method}-{template}")
        response = _request(api, world, role, method, template, rids[role])
        got[role] = response.status_code
        if response.status_code == 403:
            assert response.headers["Content-Type"].startswith("application/problem+json")
    assert tuple(got[r] for r in ROLES) == TABLE[(method, template)], got

    # every refusal is in the audit log: one denied record per 403, naming who was refused
    dpo_token = world["people"]["dpo"][1]["access_token"]
    refused = {role: rids[role] for role in ROLES if got[role] == 403}
    denials = _denials(api, dpo_token, refused)
    for role, records in denials.items():
        user = world["people"][role][0]
        assert len(records) == 1, f"{role}: {method} {template} answered 403; its denied records: {records}"
        assert (records[0]["actor_id"], records[0]["actor_role"]) == (user["id"], role), records[0]
    allowed = {role: rids[role] for role in ROLES if got[role] != 403}
    for role, rid in allowed.items():  # (checked once the row's denials, if any, have arrived)
        wrong = [r for r in audit_search(api, dpo_token, request_id=rid, limit=50)["items"] if r["outcome"] == "denied"]
        assert not wrong, f"{role}: {method} {template} answered {got[role]} yet left a denial: {wrong}"


@pytest.mark.parametrize(("method", "template"), sorted(TABLE))
def test_route_without_a_token_is_401(api, world, method, template):
    response = api.request(method, _path(world, template), params=QUERIES.get(template))
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
