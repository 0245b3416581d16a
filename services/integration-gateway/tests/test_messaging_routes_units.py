"""The messaging routes' pieces that need no broker: the requests' schemas (a 422 naming the field, before
messaging is asked), the answers keeping only their documented members, the download's headers, the
permissions and personal-data flags the OpenAPI document states, and the any-of permission guard."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest
from marshmallow import Schema, ValidationError
from upgestao_gateway.domain.principal import Principal
from upgestao_gateway.entrypoints.http.guards import permitted
from upgestao_gateway.entrypoints.http.openapi import openapi_document
from upgestao_gateway.entrypoints.http.problems import validation_failed
from upgestao_gateway.entrypoints.http.spec import declare_route
from upgestao_gateway.entrypoints.messaging import schemas as s
from upgestao_gateway.entrypoints.messaging.routes import download
from upgestao_gateway.service import GatewayService

ID = "3f1c0a9e-1b7a-4c55-9a55-1c1f4a2e9d10"
OTHER = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"


def test_an_empty_or_blank_text_is_named_once():
    assert errors_of(s.ChatMessageCreateSchema(), {"body": ""}) == {"body": ["Length must be between 1 and 20000."]}
    assert errors_of(s.ChatMessageCreateSchema(), {"body": " \n\t"}) == {"body": [s.TEXT_ERROR]}


def errors_of(schema: Schema, data: dict) -> dict[str, list[str]]:
    """The 422 problem's ``errors`` as {field: [messages]} (what the client sees)."""
    with pytest.raises(ValidationError) as raised:
        schema.load(data)
    out: dict[str, list[str]] = {}
    for error in validation_failed(raised.value).extensions["errors"]:
        out.setdefault(error["field"], []).append(error["message"])
    return out


def message(**over) -> dict:
    return {"id": ID, "conversation_id": OTHER, "chat_id": None, "author_id": OTHER, "direction": "outgoing",
            "private": False, "body": "Olá, tudo bem?", "created_at": "2026-12-02T04:00:00+00:00", "edited_at": None,
            "deleted": False, "attachments": [], **over}


# -- conversations ------------------------------------------------------------------------------


def test_a_conversation_needs_a_customer_and_a_channel():
    assert set(errors_of(s.ConversationCreateSchema(), {})) == {"customer_id", "channel"}
    loaded = s.ConversationCreateSchema().load({"customer_id": ID.upper(), "channel": "whatsapp",
                                                "subject": "Pedido atrasado", "labels": ["vip", "aguardando cliente"]})
    assert loaded == {"customer_id": ID, "channel": "whatsapp", "subject": "Pedido atrasado",
                      "labels": ["vip", "aguardando cliente"]}


@pytest.mark.parametrize("data, field", [
    ({"channel": "fax"}, "channel"),
    ({"customer_id": "Maria Silva"}, "customer_id"),
    ({"team_id": "x"}, "team_id"),
    ({"subject": ""}, "subject"),
    ({"subject": "   "}, "subject"),
    ({"subject": "a\x00b"}, "subject"),
    ({"subject": "s" * 301}, "subject"),
    ({"priority": "critical"}, "priority"),
    ({"labels": ["linha\nquebrada"]}, "labels.0"),
    ({"labels": ["   "]}, "labels.0"),
    ({"labels": ["l" * 51]}, "labels.0"),
    ({"labels": [f"l{i}" for i in range(21)]}, "labels"),
    ({"customer": ID}, "customer"),  # unknown member: named, never ignored
])
def test_a_bad_member_of_a_new_conversation_is_named(data, field):
    assert field in errors_of(s.ConversationCreateSchema(), {"customer_id": ID, "channel": "web", **data})


