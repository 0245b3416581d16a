"""Every route that touches personal data leaves an audit record (D3), route by route.

The OpenAPI document marks such routes ``x-personal-data: true`` (declared on
each route, see ``upgestao_gateway.entrypoints.http.routing.route``). SCENARIOS below, written by
hand, performs one successful call of each with its own ``X-Request-ID`` and
says which record it must leave: service, action, resource, subject, actor and
exactly its fields. The test polls ``GET /v1/audit?request_id=`` (as the dpo)
until that record arrives, and then requires every personal field the answer
actually carried (a field of the data map, ``GET /v1/data-map``, with a value,
at any depth; an image is the ``photo``) to be named by the request's records.
A personal-data route without a scenario fails: a new route cannot ship
unaudited, or untested for it.

The second test guards the declarations themselves: an operation whose body,
query, answer or path names a field of the data map (``GET /v1/data-map``)
must be declared personal data.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from e2e_api import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    PASSWORD,
    Api,
    address,
    audit_search,
    create_user,
    new_request_id,
    staff_payload,
)
from e2e_identity import create_dpo, fetch_notice, reset_token_of
from e2e_messaging import MESSAGING_SCENARIOS
from e2e_privacy_consent import PRIVACY_CONSENT_SCENARIOS
from e2e_privacy_exports import PRIVACY_EXPORT_SCENARIOS
from e2e_privacy_incidents import PRIVACY_INCIDENT_SCENARIOS
from e2e_privacy_requests import PRIVACY_REQUEST_SCENARIOS
from kombu import Connection, Exchange, Queue
from PIL import Image
from upgestao_kernel.testing import wait_for

pytestmark = pytest.mark.e2e

METHODS = ("get", "post", "put", "patch", "delete")
NEW_PASSWORD = "Outra-Senha-Comprida-Jacaranda-31"
# a staff user's profile as staff_payload fills it: every field of it that an answer carries
PROFILE = ["address", "birth_date", "email", "full_name", "gender", "job_title", "phone"]
CUSTOMER = ["address", "birth_date", "email", "full_name", "gender", "phone"]  # a customer read names them all


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (6, 6), (200, 40, 90)).save(out, "PNG")
    return out.getvalue()


@dataclass
class World:
    """Who acts and on what; scenarios add what they create."""

    api: Api
    amqp_uri: str
    platform: Any  # scripts/upgestao_platform.py's Platform: the notifier's broker user for reset tokens
    admin: str
    admin_id: str
    dpo: str
    user: dict  # an attendant, logged in: own profile and photo
    token: str
    customer: dict
    extra: dict[str, Any] = field(default_factory=dict)
    responses: dict[str, requests.Response] = field(default_factory=dict)  # request id -> its answer

    def call(self, method: str, path: str, token: str | None, rid: str, expect: int, **kwargs):
        headers = {**kwargs.pop("headers", {}), "X-Request-ID": rid}
        response = self.api.request(method, path, token, headers=headers, **kwargs)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        self.responses[rid] = response
        return response


# -- scenarios: (method, path template) -> one successful call and the record it must leave ----------------

Scenario = Callable[[World, str], dict]


def login(w: World, rid: str) -> dict:
    w.call("POST", "/v1/auth/login", None, rid, 200, json={"email": w.user["email"], "password": PASSWORD})
    return {"service": "identity", "action": "login", "resource_type": "session", "subject_id": w.user["id"],
            "actor_id": None, "fields": []}  # nobody is authenticated yet: the subject is who logs in


def change_password(w: World, rid: str) -> dict:
    user, tokens = w.api.create_staff(w.admin, "attendant")
    w.call("POST", "/v1/auth/password", tokens["access_token"], rid, 200,
           json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    return {"service": "identity", "action": "update", "resource_type": "credential", "subject_id": user["id"],
            "actor_id": user["id"], "fields": ["password"]}


def _reset_events(w: World):
    """A queue on identity's reset events: ids only; the notifier fetches the token itself (issue 11)."""
    name = f"e2e-resets-{uuid.uuid4().hex[:8]}"
    connection = Connection(w.amqp_uri)
    queue = Queue(name, exchange=Exchange("identity.events", type="topic", passive=True),
                  routing_key="identity.password_reset_requested.v1", durable=False, auto_delete=False,
                  channel=connection.channel())
    queue.declare()
    return connection, queue


