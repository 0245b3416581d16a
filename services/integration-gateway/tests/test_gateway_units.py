"""Gateway pieces that need no broker: configuration, route declarations,
problem details, bearer parsing, the production OpenAPI document."""

from __future__ import annotations

import pytest
from marshmallow import Schema, ValidationError, fields
from nameko.containers import ServiceContainer
from nameko.exceptions import ConfigurationError
from openapi_spec_validator import validate
from upgestao_gateway.auth import NoAuthenticator, bearer_token
from upgestao_gateway.definition import DEFINITION, http_address
from upgestao_gateway.openapi import openapi_document, routes_of
from upgestao_gateway.problems import Problem, field_errors, validation_failed
from upgestao_gateway.service import GatewayService
from upgestao_gateway.web import accept_request_id, route
from upgestao_kernel.config import ConfigError, load_settings
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
    for bad in (None, "", "short", "x" * 129, "sp ace-1234", "semi;colon1"):
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


def test_no_verifier_is_configured_yet_so_nobody_authenticates():
    assert isinstance(GatewayService.authenticator, NoAuthenticator)
    assert GatewayService.authenticator.authenticate(request_with({"Authorization": "Bearer any"})) is None


# -- route declarations ----------------------------------------------------------------


class Thing(Schema):
    id = fields.Integer()


@pytest.mark.parametrize("kwargs, message", [
    ({}, "must declare its response"),
    ({"response": Thing, "auth": "maybe"}, "auth must be one of"),
    ({"response": Thing, "roles": ("admin",)}, "roles need auth='required'"),
    ({"response": Thing, "body": Thing}, "GET routes take no body"),
    ({"response": "Thing"}, "must be a marshmallow Schema"),
])
def test_route_declaration_mistakes_fail_at_import(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        @route("GET", "/x", **kwargs)
        def handler(self, request):
            pass


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

        @route("GET", "/things/<int:thing_id>", response=Thing)
        def thing(self, request):
            pass

    _start_fails(Broken, "must take")


def test_two_handlers_for_one_route_fail_at_start():
    class Twice:
        name = "twice"

        @route("GET", "/things", response=Thing)
        def one(self, request):
            pass

        @route("GET", "/things", response=Thing)
        def two(self, request):
            pass

    _start_fails(Twice, "declared by both")


# -- the production document --------------------------------------------------------------


def test_production_openapi_document():
    doc = openapi_document(GatewayService)
    validate(doc)
    assert doc["openapi"] == "3.0.3"
    assert set(doc["paths"]) == {"/healthz", "/readyz", "/v1/ping", "/v1/openapi.json"}
    assert [name for name, _ in routes_of(GatewayService)] == ["healthz", "readyz", "openapi", "ping"]
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