def test_a_patch_checks_each_member_and_leaves_the_rules_between_them_to_messaging():
    """A body the document allows is loaded (the fuzz suite holds the gateway to it): an empty change, a snooze
    without its time or a time without the snooze are messaging's 422s, naming the field as well."""
    patch = s.ConversationPatchSchema()
    assert patch.load({}) == {}
    assert patch.load({"status": "snoozed"}) == {"status": "snoozed"}
    assert set(errors_of(patch, {"status": "snoozed", "snoozed_until": "2030-01-01T00:00:00"})) == {
        "snoozed_until"}  # no offset
    assert set(errors_of(patch, {"status": "closed"})) == {"status"}
    assert patch.load({"status": "open", "snoozed_until": None}) == {"status": "open", "snoozed_until": None}
    assert set(errors_of(patch, {"labels": ["ok", "\x1b[31m"]})) == {"labels.1"}


def test_a_snooze_reaches_messaging_as_utc_text_and_null_unassigns():
    body = s.ConversationPatchSchema().load({"status": "snoozed", "snoozed_until": "2030-01-01T09:00:00-03:00",
                                             "assignee_id": None})
    assert s.conversation_changes(body) == {"status": "snoozed", "snoozed_until": "2030-01-01T12:00:00+00:00",
                                            "assignee_id": None}


def test_list_filters_are_passed_only_when_given():
    query = s.ConversationsQuerySchema().load({"status": "open", "team_id": ID.upper(), "limit": "200"})
    assert s.conversation_filters(query) == {"status": "open", "team_id": ID} and query["limit"] == 200
    assert s.ConversationsQuerySchema().load({}) == {"limit": 50}
    for bad in ({"limit": "0"}, {"limit": "201"}, {"status": "closed"}, {"assignee_id": "me"}, {"q": "x"}):
        assert set(errors_of(s.ConversationsQuerySchema(), bad)) == set(bad)


# -- messages -----------------------------------------------------------------------------------------


def test_a_message_is_a_body_and_a_direction():
    loaded = s.MessageCreateSchema().load({"body": "Cafe\u0301 não chegou", "direction": "incoming",
                                           "client_message_id": "c-1"})
    assert loaded == {"body": "Café não chegou", "direction": "incoming", "private": False,
                      "client_message_id": "c-1"}  # NFC: the same words the same bytes (search, history)
    assert s.message_data(loaded) == loaded


@pytest.mark.parametrize("data, field", [
    ({"body": ""}, "body"),
    ({"body": "\n\t "}, "body"),
    ({"body": "x" * (s.BODY_MAX + 1)}, "body"),
    ({"body": "sino\x07"}, "body"),
    ({"direction": "internal"}, "direction"),
    ({"client_message_id": ""}, "client_message_id"),
    ({"client_message_id": "c" * 101}, "client_message_id"),
    ({"private": "yes"}, "private"),
    ({"attachment_ids": [ID] * 11}, "attachment_ids"),
    ({"attachment_ids": ["nope"]}, "attachment_ids.0"),
    ({"author_id": ID}, "author_id"),  # who wrote it is the token's, never the body's
])
def test_a_bad_member_of_a_message_is_named(data, field):
    assert field in errors_of(s.MessageCreateSchema(), {"body": "oi", "direction": "outgoing", **data})


def test_bodies_keep_newlines_and_reach_the_limit():
    text = "linha 1\nlinha 2\ttab\r\n" + "x" * (s.BODY_MAX - 21)
    assert len(text) == s.BODY_MAX
    assert s.ChatMessageCreateSchema().load({"body": text})["body"] == text
    assert set(errors_of(s.ChatMessageCreateSchema(), {"body": "oi", "direction": "outgoing"})) == {"direction"}


def test_paging_takes_one_cursor_and_a_limit_up_to_200():
    assert s.PageQuerySchema().load({}) == {"limit": 50}
    assert s.PageQuerySchema().load({"before": ID.upper(), "limit": "200"}) == {"before": ID, "limit": 200}
    assert set(errors_of(s.PageQuerySchema(), {"before": ID, "after": OTHER})) == {"after"}
    assert set(errors_of(s.PageQuerySchema(), {"limit": "201"})) == {"limit"}
    assert set(errors_of(s.PageQuerySchema(), {"before": "last"})) == {"before"}


