"""Gateway pieces that need no broker: configuration, route declarations,
problem details, bearer parsing, the production OpenAPI document."""

from __future__ import annotations

import pytest
from marshmallow import Schema, ValidationError, fields
from nameko.containers import ServiceContainer
from nameko.exceptions import ConfigurationError
from openapi_spec_validator import validate
from upgestao_gateway.access.authentication import NoAuthenticator, bearer_token
from upgestao_gateway.definition import DEFINITION, http_address
from upgestao_gateway.domain.permissions import audit_action, resource_type, singular, subject_of
from upgestao_gateway.domain.principal import Principal
from upgestao_gateway.entrypoints.dependencies import JwtAuthentication
from upgestao_gateway.entrypoints.http.bodies import BinaryResponse, RawBody
from upgestao_gateway.entrypoints.http.openapi import openapi_document, routes_of
from upgestao_gateway.entrypoints.http.problems import PROBLEM_TYPES, Problem, field_errors, validation_failed
from upgestao_gateway.entrypoints.http.request import accept_request_id
from upgestao_gateway.entrypoints.http.responses import problem_from_exception
from upgestao_gateway.entrypoints.http.routing import GatewayRoute, route
from upgestao_gateway.service import GatewayService
from upgestao_kernel.config import ConfigError, load_settings
from upgestao_kernel.errors import ServiceError, conflict, invalid_field
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request


def request_with(headers: dict) -> Request:
    return Request(EnvironBuilder(path="/", headers=headers).get_environ())


# -- configuration ------------------------------------------------------------------


def test_http_address_defaults_to_loopback():
    assert http_address({}) == "127.0.0.1:8000"
    assert http_address({"GATEWAY_HTTP_ADDRESS": ""}) == "127.0.0.1:8000"


@pytest.mark.parametrize("good", ["0.0.0.0:8080", "gateway.internal:1", "localhost:65535"])
def test_http_address_accepts_host_and_port(good):
    assert http_address({"GATEWAY_HTTP_ADDRESS": good}) == good


@pytest.mark.parametrize("bad", ["8000", ":8000", "host:", "host:0", "host:65536", "host:99999", "host:http",
                                 "[::1]:8000", "host:80:80", "ho st:80", "http://host:80"])
def test_http_address_rejects_anything_else(bad):
    with pytest.raises(ConfigError) as raised:
        http_address({"GATEWAY_HTTP_ADDRESS": bad})
    assert raised.value.variable == "GATEWAY_HTTP_ADDRESS"


def test_definition_passes_the_address_to_nameko(monkeypatch):
    monkeypatch.setenv("GATEWAY_HTTP_ADDRESS", "0.0.0.0:9000")
    settings = load_settings("gateway", {"UPGESTAO_ENV": "test"})
    assert DEFINITION.name == "gateway"
    assert DEFINITION.publishes_events is False
    assert DEFINITION.nameko_config(settings) == {"WEB_SERVER_ADDRESS": "0.0.0.0:9000"}
    assert DEFINITION.load_class() is GatewayService


# -- request ids, problems, auth -----------------------------------------------------


def test_request_id_is_accepted_only_when_well_formed():
    assert accept_request_id("abc.DEF_123-x") == "abc.DEF_123-x"
    assert accept_request_id("r" * 64) == "r" * 64  # what an event's correlation_id keeps
    for bad in (None, "", "short", "x" * 65, "x" * 129, "sp ace-1234", "semi;colon1"):
        assert accept_request_id(bad) != bad


def test_field_errors_are_flattened_to_dotted_paths():
    messages = {
        "title": ["Missing data for required field."],
        "lines": {1: {"quantity": ["Too small.", "Not even."]}},
        "address": {"_schema": ["Inconsistent."], "city": ["Required."]},
        "_schema": ["Bad combination."],
    }
    assert field_errors(messages) == [
        {"field": "title", "message": "Missing data for required field."},
        {"field": "lines.1.quantity", "message": "Too small."},
        {"field": "lines.1.quantity", "message": "Not even."},
        {"field": "address", "message": "Inconsistent."},
        {"field": "address.city", "message": "Required."},
        {"field": "_schema", "message": "Bad combination."},
    ]


