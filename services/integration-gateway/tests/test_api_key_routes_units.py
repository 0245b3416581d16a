"""The API-key routes' pieces that need no broker (issue 15): the request's shape and what the OpenAPI
document says of the routes (every one needs integrations.manage; only the creation answers the key)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from marshmallow import ValidationError
from upgestao_gateway.entrypoints.api_keys.schemas import ApiKeyCreateSchema, ApiKeySchema
from upgestao_gateway.entrypoints.http.openapi import openapi_document
from upgestao_gateway.service import GatewayService


def test_a_key_request_is_loaded_with_an_aware_expiry():
    loaded = ApiKeyCreateSchema().load({"name": "CRM", "scopes": ["customers.read"],
                                        "expires_at": "2026-06-01T12:00:00-03:00"})
    assert loaded["expires_at"] == datetime(2026, 6, 1, 15, tzinfo=UTC)
    assert "expires_at" not in ApiKeyCreateSchema().load({"name": "CRM", "scopes": ["customers.read"]})


@pytest.mark.parametrize(("data", "field"), [
    ({"scopes": ["customers.read"]}, "name"),
    ({"name": "", "scopes": ["customers.read"]}, "name"),
    ({"name": "x" * 101, "scopes": ["customers.read"]}, "name"),
    ({"name": "CRM"}, "scopes"),
    ({"name": "CRM", "scopes": []}, "scopes"),
    ({"name": "CRM", "scopes": "customers.read"}, "scopes"),
    ({"name": "CRM", "scopes": ["customers.read"], "expires_at": "2026-06-01T12:00:00"}, "expires_at"),
    ({"name": "CRM", "scopes": ["customers.read"], "key": "upk_mine"}, "key"),
])
def test_a_malformed_key_request_names_the_field(data, field):
    with pytest.raises(ValidationError) as raised:
        ApiKeyCreateSchema().load(data)
    assert field in raised.value.messages


def test_the_document_says_every_route_needs_integrations_manage_and_only_creation_answers_the_key():
    paths = openapi_document(GatewayService)["paths"]
    operations = {(method.upper(), path): op for path, ops in paths.items() if path.startswith("/v1/api-keys")
                  for method, op in ops.items() if isinstance(op, dict) and "responses" in op}
    assert set(operations) == {("POST", "/v1/api-keys"), ("GET", "/v1/api-keys"), ("GET", "/v1/api-keys/{key}"),
                               ("DELETE", "/v1/api-keys/{key}")}
    assert all("integrations.manage" in str(op) for op in operations.values())
    assert "201" in operations["POST", "/v1/api-keys"]["responses"]
    assert "204" in operations["DELETE", "/v1/api-keys/{key}"]["responses"]
    assert "key" not in ApiKeySchema().fields