def test_a_search_needs_a_word_and_at_most_one_container():
    assert s.SearchQuerySchema().load({"q": "não"}) == {"q": "não", "limit": 20}
    assert set(errors_of(s.SearchQuerySchema(), {})) == {"q"}
    assert set(errors_of(s.SearchQuerySchema(), {"q": "  ?! "})) == {"q"}
    assert set(errors_of(s.SearchQuerySchema(), {"q": "x" * 201})) == {"q"}
    assert set(errors_of(s.SearchQuerySchema(), {"q": "a", "conversation_id": ID, "chat_id": OTHER})) == {"chat_id"}
    assert set(errors_of(s.SearchQuerySchema(), {"q": "a", "limit": "101"})) == {"limit"}


def test_an_answer_keeps_only_the_documented_members():
    dumped = s.MessageSchema().dump(message(sealed_body="gAAAAB...", customer_email="maria@example.com",
                                            attachments=[{"id": ID, "name": "nota.pdf", "content_type":
                                                          "application/pdf", "size": 3, "sha256": "ab",
                                                          "key_id": "k"}]))
    assert set(dumped) == set(message())
    assert set(dumped["attachments"][0]) == {"id", "name", "content_type", "size", "sha256"}


def test_a_list_of_conversations_never_shows_a_subject():
    item = {"id": ID, "customer_id": OTHER, "channel": "web", "status": "open", "snoozed_until": None,
            "priority": "medium", "assignee_id": None, "team_id": None, "labels": [], "subject": "Segredo",
            "created_at": "t", "updated_at": "t", "last_message_at": None, "unread": 0}
    dumped = s.ConversationPageSchema().dump({"items": [item], "next_cursor": None})
    assert "subject" not in dumped["items"][0] and dumped["items"][0]["id"] == ID


# -- chats, members, read cursors, attachments ------------------------------------------------------


def test_a_chat_is_a_kind_and_other_members():
    assert s.ChatCreateSchema().load({"kind": "direct", "member_ids": [ID]}) == {"kind": "direct",
                                                                                 "member_ids": [ID]}
    assert set(errors_of(s.ChatCreateSchema(), {"kind": "group", "member_ids": [ID] * 101})) == {"member_ids"}
    assert set(errors_of(s.ChatCreateSchema(), {"kind": "channel", "member_ids": [ID]})) == {"kind"}
    assert set(errors_of(s.ChatCreateSchema(), {"kind": "group", "member_ids": [ID], "title": " "})) == {"title"}
    group = s.ChatCreateSchema().load({"kind": "group", "member_ids": [ID, OTHER], "title": "Plantão"})
    assert group["title"] == "Plantão"
    # a direct chat of two others or with a title, a group of no one else: messaging's 422s
    assert s.ChatCreateSchema().load({"kind": "direct", "member_ids": [ID, OTHER]})["member_ids"] == [ID, OTHER]


def test_members_and_read_cursors_take_uuids():
    assert s.ChatMemberSchema().load({"user_id": ID.upper()}) == {"user_id": ID}
    assert set(errors_of(s.ChatMemberSchema(), {"user_id": "maria@example.com"})) == {"user_id"}
    assert set(errors_of(s.ReadUpToSchema(), {})) == {"message_id"}


def test_teams_need_a_name_and_members():
    assert set(errors_of(s.TeamCreateSchema(), {"name": "N1"})) == {"member_ids"}
    assert set(errors_of(s.TeamCreateSchema(), {"name": "", "member_ids": []})) == {"name"}
    assert set(errors_of(s.TeamCreateSchema(), {"name": "N1", "member_ids": ["Maria"]})) == {"member_ids.0"}
    assert s.TeamCreateSchema().load({"name": "N1", "member_ids": [ID, ID.upper()]})["member_ids"] == [ID, ID]


@pytest.mark.parametrize("query, field", [
    ({}, "name"),
    ({"name": "a.pdf"}, "conversation_id"),  # a container, exactly one
    ({"name": "a.pdf", "conversation_id": ID, "chat_id": OTHER}, "conversation_id"),
    ({"name": "../etc/passwd", "chat_id": ID}, "name"),
    ({"name": "C:\\x.pdf", "chat_id": ID}, "name"),
    ({"name": "..", "chat_id": ID}, "name"),
    ({"name": "a\nb.pdf", "chat_id": ID}, "name"),
    ({"name": "n" * 201, "chat_id": ID}, "name"),
])
def test_an_upload_names_one_container_and_a_plain_file_name(query, field):
    assert field in errors_of(s.AttachmentUploadQuerySchema(), query)