def test_validation_problem_carries_the_errors():
    class Inner(Schema):
        n = fields.Integer(required=True)

    class Outer(Schema):
        inner = fields.Nested(Inner, required=True)

    with pytest.raises(ValidationError) as raised:
        Outer().load({"inner": {"n": "x"}})
    problem = validation_failed(raised.value)
    doc = problem.to_dict(instance="/v1/x", request_id="req-00000001")
    assert doc == {
        "type": "https://upgestao.com.br/problems/validation-error",
        "title": "Validation error",
        "status": 422,
        "detail": "The request body is invalid.",
        "instance": "/v1/x",
        "request_id": "req-00000001",
        "errors": [{"field": "inner.n", "message": "Not a valid integer."}],
    }


def test_bearer_token_parsing():
    assert bearer_token(request_with({})) is None
    assert bearer_token(request_with({"Authorization": "Bearer abc.DEF-_~+/="})) == "abc.DEF-_~+/="
    assert bearer_token(request_with({"Authorization": "bearer  tok"})) == "tok"
    for bad in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Bearer tok\u00e9n", "Token abc"):
        with pytest.raises(Problem) as raised:
            bearer_token(request_with({"Authorization": bad}))
        assert raised.value.status == 401
        assert raised.value.headers["WWW-Authenticate"] == 'Bearer realm="upgestao", error="invalid_request"'


def test_the_gateway_verifies_identitys_access_tokens():
    assert isinstance(GatewayService.authenticator, JwtAuthentication)
    assert NoAuthenticator().authenticate(request_with({"Authorization": "Bearer any"})) is None


def test_a_principal_can_what_its_permissions_say():
    principal = Principal("user-1", "attendant", "sess-1", frozenset({"profile.read", "profile.update"}))
    assert principal.can("profile.update")
    assert not principal.can("users.read")
    assert not Principal("user-2", "nobody").can("profile.read")


# -- service errors ----------------------------------------------------------------------


def test_a_service_error_becomes_its_problem_with_its_members():
    problem = problem_from_exception(invalid_field("birth_date", "Must be in the past."))
    assert (problem.status, problem.title) == (422, "Validation error")
    assert problem.to_dict("/v1/me") == {
        "type": "https://upgestao.com.br/problems/validation-error", "title": "Validation error", "status": 422,
        "detail": "The request body is invalid.", "instance": "/v1/me",
        "errors": [{"field": "birth_date", "message": "Must be in the past."}],
    }
    assert problem_from_exception(conflict("Already registered.")).status == 409


def test_retry_after_of_a_service_error_becomes_a_header():
    problem = problem_from_exception(ServiceError("too-many-requests", "Slow down.", 429, {"retry_after": 30}))
    assert (problem.status, problem.title) == (429, "Too many requests")
    assert problem.headers["Retry-After"] == "30"
    assert problem.to_dict("/x")["retry_after"] == 30
    # nameko turns scalars into strings on the way
    stringified = problem_from_exception(ServiceError("too-many-requests", "Slow down.", "429", {"retry_after": "30"}))
    assert stringified.headers["Retry-After"] == "30" and stringified.to_dict("/x")["retry_after"] == 30
    for odd in ("30s", "-1", 2.5, True, -1):
        assert "Retry-After" not in problem_from_exception(
            ServiceError("too-many-requests", "Slow down.", 429, {"retry_after": odd})).headers


def test_a_service_error_cannot_override_the_gateways_members():
    error = ServiceError("conflict", "Taken.", 409, {"status": 200, "type": "x", "instance": "/y", "title": "T",
                                                     "request_id": "r", "headers": {"A": "b"}, "field": "email"})
    doc = problem_from_exception(error).to_dict("/v1/users", request_id="req-00000001")
    assert doc == {"type": "https://upgestao.com.br/problems/conflict", "title": "Conflict", "status": 409,
                   "detail": "Taken.", "instance": "/v1/users", "request_id": "req-00000001", "field": "email"}


def test_a_401_service_error_carries_the_bearer_challenge():
    problem = problem_from_exception(ServiceError("invalid-credentials", "Wrong e-mail or password.", 401))
    assert problem.headers["WWW-Authenticate"] == 'Bearer realm="upgestao"'
    problem = problem_from_exception(ServiceError("invalid-token", "The refresh token is invalid.", 401))
    assert problem.headers["WWW-Authenticate"] == 'Bearer realm="upgestao", error="invalid_token"'