def request_password_reset(w: World, rid: str) -> dict:
    user = create_user(w.api, w.admin, "attendant")
    connection, queue = _reset_events(w)
    try:
        w.call("POST", "/v1/auth/password-reset", None, rid, 202, json={"email": user["email"]})
        notice_id = wait_for(lambda: _notice_for(queue, user["id"]), timeout=20, interval=0.1)
    finally:
        queue.delete()
        connection.release()
    token = reset_token_of(fetch_notice(w.platform, notice_id))
    w.extra["reset"] = (user, token)
    return {"service": "identity", "action": "update", "resource_type": "credential", "subject_id": user["id"],
            "actor_id": None, "fields": []}


def _notice_for(queue: Queue, user_id: str) -> str | None:
    while (message := queue.get(no_ack=True)) is not None:
        body = message.body if isinstance(message.body, dict) else json.loads(message.body)
        if body["data"].get("user_id") == user_id:
            return body["event_id"]  # the notice's id
    return None


def confirm_password_reset(w: World, rid: str) -> dict:
    user, token = w.extra["reset"]  # (request_password_reset runs first)
    w.call("POST", "/v1/auth/password-reset/confirm", None, rid, 204,
           json={"token": token, "new_password": NEW_PASSWORD})
    return {"service": "identity", "action": "update", "resource_type": "credential", "subject_id": user["id"],
            "actor_id": None, "fields": ["password"]}


def read_me(w: World, rid: str) -> dict:
    w.call("GET", "/v1/me", w.token, rid, 200)
    return {"service": "identity", "action": "read", "resource_type": "user", "subject_id": w.user["id"],
            "actor_id": w.user["id"], "fields": PROFILE}


def update_me(w: World, rid: str) -> dict:
    w.call("PATCH", "/v1/me", w.token, rid, 200, json={"gender": f"g-{uuid.uuid4().hex[:6]}"})
    return {"service": "identity", "action": "update", "resource_type": "user", "subject_id": w.user["id"],
            "actor_id": w.user["id"], "fields": ["gender"]}


def create_staff_user(w: World, rid: str) -> dict:
    created = w.call("POST", "/v1/users", w.admin, rid, 201, json=staff_payload("attendant")).json()
    return {"service": "identity", "action": "create", "resource_type": "user", "subject_id": created["id"],
            "actor_id": w.admin_id, "fields": PROFILE}


def list_users(w: World, rid: str) -> dict:
    w.call("GET", "/v1/users", w.admin, rid, 200, params={"limit": 1})
    return {"service": "identity", "action": "list", "resource_type": "user", "actor_id": w.admin_id,
            "fields": PROFILE}


def read_user(w: World, rid: str) -> dict:
    w.call("GET", f"/v1/users/{w.user['id']}", w.admin, rid, 200)
    return {"service": "identity", "action": "read", "resource_type": "user", "subject_id": w.user["id"],
            "actor_id": w.admin_id, "fields": PROFILE}


def update_user(w: World, rid: str) -> dict:
    w.call("PATCH", f"/v1/users/{w.user['id']}", w.admin, rid, 200, json={"job_title": "Atendente sênior"})
    return {"service": "identity", "action": "update", "resource_type": "user", "subject_id": w.user["id"],
            "actor_id": w.admin_id, "fields": ["job_title"]}


def deactivate_user(w: World, rid: str) -> dict:
    user = create_user(w.api, w.admin, "attendant")
    w.call("POST", f"/v1/users/{user['id']}/deactivate", w.admin, rid, 200)
    return {"service": "identity", "action": "update", "resource_type": "user", "subject_id": user["id"],
            "actor_id": w.admin_id, "fields": ["status"]}


def put_photo(w: World, rid: str) -> dict:
    w.call("PUT", f"/v1/users/{w.user['id']}/photo", w.token, rid, 200, data=_png(),
           headers={"Content-Type": "image/png"})
    return {"service": "identity", "action": "update", "resource_type": "user", "subject_id": w.user["id"],
            "actor_id": w.user["id"], "fields": ["photo"]}


