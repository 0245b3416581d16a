"""The notification routes' pieces that need no broker: the deliveries query (precise 422s naming the
parameter, ids passed on in one form), and what the OpenAPI document says of both routes."""

from __future__ import annotations

import uuid

import pytest
from marshmallow import ValidationError
from upgestao_gateway.entrypoints.http.openapi import openapi_document
from upgestao_gateway.entrypoints.http.problems import validation_failed
from upgestao_gateway.entrypoints.notifications.schemas import (
    STATUSES,
    CampaignSchema,
    DeliveriesQuerySchema,
    DeliveryPageSchema,
    delivery_filters,
)
from upgestao_gateway.service import GatewayService

PATHS = {"/v1/notifications/deliveries", "/v1/notifications/campaigns/{campaign_id}"}
ID = "3f1c0a9e-1b7a-4c55-9a55-1c1f4a2e9d10"


def errors_of(data: dict) -> dict[str, list[str]]:
    """The 422 problem's ``errors`` as {field: [messages]} (what the client sees)."""
    with pytest.raises(ValidationError) as raised:
        DeliveriesQuerySchema().load(data)
    out: dict[str, list[str]] = {}
    for error in validation_failed(raised.value, "query").extensions["errors"]:
        out.setdefault(error["field"], []).append(error["message"])
    return out


def doc_operation(path: str) -> dict:
    return openapi_document(GatewayService)["paths"][path]["get"]


def delivery(**over) -> dict:
    return {"id": str(uuid.uuid4()), "event_id": ID, "event_type": "identity.password_reset_requested.v1",
            "kind": "password_reset", "campaign_id": None, "recipient_id": str(uuid.uuid4()), "status": "sent",
            "attempts": 1, "last_code": 250, "last_error": None, "confirmed": True,
            "message_id": f"<{ID}.x@upgestao>",
            "created_at": "2026-12-02T04:00:00+00:00", "updated_at": "2026-12-02T04:00:01+00:00",
            "sent_at": "2026-12-02T04:00:01+00:00", "next_attempt_at": None, **over}


# -- GET /v1/notifications/deliveries: the query --------------------------------------------


def test_an_empty_query_lists_fifty_and_filters_nothing():
    query = DeliveriesQuerySchema().load({})
    assert query == {"limit": 50}
    assert delivery_filters(query) == {}


def test_every_filter_is_loaded_and_passed_on_only_when_given():
    query = DeliveriesQuerySchema().load({"event_id": ID, "campaign_id": ID, "recipient_id": ID, "status": "sent",
                                          "limit": "200", "cursor": "abc"})
    assert (query["limit"], query["cursor"]) == (200, "abc")
    assert delivery_filters(query) == {"event_id": ID, "campaign_id": ID, "recipient_id": ID, "status": "sent"}
    assert delivery_filters(DeliveriesQuerySchema().load({"status": "hard_failed"})) == {"status": "hard_failed"}


def test_an_id_reaches_the_notifier_in_one_form_whatever_its_case():
    query = DeliveriesQuerySchema().load({"recipient_id": ID.upper()})
    assert delivery_filters(query) == {"recipient_id": ID}


@pytest.mark.parametrize("status", STATUSES)
def test_every_state_is_a_valid_filter(status):
    assert DeliveriesQuerySchema().load({"status": status})["status"] == status


@pytest.mark.parametrize("data, field", [
    ({"event_id": "not-a-uuid"}, "event_id"),
    ({"event_id": ID.replace("-", "")}, "event_id"),  # 32 bare hex digits: uuid.UUID takes it, the document not
    ({"event_id": "{" + ID + "}"}, "event_id"),
    ({"event_id": "urn:uuid:" + ID}, "event_id"),
    ({"event_id": ID + "\n"}, "event_id"),
    ({"campaign_id": ""}, "campaign_id"),
    ({"campaign_id": "Maria Silva"}, "campaign_id"),
    ({"recipient_id": ID[:-1] + "g"}, "recipient_id"),
    ({"status": "delivered"}, "status"),
    ({"status": "SENT"}, "status"),
    ({"status": ""}, "status"),
    ({"limit": "0"}, "limit"),
    ({"limit": "201"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"limit": " 10"}, "limit"),
    ({"cursor": ""}, "cursor"),
    ({"cursor": "c" * 501}, "cursor"),
    ({"email": "someone@example.com"}, "email"),  # an unknown parameter: never a way to search by address
])
def test_a_bad_parameter_is_named(data, field):
    assert set(errors_of(data)) == {field}


def test_the_messages_say_what_is_allowed():
    assert errors_of({"event_id": "x"}) == {"event_id": ["must be a UUID"]}
    assert "soft_failed" in errors_of({"status": "nope"})["status"][0]
    assert "200" in errors_of({"limit": "201"})["limit"][0]


# -- the answers ----------------------------------------------------------------------------


def test_a_page_keeps_only_the_documented_members():
    leaked = delivery(email="maria@example.com", subject="Redefina sua senha", body="...token=abc")
    dumped = DeliveryPageSchema().dump({"items": [leaked], "next_cursor": None})
    assert set(dumped["items"][0]) == set(delivery()) and dumped["next_cursor"] is None


def test_a_campaign_counts_every_state():
    counts = dict.fromkeys(STATUSES, 0) | {"sent": 3, "hard_failed": 1}
    dumped = CampaignSchema().dump({"campaign_id": ID, "total": 4, "counts": counts,
                                    "first_created_at": "2026-12-02T04:00:00+00:00",
                                    "last_updated_at": "2026-12-02T04:10:00+00:00"})
    assert dumped["counts"] == counts and dumped["total"] == 4


# -- the document ---------------------------------------------------------------------------


def test_both_routes_need_notifications_read_and_hold_no_personal_data():
    doc = openapi_document(GatewayService)
    for path in PATHS:
        operation = doc["paths"][path]["get"]
        assert operation["x-permission"] == "notifications.read", path
        assert operation["x-personal-data"] is False, path
        assert operation["tags"] == ["notifications"], path
        assert {"401", "403", "422", "503"} <= set(operation["responses"]), path
    assert "404" in doc["paths"]["/v1/notifications/campaigns/{campaign_id}"]["get"]["responses"]
    assert doc["paths"]["/v1/notifications/campaigns/{campaign_id}"]["parameters"][0]["schema"] == {
        "type": "string", "format": "uuid"}


def test_the_deliveries_query_is_documented_as_the_gateway_checks_it():
    operation = doc_operation("/v1/notifications/deliveries")
    params = {p["name"]: p for p in operation["parameters"] if p.get("in") == "query"}
    assert set(params) == {"event_id", "campaign_id", "recipient_id", "status", "limit", "cursor"}
    assert not any(param["required"] for param in params.values())
    assert params["status"]["schema"]["enum"] == list(STATUSES)
    assert params["limit"]["schema"] == {"type": "integer", "default": 50, "minimum": 1, "maximum": 200}
    for name in ("event_id", "campaign_id", "recipient_id"):
        assert params[name]["schema"]["format"] == "uuid", name
        assert params[name]["schema"]["pattern"].startswith("^[0-9A-Fa-f]{8}-"), name


def test_a_delivery_is_documented_without_address_subject_or_body():
    delivery_schema = openapi_document(GatewayService)["components"]["schemas"]["Delivery"]
    assert set(delivery_schema["properties"]) == set(delivery())
    assert set(delivery_schema["required"]) == set(delivery())
    counts = openapi_document(GatewayService)["components"]["schemas"]["StatusCounts"]
    assert set(counts["properties"]) == set(counts["required"]) == set(STATUSES)