@pytest.mark.parametrize("slug, status", [("Bad Slug", 400), ("conflict", 200), ("conflict", 700)])
def test_a_malformed_service_error_is_a_generic_500(slug, status):
    assert problem_from_exception(ServiceError(slug, "?", status)).status == 500


def test_the_problem_types_services_need_are_known():
    expected = {"correction-required": 403, "conflict": 409, "too-many-requests": 429, "invalid-credentials": 401,
                "invalid-token": 401, "gone": 410, "request-already-applied": 409, "idempotency-key-reused": 422}
    assert {slug: PROBLEM_TYPES[slug][0] for slug in expected} == expected


# -- route declarations ----------------------------------------------------------------


class Thing(Schema):
    id = fields.Integer()


@pytest.mark.parametrize("kwargs, message", [
    ({}, "must declare its response"),
    ({"response": Thing, "auth": "maybe"}, "auth must be one of"),
    ({"response": Thing, "auth": "required"}, "needs permission="),
    ({"response": Thing, "permission": "things.read"}, "a permission needs auth='required'"),
    ({"response": Thing, "auth": "required", "permission": "Things"}, "must look like 'users.read'"),
    ({"response": Thing, "auth": "required", "permission": "things.read.all"}, "must look like"),
    ({"response": Thing, "auth": "required", "roles": ("admin",)}, "roles= is gone"),
    ({"response": Thing, "body": Thing}, "GET routes take no body"),
    ({"response": "Thing"}, "must be a marshmallow Schema"),
])
def test_route_declaration_mistakes_fail_at_import(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        @route("GET", "/x", personal_data=False, **kwargs)
        def handler(self, request):
            pass


def test_auth_required_without_a_permission_fails_at_declaration():
    with pytest.raises(ValueError, match="access is denied by default"):
        @route("GET", "/v1/users", personal_data=False, auth="required", response=Thing)
        def users(self, request):
            pass


def test_route_declarations_record_the_permission_and_bodies():
    declared = {"personal_data": False, "auth": "required", "permission": "profile.update",
                "body": RawBody(["IMAGE/PNG"], max_bytes=10), "response": BinaryResponse(("image/png",))}
    entrypoint = GatewayRoute("PUT", "/v1/me/photo", keyed=False, **declared)
    spec = entrypoint.spec
    assert spec.permission == "profile.update"
    assert spec.body.content_types == ("image/png",)
    assert spec.max_body_bytes == 10
    assert spec.error_statuses == [400, 401, 403, 413, 415, 429, 500, 503]
    # a signed-in caller's write is keyed by default: a reused key (422), an answer not kept (409)
    keyed = GatewayRoute("PUT", "/v1/me/photo", **declared).spec
    assert keyed.keyed and keyed.error_statuses == [400, 401, 403, 409, 413, 415, 422, 429, 500, 503]
    assert not GatewayRoute("POST", "/v1/auth/login", personal_data=False, response=Thing).spec.keyed
    assert GatewayRoute("GET", "/x", personal_data=False, response=Thing).spec.max_body_bytes == 1 << 20


@pytest.mark.parametrize("content_types, max_bytes", [
    ((), 1), (("image/*",), 1), (("png",), 1), (("image/png; q=1",), 1), (("image/png",), 0), (("image/png",), "1"),
])
def test_raw_body_declaration_mistakes(content_types, max_bytes):
    with pytest.raises(ValueError):
        RawBody(content_types, max_bytes=max_bytes)


@pytest.mark.parametrize("method, path, permission, action, resource", [
    ("GET", "/v1/users", "users.read", "list", "user"),
    ("GET", "/v1/users/<uuid:user_id>", "users.read", "read", "user"),
    ("GET", "/v1/me/profile", "profile.read", "read", "profile"),
    ("POST", "/v1/users", "users.create", "create", "user"),
    ("PUT", "/v1/me/photo", "profile.update", "update", "profile"),
    ("PATCH", "/v1/categories/<int:category_id>", "categories.update", "update", "category"),
    ("DELETE", "/v1/addresses/<int:address_id>", "addresses.delete", "delete", "address"),
])
def test_denials_are_audited_with_an_action_and_resource_type(method, path, permission, action, resource):
    spec = GatewayRoute(method, path, personal_data=False, auth="required", permission=permission, response=Thing).spec
    assert audit_action(spec) == action
    assert resource_type(permission) == resource


def test_the_subject_of_a_denial_is_a_path_id():
    spec = GatewayRoute("GET", "/v1/orgs/<org_id>/users/<user_id>", personal_data=True, auth="required",
                        permission="users.read", response=Thing).spec
    assert subject_of(spec, {"org_id": "o-1", "user_id": "u-1"}) == "u-1"
    spec = GatewayRoute("GET", "/v1/things/<int:thing_id>/<name>", personal_data=False, auth="required",
                        permission="things.read", response=Thing).spec
    assert subject_of(spec, {"thing_id": 7, "name": "x"}) == "7"
    assert subject_of(GatewayRoute("GET", "/v1/me", personal_data=False, auth="required", permission="profile.read",
                                   response=Thing).spec, {}) is None
    assert [singular(w) for w in ("status", "class", "boxes", "users", "me")] == ["status", "class", "box", "user",
                                                                                   "me"]


def _start_fails(service_cls, match: str) -> None:
    container = ServiceContainer(service_cls, {"WEB_SERVER_ADDRESS": "127.0.0.1:0"})
    try:
        with pytest.raises(ConfigurationError, match=match):
            container.start()
    finally:
        container.kill()


def test_a_handler_without_the_path_variables_fails_at_start():
    class Broken:
        name = "broken"

        @route("GET", "/things/<int:thing_id>", personal_data=False, response=Thing)
        def thing(self, request):
            pass

    _start_fails(Broken, "must take")


def test_authenticated_routes_need_a_database_to_audit_refusals():
    class NoDatabase:
        name = "no-database"

        @route("GET", "/things", personal_data=False, auth="required", permission="things.read", response=Thing)
        def things(self, request):
            pass

    _start_fails(NoDatabase, "no `db`")


def test_two_handlers_for_one_route_fail_at_start():
    class Twice:
        name = "twice"

        @route("GET", "/things", personal_data=False, response=Thing)
        def one(self, request):
            pass

        @route("GET", "/things", personal_data=False, response=Thing)
        def two(self, request):
            pass

    _start_fails(Twice, "declared by both")


# -- the production document --------------------------------------------------------------


def test_production_openapi_document():
    doc = openapi_document(GatewayService)
    validate(doc)
    assert doc["openapi"] == "3.0.3"
    assert {"/healthz", "/readyz", "/v1/ping", "/v1/openapi.json", "/v1/me", "/v1/auth/login"} <= set(doc["paths"])
    names = [name for name, _ in routes_of(GatewayService)]
    assert {"healthz", "readyz", "openapi", "ping", "login", "me", "create_user"} <= set(names)
    me = doc["paths"]["/v1/me"]["get"]
    assert me["security"] and me["x-permission"] == "profile.read"
    assert "Problem" in doc["components"]["schemas"]
    ready = doc["paths"]["/readyz"]["get"]["responses"]
    assert ready["503"]["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    ping = doc["paths"]["/v1/ping"]["get"]
    assert ping["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Ping"}
    assert "security" not in ping


def test_bad_address_stops_the_gateway_with_a_message_naming_the_variable(tmp_path):
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "UPGESTAO_DATA_DIR": str(tmp_path), "GATEWAY_HTTP_ADDRESS": "nowhere"}
    for command in ("check-config", "run"):
        result = subprocess.run([sys.executable, "-m", "upgestao_gateway", command], env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, command
        assert "GATEWAY_HTTP_ADDRESS" in result.stderr and "Traceback" not in result.stderr


def test_a_connection_sends_without_waiting_for_acknowledgements():
    """Nagle's algorithm off: an answer over eventlet's 16 KiB write buffer goes out in two writes, and the second
    waited for the client's delayed acknowledgement of the first (40 ms)."""
    import socket

    from upgestao_gateway.entrypoints.http.server import GatewayProtocol

    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        with client, conn:
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            protocol = GatewayProtocol.__new__(GatewayProtocol)
            protocol.request = conn
            protocol.setup()
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            protocol.rfile.close()
            protocol.wfile.close()
    left, right = socket.socketpair()  # not TCP: nothing to switch off, and no error
    with left, right:
        protocol = GatewayProtocol.__new__(GatewayProtocol)
        protocol.request = left
        protocol.setup()