def get_photo(w: World, rid: str) -> dict:
    w.call("GET", f"/v1/users/{w.user['id']}/photo", w.token, rid, 200)  # (put_photo runs first)
    return {"service": "identity", "action": "read", "resource_type": "user", "subject_id": w.user["id"],
            "actor_id": w.user["id"], "fields": ["photo"]}


def create_customer(w: World, rid: str) -> dict:
    created = w.call("POST", "/v1/customers", w.token, rid, 201,
                     json={"full_name": "Cliente Completo", "email": f"completo.{uuid.uuid4().hex[:8]}@example.com",
                           "address": address()}).json()
    return {"service": "identity", "action": "create", "resource_type": "customer", "subject_id": created["id"],
            "actor_id": w.user["id"], "fields": ["address", "email", "full_name"]}


def list_customers(w: World, rid: str) -> dict:
    w.call("GET", "/v1/customers", w.token, rid, 200, params={"limit": 100})
    return {"service": "identity", "action": "list", "resource_type": "customer", "subject_id": w.customer["id"],
            "actor_id": w.user["id"], "fields": CUSTOMER}


def search_customers(w: World, rid: str) -> dict:
    w.call("POST", "/v1/customers/search", w.token, rid, 200, json={"email": w.customer["email"]})
    return {"service": "identity", "action": "list", "resource_type": "customer", "subject_id": w.customer["id"],
            "actor_id": w.user["id"], "fields": CUSTOMER}


def read_customer(w: World, rid: str) -> dict:
    w.call("GET", f"/v1/customers/{w.customer['id']}", w.token, rid, 200)
    return {"service": "identity", "action": "read", "resource_type": "customer", "subject_id": w.customer["id"],
            "actor_id": w.user["id"], "fields": CUSTOMER}


def update_customer(w: World, rid: str) -> dict:
    w.call("PATCH", f"/v1/customers/{w.customer['id']}", w.token, rid, 200, json={"gender": "não declarado"})
    return {"service": "identity", "action": "update", "resource_type": "customer", "subject_id": w.customer["id"],
            "actor_id": w.user["id"], "fields": ["gender"]}


def web_sign_in(w: World, rid: str) -> dict:
    """The privacy centre's sign-in (issue 17) is identity's login: the same record; its answer names no one."""
    w.call("POST", "/app/session", None, rid, 200, json={"email": w.user["email"], "password": PASSWORD})
    return {"service": "identity", "action": "login", "resource_type": "session", "subject_id": w.user["id"],
            "actor_id": None, "fields": []}


# In this order (a scenario may use what an earlier one made).
SCENARIOS: dict[tuple[str, str], Scenario] = {
    ("POST", "/v1/auth/login"): login,
    ("POST", "/app/session"): web_sign_in,
    ("POST", "/v1/auth/password"): change_password,
    ("POST", "/v1/auth/password-reset"): request_password_reset,
    ("POST", "/v1/auth/password-reset/confirm"): confirm_password_reset,
    ("GET", "/v1/me"): read_me,
    ("PATCH", "/v1/me"): update_me,
    ("POST", "/v1/users"): create_staff_user,
    ("GET", "/v1/users"): list_users,
    ("GET", "/v1/users/{user_id}"): read_user,
    ("PATCH", "/v1/users/{user_id}"): update_user,
    ("POST", "/v1/users/{user_id}/deactivate"): deactivate_user,
    ("PUT", "/v1/users/{user_id}/photo"): put_photo,
    ("GET", "/v1/users/{user_id}/photo"): get_photo,
    ("POST", "/v1/customers"): create_customer,
    ("GET", "/v1/customers"): list_customers,
    ("POST", "/v1/customers/search"): search_customers,
    ("GET", "/v1/customers/{customer_id}"): read_customer,
    ("PATCH", "/v1/customers/{customer_id}"): update_customer,
}
SCENARIOS.update(MESSAGING_SCENARIOS)  # messaging's routes (issue 13), written beside its other e2e helpers
# privacy's routes (issue 14), each area's beside its e2e helpers; the exports' last (the access bundle holds
# what the scenarios before it did, and starts the access request the requests area's scenario filed)
for _area in (PRIVACY_REQUEST_SCENARIOS, PRIVACY_CONSENT_SCENARIOS, PRIVACY_INCIDENT_SCENARIOS,
              PRIVACY_EXPORT_SCENARIOS):
    assert not set(_area) & set(SCENARIOS), "a scenario written twice"
    SCENARIOS.update(_area)


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(platform):
    return Api(platform.url)