def test_an_upload_reaches_messaging_as_base64_with_its_container():
    query = s.AttachmentUploadQuerySchema().load({"name": "Recibo n\u0303.pdf", "chat_id": ID})
    assert s.upload_data(query, "AAEC") == {"name": "Recibo ñ.pdf", "content_b64": "AAEC", "chat_id": ID}


def test_a_download_is_never_rendered_by_a_browser():
    response = download({"id": ID, "name": "relatório final.html", "content_type": "text/html",
                         "size": 4, "sha256": "x", "content_b64": base64.b64encode(b"<b>x").decode()})
    assert response.get_data() == b"<b>x" and response.mimetype == "text/html"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"relat_rio_final.html\"; filename*=UTF-8''relat%C3%B3rio%20final.html")
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "private, no-store"
    text = download({"name": "nota.txt", "content_type": "text/plain; charset=utf-8", "content_b64": ""})
    assert text.headers["Content-Type"] == "text/plain; charset=utf-8"
    odd = download({"name": 'x"; evil=1', "content_type": "text/html; charset=utf-7\r\nX-A: b",
                    "content_b64": ""})
    assert odd.mimetype == "application/octet-stream" and '"; evil' not in odd.headers["Content-Disposition"]


# -- the any-of permission guard --------------------------------------------------------------------


class _Request:
    def __init__(self, route, principal):
        self.route, self.principal = route, principal


@pytest.mark.parametrize("held, allowed", [
    ({"conversations.read"}, True), ({"chats.use"}, True), ({"conversations.read", "chats.use"}, True),
    ({"profile.read"}, False), (set(), False),
])
def test_a_route_with_alternatives_lets_in_whoever_holds_one(held, allowed):
    spec = declare_route("GET", "/x", personal_data=False, response={"type": "object"}, auth="required",
                         permission="conversations.read", alternatives=("chats.use",))
    principal = Principal(actor_id="u", role="r", permissions=frozenset(held))
    assert permitted(_Request(spec, principal)) is allowed
    assert permitted(_Request(spec, None)) is False


def test_alternatives_are_checked_at_declaration():
    with pytest.raises(ValueError):
        declare_route("GET", "/x", personal_data=False, response={}, alternatives=("chats.use",))
    with pytest.raises(ValueError):
        declare_route("GET", "/x", personal_data=False, response={}, auth="required", permission="a.b",
                      alternatives=("not a permission",))


# -- the document -------------------------------------------------------------------------------------

