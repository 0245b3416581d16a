"""The audit routes' pieces that need no broker: query schemas (precise 422s),
the export's line generator, and the ``personal_data`` declaration every route
must make (and the OpenAPI document shows)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from marshmallow import ValidationError
from upgestao_gateway.entrypoints.audit.routes import EXPORT_PAGE, AuditRoutes, ExportBroken
from upgestao_gateway.entrypoints.audit.schemas import (
    AuditQuerySchema,
    ConsistencyQuerySchema,
    ExportQuerySchema,
    InclusionQuerySchema,
    audit_filters,
)
from upgestao_gateway.entrypoints.http.bodies import StreamResponse
from upgestao_gateway.entrypoints.http.openapi import openapi_document, routes_of
from upgestao_gateway.entrypoints.http.problems import validation_failed
from upgestao_gateway.entrypoints.http.routing import GatewayRoute, route
from upgestao_gateway.service import GatewayService
from upgestao_kernel.audit import ACTIONS, OUTCOMES

AUDIT_PATHS = {
    "/v1/audit", "/v1/audit/subjects/{subject_id}/summary", "/v1/audit/checkpoint", "/v1/audit/public-key",
    "/v1/audit/proof/inclusion", "/v1/audit/proof/consistency", "/v1/audit/export",
}


def errors_of(schema, data: dict) -> dict[str, list[str]]:
    """The 422 problem's ``errors`` as {field: [messages]} (what the client sees)."""
    with pytest.raises(ValidationError) as raised:
        schema.load(data)
    out: dict[str, list[str]] = {}
    for error in validation_failed(raised.value, "query").extensions["errors"]:
        out.setdefault(error["field"], []).append(error["message"])
    return out


# -- personal_data: a declaration every route makes -------------------------------------


@pytest.mark.parametrize("options", [
    {"response": {"type": "object"}},
    {"response": {"type": "object"}, "auth": "required", "permission": "things.read"},
    {"status": 204, "auth": "required", "permission": "things.delete"},
])
def test_a_route_without_personal_data_is_refused_at_import(options):
    with pytest.raises(ValueError, match="must declare personal_data=True or False"):
        @route("GET", "/v1/things", **options)
        def things(self, request):
            pass


@pytest.mark.parametrize("value", [None, "yes", 1, 0, "false"])
def test_personal_data_must_be_a_boolean(value):
    with pytest.raises(ValueError, match="personal_data"):
        GatewayRoute("GET", "/v1/things", personal_data=value, response={"type": "object"})


def test_the_declaration_is_kept_on_the_route():
    assert GatewayRoute("GET", "/x", personal_data=True, response={"type": "object"}).spec.personal_data is True
    assert GatewayRoute("GET", "/x", personal_data=False, response={"type": "object"}).spec.personal_data is False


def test_every_operation_of_the_document_says_whether_it_is_personal_data():
    doc = openapi_document(GatewayService)
    flags = {(method.upper(), path): operation["x-personal-data"]
             for path, item in doc["paths"].items() for method, operation in item.items() if method != "parameters"}
    assert all(isinstance(flag, bool) for flag in flags.values())
    assert {path for _, path in flags} >= AUDIT_PATHS
    for (method, path), flag in flags.items():
        if path in AUDIT_PATHS or path in ("/healthz", "/readyz", "/v1/ping", "/v1/openapi.json", "/v1/data-map"):
            assert flag is False, (method, path)
    for personal in [("GET", "/v1/me"), ("PATCH", "/v1/me"), ("POST", "/v1/auth/login"), ("GET", "/v1/users"),
                     ("POST", "/v1/customers"), ("GET", "/v1/users/{user_id}/photo"), ("POST", "/v1/auth/password")]:
        assert flags[personal] is True, personal
    assert len(flags) == len(routes_of(GatewayService))


def test_the_audit_routes_need_audit_read_and_the_export_streams_json_lines():
    doc = openapi_document(GatewayService)
    for path in AUDIT_PATHS:
        operation = doc["paths"][path]["get"]
        assert operation["x-permission"] == "audit.read" and operation["tags"] == ["audit"], path
        assert {"401", "403", "503"} <= set(operation["responses"]), path
    export = doc["paths"]["/v1/audit/export"]["get"]["responses"]["200"]
    assert set(export["content"]) == {"application/x-ndjson"}
    assert "header" in export["description"]
    search = doc["paths"]["/v1/audit"]["get"]
    params = {p["name"]: p for p in search["parameters"] if p.get("in") == "query"}
    assert set(params) == {"subject_id", "actor_id", "action", "service", "resource_type", "outcome", "request_id",
                           "from", "to", "limit", "cursor"}
    assert params["action"]["schema"]["enum"] == list(ACTIONS)
    assert params["outcome"]["schema"]["enum"] == list(OUTCOMES)
    assert params["limit"]["schema"] == {"type": "integer", "default": 50, "minimum": 1, "maximum": 500}
    assert params["from"]["schema"]["format"] == "date-time"
    inclusion = doc["paths"]["/v1/audit/proof/inclusion"]["get"]
    assert {p["name"]: p["required"] for p in inclusion["parameters"] if p.get("in") == "query"} == {
        "seq": True, "tree_size": True}


