"""The production OpenAPI document says what the gateway and identity enforce (issue 9, defect 5):
formats, patterns and lengths of e-mails, phones, dates, tokens, cursors and ids; names client
generators can use (an ASCII title, no enum colliding with a schema)."""

from __future__ import annotations

import re
import uuid

import pytest
from upgestao_gateway.entrypoints.http.openapi import openapi_document
from upgestao_gateway.entrypoints.http.problems import Problem
from upgestao_gateway.entrypoints.http.request import check_path_ids
from upgestao_gateway.entrypoints.http.server import GatewayWebServer
from upgestao_gateway.entrypoints.identity.schemas import (
    CustomerSearchSchema,
    MePatchSchema,
    PasswordResetConfirmSchema,
    RefreshSchema,
    UserCreateSchema,
)
from upgestao_gateway.service import GatewayService


@pytest.fixture(scope="module")
def doc() -> dict:
    return openapi_document(GatewayService)


def schema_of(doc: dict, name: str) -> dict:
    return doc["components"]["schemas"][name]


def ecma_fullmatch(pattern: str, value: str) -> bool:
    """How a JSON Schema validator reads an anchored ``^…$`` pattern: ECMA-262's ``$`` (without the m flag)
    is the end of the value only, never before a final newline as Python's is; for a pattern anchored at
    both ends that is Python's ``fullmatch``."""
    assert pattern.startswith("^") and pattern.endswith("$"), pattern
    return re.fullmatch(pattern, value) is not None


def test_the_title_is_ascii_so_generated_package_names_are(doc):
    assert doc["info"]["title"].isascii()
    assert doc["info"]["x-product-name"] == "UpGestão"


def test_no_inline_enum_takes_the_name_of_a_schema(doc):
    """openapi-python-client names an inline enum <Schema><Property> and drops a schema whose enum
    collides with a component of that name (User.status vs UserStatus dropped every User model)."""
    schemas = doc["components"]["schemas"]
    for name, schema in schemas.items():
        for prop, definition in schema.get("properties", {}).items():
            if "enum" in definition:
                generated = name + "".join(part.capitalize() for part in prop.split("_"))
                assert generated not in schemas, f"{name}.{prop} would collide with the schema {generated}"


@pytest.mark.parametrize("schema, field, fmt", [
    ("UserCreate", "email", "email"), ("CustomerCreate", "email", "email"), ("MePatch", "email", "email"),
    ("PasswordResetRequest", "email", "email"), ("UserCreate", "birth_date", "date"),
    ("UserCreate", "phone", None), ("Address", "country", None),
    ("CustomerPatch", "birth_date", "date"),
])
def test_personal_fields_state_their_format_and_pattern(doc, schema, field, fmt):
    definition = schema_of(doc, schema)["properties"][field]
    assert definition.get("format") == fmt
    assert definition["pattern"]


def test_lengths_and_patterns_of_what_identity_checks(doc):
    create = schema_of(doc, "UserCreate")["properties"]
    assert create["password"]["minLength"] == 10 and create["password"]["maxLength"] == 72
    assert create["email"]["maxLength"] == 254
    assert create["phone"]["pattern"]
    assert create["role"]["enum"] == ["admin", "supervisor", "attendant", "dpo"]
    assert schema_of(doc, "PasswordResetConfirm")["properties"]["token"]["pattern"] == r"^[A-Za-z0-9_-]{43}$"
    assert schema_of(doc, "PasswordChange")["properties"]["new_password"]["minLength"] == 10
    assert "pattern" in schema_of(doc, "Refresh")["properties"]["refresh_token"]
    assert schema_of(doc, "User")["properties"]["status"]["enum"] == ["active", "deactivated"]
    assert schema_of(doc, "UserStatusChange")["properties"]["status"]["enum"] == ["active", "deactivated"]


def test_the_subject_summary_takes_only_a_uuid(doc):
    """Issue 11, finding 8: any text up to 128 characters was a subject id, and a denied summary stored it
    as the audit record's subject (a name, forever). Every path id is now a UUID: anything else in the
    segment is a 422 naming the path parameter, before the request is authenticated or audited."""
    item = doc["paths"]["/v1/audit/subjects/{subject_id}/summary"]
    (parameter,) = item["parameters"]
    assert parameter["schema"] == {"type": "string", "format": "uuid"}
    assert "404" in item["get"]["responses"] and "422" in item["get"]["responses"]
    routes = {route.method_name: route for route in _server_with_routes()._providers}
    url_map = GatewayWebServer.make_url_map.__get__(_server_with_routes())()
    adapter = url_map.bind("gateway")
    route, values = adapter.match("/v1/audit/subjects/3F1C0A9E-1b7a-4c55-9a55-1c1f4a2e9d10/summary")
    assert check_path_ids(route.spec, values) == {"subject_id": uuid.UUID("3f1c0a9e-1b7a-4c55-9a55-1c1f4a2e9d10")}
    for bad in ("Maria Silva", "maria.silva", "a\x00b", "ç", "x" * 129, "%00", "3f1c0a9e1b7a4c559a551c1f4a2e9d10"):
        route, values = adapter.match(f"/v1/audit/subjects/{bad}/summary")
        with pytest.raises(Problem) as raised:
            check_path_ids(route.spec, values)
        problem = raised.value
        assert (problem.status, problem.extensions["errors"]) == (422, [{"field": "subject_id",
                                                                          "message": "must be a UUID"}]), bad
        assert bad not in str(problem.to_dict(instance="")), bad
    assert routes["audit_subject_summary"].spec.path_variables == [("subject_id", "uuid")]


