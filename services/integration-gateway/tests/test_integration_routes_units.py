"""The integrations routes' pieces that need no broker: the settings' validation (a never-shareable field named,
an unknown one not quoted, URLs), the shapes of ids in paths, and what the OpenAPI document says of the routes
(every one needs integrations.manage; only register and rotate answer a secret)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError
from upgestao_gateway.entrypoints.http.openapi import openapi_document
from upgestao_gateway.entrypoints.http.problems import Problem, validation_failed
from upgestao_gateway.entrypoints.integrations.routes import integration_id_of, message_id_of, recovery_id_of
from upgestao_gateway.entrypoints.integrations.schemas import (
    ENDPOINT_URL_PATTERN,
    NEVER_SHAREABLE,
    SHAREABLE_FIELDS,
    WEB_URL_PATTERN,
    WEBHOOK_TYPES,
    IntegrationCreateSchema,
    IntegrationPatchSchema,
    IntegrationSchema,
    RecoverSchema,
    WebhookMessageSchema,
    check_web_url,
)
from upgestao_gateway.service import GatewayService

NEW = {"name": "CRM", "url": "https://hooks.example.com/in", "events": ["*"], "fields": ["email"],
       "privacy_policy_url": "https://example.com/privacy"}


def errors_of(schema, data: dict) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as raised:
        schema.load(data)
    out: dict[str, list[str]] = {}
    for error in validation_failed(raised.value).extensions["errors"]:
        out.setdefault(error["field"], []).append(error["message"])
    return out


# -- settings -------------------------------------------------------------------------------


def test_a_registration_is_loaded_as_given():
    assert IntegrationCreateSchema().load(NEW) == NEW
    every = {**NEW, "events": list(WEBHOOK_TYPES), "fields": list(SHAREABLE_FIELDS)}
    assert IntegrationCreateSchema().load(every) == every
    assert IntegrationCreateSchema().load({**NEW, "fields": []})["fields"] == []  # ids only


@pytest.mark.parametrize("field", NEVER_SHAREABLE)
def test_a_never_shareable_field_is_named_in_the_message(field):
    errors = errors_of(IntegrationCreateSchema(), {**NEW, "fields": ["name", field]})
    assert list(errors) == ["fields"] and errors["fields"][0].startswith(f"{field} can never be shared")


@pytest.mark.parametrize("value", ["password", "locale", "Email", "e-mail", "full_name", "<script>"])
def test_an_unknown_field_is_refused_without_quoting_it(value):
    errors = errors_of(IntegrationCreateSchema(), {**NEW, "fields": [value]})
    assert list(errors) == ["fields"] and value not in errors["fields"][0]
    assert "email, name, phone, conversations" in errors["fields"][0]


@pytest.mark.parametrize("url", [
    "http://hooks.example.com/in", "https://hooks.example.com", "https://127.0.0.1:8443/x", "http://a:65535",
    "HTTPS://HOOKS.EXAMPLE.COM/in?a=b#c", "https://hooks.example.com/caminho/ação?q=ç",
])
def test_an_absolute_web_url_is_accepted_and_matches_the_documented_pattern(url):
    check_web_url(url)  # the SSRF guard (which addresses) is the integrations service's, at each connection
    assert re.fullmatch(WEB_URL_PATTERN, url)


@pytest.mark.parametrize("url", [
    "", "hooks.example.com/in", "//hooks.example.com/in", "ftp://hooks.example.com/", "javascript:alert(1)",
    "https:///path-only", "https://user@hooks.example.com/", "https://user:pw@hooks.example.com/",
    "https://hooks.example.com:0/", "https://hooks.example.com:65536/", "https://hooks.example.com:port/",
    "https://hooks.example.com/a b", "https://hooks.example.com/\n", "https://[::1/", "https://[::1]:8443/x",
    "https://-host/", "https://ho_st/", "https://hooks.example.com/\x7f",
])
def test_anything_else_is_refused_and_the_documented_pattern_refuses_it_too(url):
    with pytest.raises(ValidationError) as raised:
        check_web_url(url)
    assert url.strip() == "" or url not in str(raised.value.messages)
    assert not re.fullmatch(WEB_URL_PATTERN, url)


@given(st.from_regex(WEB_URL_PATTERN, fullmatch=True))
def test_whatever_the_documented_pattern_matches_is_accepted(url):
    check_web_url(url)


@given(st.from_regex(ENDPOINT_URL_PATTERN, fullmatch=True))
def test_whatever_the_endpoints_documented_pattern_matches_is_accepted(url):
    check_web_url(url, ENDPOINT_URL_PATTERN)
    assert IntegrationCreateSchema().load({**NEW, "url": url})["url"] == url


@pytest.mark.parametrize("url, message", [
    ("https://hooks.example.com/in#frag", "must not have a fragment (it is never sent)"),
    ("https://hooks.example.com/in#", "must not have a fragment (it is never sent)"),
    ("https://hooks..example.com/in", "must name its host by name"),
    ("https://" + "a" * 64 + ".example.com/", "must name its host by name"),
])
def test_an_endpoint_has_no_fragment_and_a_host_of_proper_labels(url, message):
    (error,) = errors_of(IntegrationCreateSchema(), {**NEW, "url": url})["url"]
    assert error.startswith(message)
    assert IntegrationCreateSchema().load({**NEW, "privacy_policy_url": "https://example.com/p#lgpd"})


def test_a_host_label_of_63_characters_is_a_host():
    check_web_url("https://" + "a" * 63 + ".example.com/", ENDPOINT_URL_PATTERN)


def test_a_url_is_at_most_2048_characters():
    url = "https://hooks.example.com/" + "a" * (2048 - len("https://hooks.example.com/"))
    assert IntegrationCreateSchema().load({**NEW, "url": url})["url"] == url
    assert list(errors_of(IntegrationCreateSchema(), {**NEW, "url": url + "a"})) == ["url"]


def test_a_patch_takes_any_setting_and_the_status():
    assert IntegrationPatchSchema().load({"status": "disabled"}) == {"status": "disabled"}
    assert IntegrationPatchSchema().load({"fields": ["phone"], "events": ["subject.erased"]}) == {
        "fields": ["phone"], "events": ["subject.erased"]}
    assert IntegrationPatchSchema().load({}) == {}  # nothing to change: the service's 422 (changes)
    assert list(errors_of(IntegrationPatchSchema(), {"status": "deleted"})) == ["status"]
    assert list(errors_of(IntegrationPatchSchema(), {"disabled_reason": "manual"})) == ["disabled_reason"]


def test_recover_takes_an_aware_instant():
    assert RecoverSchema().load({"since": "2026-12-01T00:00:00Z"})["since"].utcoffset().total_seconds() == 0
    assert list(errors_of(RecoverSchema(), {"since": "2026-12-01"})) == ["since"]


def test_answers_keep_only_the_documented_members():
    record = {"id": "int_" + "a" * 26, "name": "CRM", "url": NEW["url"], "events": ["*"], "fields": [],
              "privacy_policy_url": NEW["privacy_policy_url"], "status": "enabled", "disabled_reason": None,
              "created_at": "t", "updated_at": "t", "secret_rotated_at": None, "previous_secret_valid_until": None}
    assert IntegrationSchema().dump({**record, "secret": "whsec_x", "secret_hash": "h"}) == record
    message = {"id": "msg_" + "b" * 32, "integration_id": record["id"], "event_type": "message.created",
               "event_id": "e", "status": "pending", "created_at": "t", "next_attempt_at": None}
    assert WebhookMessageSchema().dump({**message, "payload": "{...}", "body": "x"}) == message


# -- ids in paths ---------------------------------------------------------------------------


def test_ids_of_the_services_shapes_pass():
    assert integration_id_of("int_0123456789abcdefABCDEF0123") == "int_0123456789abcdefABCDEF0123"
    assert message_id_of("msg_" + "0f" * 16) == "msg_" + "0f" * 16
    assert recovery_id_of("rec_" + "0f" * 13) == "rec_" + "0f" * 13  # as the service mints them (26 hex)


@pytest.mark.parametrize("check, value", [
    (integration_id_of, "int_" + "a" * 25), (integration_id_of, "int_" + "a" * 27), (integration_id_of, "a" * 30),
    (integration_id_of, "int_" + "a" * 25 + "-"), (integration_id_of, "int_" + "a" * 26 + "\n"),
    (message_id_of, "msg_"), (message_id_of, "msg_" + "a" * 65), (message_id_of, "int_" + "a" * 26),
    (recovery_id_of, "rec_x"), (recovery_id_of, "9b7e4c1a2f3d4e5a8b6c7d8e9f0a1b2c"),
    (recovery_id_of, "9b7e4c1a-2f3d-4e5a-8b6c-7d8e9f0a1b2c"),
])
def test_an_id_of_another_shape_is_not_found(check, value):
    with pytest.raises(Problem) as raised:
        check(value)
    assert raised.value.status == 404 and value not in str(raised.value.to_dict(instance="/"))


# -- the OpenAPI document -------------------------------------------------------------------


def operations() -> dict[tuple[str, str], dict]:
    paths = openapi_document(GatewayService)["paths"]
    return {(method, path): op for path, item in paths.items() if path.startswith("/v1/integrations")
            for method, op in item.items() if method in ("get", "post", "patch")}


def test_every_route_is_documented_and_needs_integrations_manage():
    ops = operations()
    assert set(ops) == {
        ("post", "/v1/integrations"), ("get", "/v1/integrations"),
        ("get", "/v1/integrations/{integration}"), ("patch", "/v1/integrations/{integration}"),
        ("post", "/v1/integrations/{integration}/secret/rotate"),
        ("get", "/v1/integrations/{integration}/messages"),
        ("get", "/v1/integrations/{integration}/messages/{message}"),
        ("post", "/v1/integrations/{integration}/messages/{message}/resend"),
        ("post", "/v1/integrations/{integration}/recover"),
        ("get", "/v1/integrations/{integration}/recoveries/{recovery}"),
    }
    for op in ops.values():
        assert op["x-permission"] == "integrations.manage" and op["tags"] == ["integrations"]
        assert op["x-personal-data"] is False
        assert {"401", "403", "503"} <= set(op["responses"])


def test_the_statuses_are_documented():
    ops = operations()
    assert "201" in ops[("post", "/v1/integrations")]["responses"]
    assert "202" in ops[("post", "/v1/integrations/{integration}/messages/{message}/resend")]["responses"]
    assert "202" in ops[("post", "/v1/integrations/{integration}/recover")]["responses"]
    for key, op in ops.items():
        if "{integration}" in key[1]:
            assert "404" in op["responses"], key


def test_only_register_and_rotate_answer_a_secret():
    schemas = openapi_document(GatewayService)["components"]["schemas"]
    with_secret = {name for name, schema in schemas.items() if "secret" in schema.get("properties", {})}
    assert with_secret == {"IntegrationCreated", "RotatedSecret"}
    refs = {key: str(op["responses"][next(s for s in op["responses"] if s.startswith("2"))])
            for key, op in operations().items()}
    assert {key for key, ref in refs.items() if "IntegrationCreated" in ref or "RotatedSecret" in ref} == {
        ("post", "/v1/integrations"), ("post", "/v1/integrations/{integration}/secret/rotate")}


def test_the_settings_document_their_closed_lists_and_the_url_pattern():
    schema = openapi_document(GatewayService)["components"]["schemas"]["IntegrationCreate"]
    assert schema["properties"]["fields"]["items"]["enum"] == list(SHAREABLE_FIELDS)
    assert schema["properties"]["events"]["items"]["enum"] == [*WEBHOOK_TYPES, "*"]
    assert schema["properties"]["events"]["minItems"] == 1
    assert schema["properties"]["url"]["pattern"] == ENDPOINT_URL_PATTERN
    assert schema["properties"]["privacy_policy_url"]["pattern"] == WEB_URL_PATTERN
    assert set(schema["required"]) == set(NEW)


def test_names_are_kept_once_and_star_with_others_is_every_type():
    loaded = IntegrationCreateSchema().load({**NEW, "events": ["message.created", "*"], "fields": ["phone", "email",
                                                                                                  "phone"]})
    assert (loaded["events"], loaded["fields"]) == (["*"], ["phone", "email"])
    loaded = IntegrationPatchSchema().load({"events": ["message.edited", "message.created", "message.edited"]})
    assert loaded["events"] == ["message.edited", "message.created"]


def test_a_refused_name_is_reported_on_the_list_itself():
    assert errors_of(IntegrationCreateSchema(), {**NEW, "fields": ["email", "gender", "photo"]}) == {
        "fields": ["gender can never be shared with an integration (allowed: email, name, phone, conversations)"]}
    assert list(errors_of(IntegrationCreateSchema(), {**NEW, "events": ["*", 3]})) == ["events"]