def test_a_stream_response_needs_one_explicit_media_type():
    assert StreamResponse("Application/X-NDJSON").content_type == "application/x-ndjson"
    for bad in ("ndjson", "application/*", "application/x-ndjson; charset=utf-8"):
        with pytest.raises(ValueError):
            StreamResponse(bad)


# -- GET /v1/audit ------------------------------------------------------------------


def test_an_empty_query_lists_fifty():
    assert AuditQuerySchema().load({}) == {"limit": 50}


def test_every_filter_is_loaded_and_passed_on_only_when_given():
    query = AuditQuerySchema().load({
        "subject_id": "s-1", "actor_id": "a-1", "action": "read", "service": "identity", "resource_type": "user",
        "outcome": "denied", "request_id": "req-12345678", "from": "2025-03-01T00:00:00-03:00",
        "to": "2025-03-02T00:00:00Z", "limit": "500", "cursor": "abc",
    })
    assert query["limit"] == 500 and query["cursor"] == "abc"
    assert query["from_"] == datetime(2025, 3, 1, 3, 0, tzinfo=UTC)
    assert audit_filters(query) == {
        "subject_id": "s-1", "actor_id": "a-1", "action": "read", "service": "identity", "resource_type": "user",
        "outcome": "denied", "request_id": "req-12345678",
        "from": "2025-03-01T00:00:00-03:00", "to": "2025-03-02T00:00:00+00:00",
    }
    assert audit_filters(AuditQuerySchema().load({"actor_id": "a-1"})) == {"actor_id": "a-1"}


@pytest.mark.parametrize("action", ACTIONS)
def test_every_kernel_action_is_a_valid_filter(action):
    assert AuditQuerySchema().load({"action": action})["action"] == action


@pytest.mark.parametrize("data, field", [
    ({"action": "nope"}, "action"),
    ({"action": "READ"}, "action"),
    ({"outcome": "ok"}, "outcome"),
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"limit": "2.5"}, "limit"),
    ({"limit": "1_0"}, "limit"),
    ({"limit": " 10"}, "limit"),
    ({"limit": ""}, "limit"),
    ({"subject_id": ""}, "subject_id"),
    ({"actor_id": "x" * 129}, "actor_id"),
    ({"cursor": ""}, "cursor"),
    ({"from": "yesterday"}, "from"),
    ({"from": "2025-03-01"}, "from"),
    ({"to": "2025-03-01T00:00:00"}, "to"),  # no offset: which instant?
    ({"from": "2025-03-02T00:00:00Z", "to": "2025-03-01T00:00:00Z"}, "from"),
    ({"email": "someone@example.com"}, "email"),  # unknown parameter
])
def test_a_bad_parameter_is_named(data, field):
    assert set(errors_of(AuditQuerySchema(), data)) == {field}


def test_the_messages_say_what_is_allowed():
    assert "read" in errors_of(AuditQuerySchema(), {"action": "nope"})["action"][0]
    assert errors_of(AuditQuerySchema(), {"from": "2025-03-02T00:00:00Z", "to": "2025-03-01T00:00:00Z"}) == {
        "from": ["must not be after to"]}
    assert "500" in errors_of(AuditQuerySchema(), {"limit": "501"})["limit"][0]


def test_an_instant_period_and_offsets_are_accepted():
    same = "2025-03-01T12:00:00Z"
    assert AuditQuerySchema().load({"from": same, "to": same})["to"] == datetime(2025, 3, 1, 12, tzinfo=UTC)
    loaded = AuditQuerySchema().load({"from": "2025-03-01T09:00:00-03:00", "to": "2025-03-01T12:00:00.5+00:00"})
    assert loaded["from_"].utcoffset() == timedelta(hours=-3)
    assert loaded["from_"] < loaded["to"]


def test_a_plus_sent_unencoded_is_read_back():
    # "+03:00" in a URL that was not percent-encoded arrives as " 03:00"
    loaded = AuditQuerySchema().load({"from": "2025-03-01T09:00:00 03:00"})
    assert loaded["from_"].utcoffset() == timedelta(hours=3)
    assert audit_filters(loaded)["from"] == datetime(2025, 3, 1, 9, tzinfo=timezone(timedelta(hours=3))).isoformat()