def _server_with_routes():
    """A web server holding the production routes (as nameko would bind them), without a container."""
    from upgestao_gateway.entrypoints.http.openapi import routes_of
    from upgestao_gateway.entrypoints.http.routing import GatewayRoute

    server = GatewayWebServer()
    for name, spec in routes_of(GatewayService):
        provider = GatewayRoute(spec.method, spec.path, personal_data=spec.personal_data, auth=spec.auth,
                                permission=spec.permission, response=spec.response or {"type": "object"},
                                status=spec.status)
        provider.method_name = name
        server._providers.add(provider)
    return server


def test_the_request_id_header_is_documented_as_accepted_whatever_its_value(doc):
    parameter = doc["components"]["parameters"]["RequestId"]
    assert parameter["schema"] == {"type": "string"}  # a malformed one is replaced, never refused
    assert "^[A-Za-z0-9._-]{8,128}$" in parameter["description"]
    assert doc["components"]["headers"]["RequestId"]["schema"]["pattern"] == "^[A-Za-z0-9._-]{8,64}$"


# -- the gateway enforces exactly what the document says ---------------------------------------------

EMAILS = ["x" * 64 + "@" + "d" * 40 + ".example.com", "a\ud800b@example.com", "first.middle.last.2024.x@example.com",
          "m@a.b.c.d.e.example.com.br",
          "maria@example.com", "Maria.Silva+x@sub.example.com.br", "joão@exemplo.com.br", "a@xn--bcher-kva.ch",
          "maria@example.com\n", " maria@example.com", "maria@@example.com", "maria@example", "a..b@example.com",
          ".a@example.com", "maria@-example.com", "maria@example.c", "ma ria@example.com", "maria@exa_mple.com"]
PHONES = ["(11) 91234-5678", "+55 11 91234-5678", "11912345678", "+5511912345678", "1234", "+55 11 9123a-5678",
          "(11) 91234-5678\n", "+" + "1" * 40]
DATES = {"1990-02-28": True, "2000-02-29": True, "1904-02-29": True, "2099-12-31": True, "1900-01-01": True,
         "1900-02-29": False, "1990-02-30": False, "1990-04-31": False, "1990-13-01": False, "1899-12-31": False,
         "0000-01-01": False, "90-01-01": False, "1990-01-01\n": False, "١٩٩٠-٠١-٠١": False}
TOKENS = ["A" * 43, "a-_" + "b" * 40, "A" * 42, "A" * 44, "A" * 42 + "=", "A" * 43 + "\n"]


@pytest.mark.parametrize("value", EMAILS)
def test_an_email_is_refused_by_the_gateway_exactly_when_the_document_refuses_it(doc, value):
    pattern = schema_of(doc, "CustomerCreate")["properties"]["email"]["pattern"]
    documented = ecma_fullmatch(pattern, value) and len(value) <= 254
    assert ("email" not in CustomerSearchSchema().validate({"email": value})) is documented


@pytest.mark.parametrize("value", PHONES)
def test_a_phone_is_refused_by_the_gateway_exactly_when_the_document_refuses_it(doc, value):
    pattern = schema_of(doc, "CustomerCreate")["properties"]["phone"]["pattern"]
    assert ("phone" not in CustomerSearchSchema().validate({"phone": value})) is ecma_fullmatch(pattern, value)


@pytest.mark.parametrize("value, exists", DATES.items())
def test_a_birth_date_is_a_calendar_date_in_the_documented_form(doc, value, exists):
    """The pattern alone says which days exist (1900-2099), so data built from the document is valid."""
    pattern = schema_of(doc, "MePatch")["properties"]["birth_date"]["pattern"]
    accepted = "birth_date" not in MePatchSchema().validate({"birth_date": value})
    assert accepted is exists is ecma_fullmatch(pattern, value)