TAGS = {"teams", "conversations", "messages", "chats", "attachments"}
# (method, path) -> (permission, alternatives, personal data)
ROUTES = {
    ("POST", "/v1/teams"): ("teams.manage", None, False),
    ("GET", "/v1/teams"): ("conversations.read", None, False),
    ("GET", "/v1/teams/{team_id}"): ("conversations.read", None, False),
    ("PATCH", "/v1/teams/{team_id}"): ("teams.manage", None, False),
    ("POST", "/v1/conversations"): ("conversations.write", None, True),
    ("GET", "/v1/conversations"): ("conversations.read", None, False),
    ("GET", "/v1/conversations/unread"): ("conversations.read", ["chats.use"], False),
    ("GET", "/v1/conversations/{conversation_id}"): ("conversations.read", None, True),
    ("PATCH", "/v1/conversations/{conversation_id}"): ("conversations.write", None, False),
    ("POST", "/v1/conversations/{conversation_id}/messages"): ("conversations.read", None, True),
    ("GET", "/v1/conversations/{conversation_id}/messages"): ("conversations.read", None, True),
    ("POST", "/v1/conversations/{conversation_id}/read"): ("conversations.write", None, False),
    ("GET", "/v1/conversations/{conversation_id}/receipts"): ("conversations.read", None, False),
    ("GET", "/v1/messages/search"): ("conversations.read", ["chats.use"], True),
    ("GET", "/v1/messages/{message_id}"): ("conversations.read", ["chats.use"], True),
    ("PATCH", "/v1/messages/{message_id}"): ("conversations.write", ["chats.use"], True),
    ("DELETE", "/v1/messages/{message_id}"): ("conversations.write", ["chats.use"], True),
    ("GET", "/v1/messages/{message_id}/history"): ("conversations.read", ["chats.use"], True),
    ("POST", "/v1/chats"): ("chats.use", None, True),
    ("GET", "/v1/chats"): ("chats.use", None, True),
    ("GET", "/v1/chats/{chat_id}"): ("chats.use", None, True),
    ("POST", "/v1/chats/{chat_id}/messages"): ("chats.use", None, True),
    ("GET", "/v1/chats/{chat_id}/messages"): ("chats.use", None, True),
    ("POST", "/v1/chats/{chat_id}/members"): ("chats.use", None, True),
    ("DELETE", "/v1/chats/{chat_id}/members/{user_id}"): ("chats.use", None, True),
    ("POST", "/v1/chats/{chat_id}/read"): ("chats.use", None, False),
    ("POST", "/v1/attachments"): ("conversations.write", ["chats.use"], True),
    ("GET", "/v1/attachments/{attachment_id}"): ("conversations.read", ["chats.use"], True),
}


@pytest.fixture(scope="module")
def doc() -> dict:
    return openapi_document(GatewayService)


def test_every_messaging_route_states_its_permission_and_personal_data(doc):
    tagged = {(method.upper(), path) for path, item in doc["paths"].items() for method, op in item.items()
              if method in ("get", "post", "put", "patch", "delete") and set(op.get("tags", ())) & TAGS}
    assert tagged == set(ROUTES)
    for (method, path), (permission, alternatives, personal) in ROUTES.items():
        operation = doc["paths"][path][method.lower()]
        assert operation["x-permission"] == permission, (method, path)
        assert operation.get("x-permission-alternatives") == alternatives, (method, path)
        assert operation["x-personal-data"] is personal, (method, path)
        assert {"401", "403", "500", "503"} <= set(operation["responses"]), (method, path)
        if "{" in path:
            assert "422" in operation["responses"], (method, path)


def test_writes_that_create_answer_201_and_a_repeat_200_is_documented(doc):
    send = doc["paths"]["/v1/conversations/{conversation_id}/messages"]["post"]
    assert "201" in send["responses"] and "client_message_id" in send["description"]
    for path in ("/v1/teams", "/v1/conversations", "/v1/chats", "/v1/attachments"):
        assert "201" in doc["paths"][path]["post"]["responses"], path


def test_the_documented_limits_are_the_gateways(doc):
    schemas = doc["components"]["schemas"]
    body = schemas["MessageCreate"]["properties"]["body"]
    assert (body["minLength"], body["maxLength"]) == (1, 20_000)
    cmid = schemas["MessageCreate"]["properties"]["client_message_id"]
    assert (cmid["minLength"], cmid["maxLength"]) == (1, 100)
    params = {p["name"]: p["schema"] for p in doc["paths"]["/v1/conversations/{conversation_id}/messages"]["get"]
              ["parameters"] if isinstance(p, dict) and p.get("in") == "query"}
    assert params["limit"] == {"type": "integer", "default": 50, "minimum": 1, "maximum": 200}
    assert params["before"]["format"] == params["after"]["format"] == "uuid"
    upload = doc["paths"]["/v1/attachments"]["post"]["requestBody"]
    assert upload["description"] == f"At most {10 * 1024 * 1024} bytes."
    assert set(upload["content"]) == {"application/octet-stream"}
    assert "subject" not in schemas["ConversationItem"]["properties"]


def test_instants_are_utc():
    assert s.iso_utc(datetime(2030, 1, 1, 9, tzinfo=UTC)) == "2030-01-01T09:00:00+00:00"
    assert s.iso_utc(None) is None
    assert uuid.UUID(ID)  # (the ids above are real UUIDs)