@pytest.fixture(scope="module")
def document(api) -> dict:
    response = api.get("/v1/openapi.json")
    assert response.status_code == 200, response.text
    return response.json()


def operations(document: dict) -> dict[tuple[str, str], dict]:
    return {(method.upper(), path): operation for path, item in document["paths"].items()
            for method, operation in item.items() if method in METHODS}


@pytest.fixture(scope="module")
def world(platform, api) -> World:
    admin = api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    _, dpo_tokens = create_dpo(platform, api, admin)  # no admin may make a dpo (issue 11): the system does
    user, tokens = api.create_staff(admin, "attendant")
    customer = api.post("/v1/customers", admin, json={"full_name": "Cliente Auditado",
                                                      "email": f"auditado.{uuid.uuid4().hex[:8]}@example.com"})
    assert customer.status_code == 201, customer.text
    return World(api=api, amqp_uri=platform.amqp_uri, platform=platform, admin=admin,
                 admin_id=api.get("/v1/me", admin).json()["id"],
                 dpo=dpo_tokens["access_token"], user=user, token=tokens["access_token"], customer=customer.json())


@pytest.fixture(scope="module")
def performed(world) -> dict[tuple[str, str], tuple[str, dict | None, str | None]]:
    """Every scenario run once, in order: route -> (request id, expected record, or the failure)."""
    done = {}
    for route, scenario in SCENARIOS.items():
        rid = new_request_id(f"{route[0]}-{route[1]}")
        try:
            done[route] = (rid, scenario(world, rid), None)
        except AssertionError as failure:
            done[route] = (rid, None, str(failure))
    return done


# -- the tests --------------------------------------------------------------------------------------


def test_every_personal_data_route_has_a_scenario(document):
    declared = operations(document)
    personal = {route for route, operation in declared.items() if operation.get("x-personal-data") is True}
    assert all(isinstance(op.get("x-personal-data"), bool) for op in declared.values()), \
        "every operation must say x-personal-data: true or false"
    missing = sorted(personal - set(SCENARIOS))
    assert not missing, f"new route without audit: add a scenario to SCENARIOS for {missing}"
    stale = sorted(set(SCENARIOS) - personal)
    assert not stale, f"scenarios for routes that are gone or no longer personal data: {stale}"


@pytest.fixture(scope="module")
def personal_fields(world) -> frozenset[str]:
    data_map = world.api.get("/v1/data-map", world.token)
    assert data_map.status_code == 200, data_map.text
    fields = frozenset(entry["field"] for entry in data_map.json()["items"])
    assert {"email", "phone", "full_name", "birth_date", "address", "photo", "password"} <= fields
    return fields


def carried_personal_fields(response: requests.Response, personal: frozenset[str]) -> set[str]:
    """The data map's fields the answer holds with a value, at any depth (an image answer: the photo)."""
    content_type = response.headers.get("Content-Type", "")
    if content_type.startswith("image/"):
        return {"photo"}
    if not response.content or "json" not in content_type:
        return set()
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in personal and item not in (None, "", [], {}):
                    found.add(key)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(response.json())
    return found


def matches(record: dict, expected: dict) -> bool:
    """Every expected value equal; ``fields`` the same set (not a subset)."""
    return all(set(record.get("fields") or ()) == set(value) if key == "fields" else record.get(key) == value
               for key, value in expected.items())