@pytest.mark.parametrize("value", TOKENS)
def test_a_reset_token_is_what_identity_issues(doc, value):
    pattern = schema_of(doc, "PasswordResetConfirm")["properties"]["token"]["pattern"]
    errors = PasswordResetConfirmSchema().validate({"token": value, "new_password": "x" * 12})
    assert ("token" not in errors) is ecma_fullmatch(pattern, value)


def test_an_email_built_from_the_documented_constraints_passes_the_gateway(doc):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    email = schema_of(doc, "UserCreate")["properties"]["email"]
    assert email["maxLength"] == 254

    @settings(max_examples=300, deadline=None)
    @given(st.from_regex(email["pattern"], fullmatch=True).filter(lambda value: len(value) <= email["maxLength"]))
    def check(value: str) -> None:
        assert CustomerSearchSchema().validate({"email": value}) == {}

    check()


def test_a_refresh_token_is_a_session_id_and_a_secret():
    good = "3f1c0a9e-1b7a-4c55-9a55-1c1f4a2e9d10." + "s" * 43
    assert RefreshSchema().validate({"refresh_token": good}) == {}
    assert "refresh_token" in RefreshSchema().validate({"refresh_token": "x"})
    assert "refresh_token" in RefreshSchema().validate({"refresh_token": good + "\n"})


def test_new_passwords_have_the_policy_lengths():
    base = {"full_name": "A", "email": "a@example.com", "phone": "(11) 91234-5678", "birth_date": "1990-01-01",
            "address": {"street": "R", "number": "1", "district": "D", "city": "C", "state": "SP",
                        "postal_code": "01001-000"}, "job_title": "J", "role": "attendant"}
    assert "password" in UserCreateSchema().validate({**base, "password": "short"})
    assert "password" in UserCreateSchema().validate({**base, "password": "p" * 73})
    assert UserCreateSchema().validate({**base, "password": "p" * 72}) == {}


def test_customer_search_criteria_travel_in_a_body_never_in_the_url(doc):
    """Issue 11, finding 8: an e-mail or a phone in a query string stays in every ingress's access log."""
    listing = doc["paths"]["/v1/customers"]["get"]
    assert {p["name"] for p in listing.get("parameters", []) if p.get("in") == "query"} == {"limit", "cursor"}
    search = doc["paths"]["/v1/customers/search"]["post"]
    body = search["requestBody"]["content"]["application/json"]["schema"]
    properties = schema_of(doc, body["$ref"].rsplit("/", 1)[1])["properties"] if "$ref" in body else body["properties"]
    assert {"email", "phone", "limit", "cursor"} <= set(properties)
    assert not [p for p in search.get("parameters", []) if p.get("in") == "query"]
    assert properties["email"]["format"] == "email" and properties["phone"]["pattern"]


def test_own_email_change_and_role_rules_are_documented(doc):
    assert "current_password" in schema_of(doc, "MePatch")["properties"]
    assert schema_of(doc, "MePatch")["properties"]["current_password"].get("writeOnly") is True
    assert schema_of(doc, "Role")["properties"]["compliance"]["type"] == "boolean"


@pytest.mark.parametrize("value", ["pt-BR", "en", "pt", "EN", "fr", "", "pt_BR"])
def test_a_users_language_is_refused_by_the_gateway_exactly_when_the_document_refuses_it(doc, value):
    for name, schema in (("UserCreate", UserCreateSchema), ("MePatch", MePatchSchema)):
        documented = schema_of(doc, name)["properties"]["locale"]["enum"]
        assert documented == ["pt-BR", "en"]
        errors = schema().validate({"locale": value}, partial=True)
        assert ("locale" not in errors) == (value in documented), (name, value)
    assert schema_of(doc, "UserPatch")["properties"]["locale"]["enum"] == ["pt-BR", "en"]
    assert schema_of(doc, "User")["properties"]["locale"]["enum"] == ["pt-BR", "en"]
    assert "locale" in schema_of(doc, "User")["required"]


def test_an_idempotent_create_documents_the_repeat_answered_with_200(doc):
    """A send whose client_message_id was seen before, and a direct chat that exists already, are answered 200
    with the same body: documented, or a client generated from the document treats it as unexpected."""
    for path in ("/v1/conversations/{conversation_id}/messages", "/v1/chats/{chat_id}/messages", "/v1/chats"):
        responses = doc["paths"][path]["post"]["responses"]
        assert responses["200"]["content"] == responses["201"]["content"], path
    assert "200" not in doc["paths"]["/v1/conversations"]["post"]["responses"]  # a new conversation every time


def test_a_repeat_status_is_another_success():
    from upgestao_gateway.entrypoints.http.spec import declare_route

    for bad in (201, 404, 302):
        with pytest.raises(ValueError, match="repeat_status"):
            declare_route("POST", "/v1/things", personal_data=False, response={"type": "object"}, status=201,
                          repeat_status=bad)