# -- proofs and export ----------------------------------------------------------------------


def test_inclusion_needs_both_integers_and_a_seq_inside_the_tree():
    assert InclusionQuerySchema().load({"seq": "0", "tree_size": "1"}) == {"seq": 0, "tree_size": 1}
    assert set(errors_of(InclusionQuerySchema(), {})) == {"seq", "tree_size"}
    assert set(errors_of(InclusionQuerySchema(), {"seq": "a", "tree_size": "3"})) == {"seq"}
    assert set(errors_of(InclusionQuerySchema(), {"seq": "1.0", "tree_size": "3"})) == {"seq"}
    assert set(errors_of(InclusionQuerySchema(), {"seq": "-1", "tree_size": "3"})) == {"seq"}
    assert set(errors_of(InclusionQuerySchema(), {"seq": "0", "tree_size": "0"})) == {"tree_size"}
    assert set(errors_of(InclusionQuerySchema(), {"seq": "0", "tree_size": "9" * 30})) == {"tree_size"}
    assert errors_of(InclusionQuerySchema(), {"seq": "3", "tree_size": "3"}) == {"seq": ["must be less than tree_size"]}


def test_consistency_needs_first_not_after_second():
    assert ConsistencyQuerySchema().load({"first": "0", "second": "1"}) == {"first": 0, "second": 1}
    assert ConsistencyQuerySchema().load({"first": "5", "second": "5"}) == {"first": 5, "second": 5}
    assert set(errors_of(ConsistencyQuerySchema(), {"first": "1"})) == {"second"}
    assert set(errors_of(ConsistencyQuerySchema(), {"first": "x", "second": "2"})) == {"first"}
    assert set(errors_of(ConsistencyQuerySchema(), {"first": "0", "second": "0"})) == {"second"}
    assert errors_of(ConsistencyQuerySchema(), {"first": "3", "second": "2"}) == {"first": ["must not exceed second"]}


def test_the_export_takes_a_period_only():
    assert ExportQuerySchema().load({}) == {}
    assert set(errors_of(ExportQuerySchema(), {"limit": "3"})) == {"limit"}
    assert set(errors_of(ExportQuerySchema(), {"from": "2025-03-02T00:00:00Z", "to": "2025-03-01T00:00:00Z"})) == {
        "from"}


class FakePrivacy:
    def __init__(self, records: int, *, skip: int | None = None, stop_at: int | None = None) -> None:
        self.records, self.skip, self.stop_at = records, skip, stop_at
        self.calls: list[tuple[int, int]] = []

    def audit_export_records(self, start: int, end: int) -> list[dict]:
        self.calls.append((start, end))
        if self.stop_at is not None and start >= self.stop_at:
            return []
        return [{"seq": seq, "leaf_hash": f"h{seq}", "record": {"audit_id": str(seq)}}
                for seq in range(start, min(end, self.records)) if seq != self.skip]


class FakeRpc:
    def __init__(self, privacy: FakePrivacy) -> None:
        self.privacy = privacy


class FakeGateway(AuditRoutes):
    def __init__(self, privacy: FakePrivacy) -> None:
        self.rpc = FakeRpc(privacy)


def test_the_export_is_the_header_then_every_record_a_line_fetched_a_page_at_a_time():
    privacy = FakePrivacy(records=5000)
    header = {"format": "upgestao-audit-export/1", "first_seq": 10, "end_seq": 2510, "checkpoint": {}}
    chunks = list(FakeGateway(privacy)._export_lines(header, 10, 2510))
    assert privacy.calls == [(10, 10 + EXPORT_PAGE), (1010, 2010), (2010, 2510)]
    assert len(chunks) == 4  # the header, then one chunk per page
    text = "".join(chunks)
    assert text.endswith("\n") and "\n\n" not in text and ": " not in text.splitlines()[1]
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0] == header
    assert [line["seq"] for line in lines[1:]] == list(range(10, 2510))


def test_an_empty_export_is_its_header():
    privacy = FakePrivacy(records=0)
    assert list(FakeGateway(privacy)._export_lines({"first_seq": 0, "end_seq": 0}, 0, 0)) == [
        '{"first_seq":0,"end_seq":0}\n']
    assert privacy.calls == []


@pytest.mark.parametrize("privacy", [FakePrivacy(records=100, skip=42), FakePrivacy(records=100, stop_at=0),
                                     FakePrivacy(records=50)])
def test_an_answer_that_does_not_continue_the_export_breaks_it(privacy):
    lines = FakeGateway(privacy)._export_lines({}, 0, 100)
    assert next(lines) == "{}\n"
    with pytest.raises(ExportBroken):
        list(lines)