def wait_for_record(world: World, rid: str, expected: dict, what: str) -> tuple[dict, list[dict]]:
    """The request's record matching ``expected`` and every record of the request, polled until they
    arrive (the audit log is fed asynchronously)."""
    deadline = time.monotonic() + 20
    while True:
        records = audit_search(world.api, world.dpo, request_id=rid, limit=500)["items"]
        found = [r for r in records if matches(r, expected)]
        if found or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    shown = [{k: r.get(k) for k in ("service", "action", "resource_type", "subject_id", "actor_id", "fields",
                                     "outcome")} for r in records]
    assert len(found) == 1, f"{what}: expected exactly one record {expected}; the request left {shown}"
    return found[0], records


@pytest.mark.parametrize("route", list(SCENARIOS), ids=lambda r: f"{r[0]} {r[1]}")
def test_a_successful_call_of_the_route_is_audited(world, performed, personal_fields, route):
    rid, expected, failure = performed[route]
    what = f"{route[0]} {route[1]}"
    assert failure is None, f"{what}: the scenario's call did not succeed: {failure}"
    assert {"service", "action", "resource_type", "actor_id", "fields"} <= set(expected), \
        f"{what}: a scenario states who acted and exactly which fields: {expected}"
    record, records = wait_for_record(world, rid, {**expected, "outcome": "success"}, what)
    carried = carried_personal_fields(world.responses[rid], personal_fields)
    audited = set().union(*(set(r["fields"]) for r in records if r["outcome"] == "success"))
    assert carried <= audited, (f"{what}: the answer carried {sorted(carried)} but the request's records name "
                                f"only {sorted(audited)}: {sorted(carried - audited)} left unaudited")


def _names(schema: Any, components: dict, seen: set[str]) -> set[str]:
    """Every property name in ``schema``, nested ones and those behind ``$ref`` included."""
    if isinstance(schema, list):
        return set().union(*(_names(item, components, seen) for item in schema)) if schema else set()
    if not isinstance(schema, dict):
        return set()
    names: set[str] = set()
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[-1]
        if name not in seen:
            names |= _names(components.get(name, {}), components, seen | {name})
    names |= set(schema.get("properties", {}))
    for key in ("properties", "items", "allOf", "anyOf", "oneOf", "additionalProperties"):
        value = schema.get(key)
        if isinstance(value, dict) and key == "properties":
            value = list(value.values())
        names |= _names(value, components, seen)
    return names


def names_of(operation: dict, path: str, components: dict) -> set[str]:
    """What the operation takes or gives: body, answers (2xx), query parameters, literal path segments."""
    schemas = [media.get("schema") for media in operation.get("requestBody", {}).get("content", {}).values()]
    for status, response in operation.get("responses", {}).items():
        if status.startswith("2"):
            schemas += [media.get("schema") for media in response.get("content", {}).values()]
    names = _names(schemas, components, set())
    names |= {p["name"] for p in operation.get("parameters", []) if isinstance(p, dict) and p.get("in") == "query"}
    names |= {segment for segment in path.split("/") if segment and not segment.startswith("{")}
    return names


def carries(name: str, personal_field: str) -> bool:
    """``email``, ``new_password``, ``password-reset``: the name is, or ends with, the field."""
    return name == personal_field or name.endswith("_" + personal_field) or personal_field in name.split("-")


def test_a_route_that_carries_a_personal_field_is_declared_personal_data(document, personal_fields):
    components = document.get("components", {}).get("schemas", {})
    carried = {route: {f for name in names_of(operation, route[1], components) for f in personal_fields
                       if carries(name, f)}
               for route, operation in operations(document).items()}
    assert carried[("GET", "/v1/me")] >= {"email", "full_name"}  # the check sees through $refs
    assert carried[("GET", "/v1/users/{user_id}/photo")] == {"photo"}  # and paths
    assert carried[("GET", "/v1/customers")] >= {"email", "phone"}  # and queries
    assert carried[("POST", "/v1/auth/password-reset/confirm")] == {"password"}  # new_password
    wrong = {f"{method} {path}": sorted(names) for (method, path), names in carried.items()
             if names and operations(document)[(method, path)].get("x-personal-data") is not True}
    assert not wrong, f"routes carrying personal fields but declared x-personal-data: false: {wrong}"
