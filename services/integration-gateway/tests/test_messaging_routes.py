"""The messaging routes on a running gateway: a fake messaging service (its RPC methods as the contract
names them) stands in for the real one on the real broker, the gateway's own database audits refusals,
and a fixed table of tokens says who holds which permission.

What is proven: the routes reach the right RPC with the right arguments (``/v1/conversations/unread``
and ``/v1/messages/search`` are not taken for ids), a send answers 201 and a repeat 200 with the same
message, an incoming message needs ``conversations.record_incoming`` (refused and audited before
messaging is asked), a route over both containers lets in either permission, messaging's 404 is passed
on as it is, a 422 names the field before messaging is asked, only documented members reach the client,
an upload is raw bytes within 10 MiB and a download is never rendered."""

from __future__ import annotations

import base64
import uuid

import pytest
from upgestao_gateway.domain.principal import Principal
from upgestao_kernel.errors import not_found
from upgestao_kernel.nameko_ext import rpc

CONVERSATION = "9b7e4c1a-2f3d-4e5a-8b6c-7d8e9f0a1b2c"
HIDDEN = "0d0d0d0d-0000-4000-8000-000000000404"  # a conversation messaging says the caller may not see
CHAT = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
MESSAGE = "3f1c0a9e-1b7a-4c55-9a55-1c1f4a2e9d10"
ATTACHMENT = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"


def message(**over) -> dict:
    return {"id": MESSAGE, "conversation_id": CONVERSATION, "chat_id": None, "author_id": "user-attendant",
            "direction": "outgoing", "private": False, "body": "Olá!", "created_at": "2026-12-02T04:00:00+00:00",
            "edited_at": None, "deleted": False, "attachments": [], **over}


class Calls:
    """What the fake messaging service was asked (shared with the tests)."""

    calls: list[tuple] = []


class FakeMessaging:
    name = "messaging"

    @rpc
    def unread(self) -> dict:
        Calls.calls.append(("unread",))
        return {"total": 3, "items": [{"conversation_id": CONVERSATION, "unread": 2}, {"chat_id": CHAT, "unread": 1}]}

    @rpc
    def conversation(self, conversation_id: str) -> dict:
        Calls.calls.append(("conversation", conversation_id))
        raise not_found("conversation")

    @rpc
    def conversations(self, filters: dict, limit: int, cursor: str | None) -> dict:
        Calls.calls.append(("conversations", filters, limit, cursor))
        return {"items": [], "next_cursor": None}

    @rpc
    def send_message(self, conversation_id: str, data: dict) -> dict:
        Calls.calls.append(("send_message", conversation_id, data))
        if conversation_id == HIDDEN:
            raise not_found("conversation")
        repeat = data.get("client_message_id") == "seen-before"
        return {"created": not repeat, "message": message(direction=data["direction"], body=data["body"],
                                                          sealed="gAAAA-never-shown")}

    @rpc
    def messages(self, conversation_id: str, before, after, limit: int) -> dict:
        Calls.calls.append(("messages", conversation_id, before, after, limit))
        return {"items": [message()], "has_more_before": True, "has_more_after": False}

    @rpc
    def search(self, q: str, conversation_id, chat_id, limit: int, cursor) -> dict:
        Calls.calls.append(("search", q, conversation_id, chat_id, limit, cursor))
        return {"items": [message()], "next_cursor": None}

    @rpc
    def message(self, message_id: str) -> dict:
        Calls.calls.append(("message", message_id))
        return message(id=message_id, conversation_id=None, chat_id=CHAT, direction="internal")

    @rpc
    def upload_attachment(self, data: dict) -> dict:
        Calls.calls.append(("upload_attachment", {**data, "content_b64": base64.b64decode(data["content_b64"])}))
        return {"id": ATTACHMENT, "name": data["name"], "content_type": "application/pdf", "size": 5,
                "sha256": "ab" * 32}

    @rpc
    def attachment(self, attachment_id: str) -> dict:
        Calls.calls.append(("attachment", attachment_id))
        return {"id": attachment_id, "name": "nota fiscal.pdf", "content_type": "application/pdf", "size": 5,
                "sha256": "ab" * 32, "content_b64": base64.b64encode(b"%PDF-").decode()}


def _principal(name: str, *permissions: str) -> Principal:
    return Principal(actor_id=f"user-{name}", role=name, session_id=f"sess-{name}", permissions=frozenset(permissions))


PRINCIPALS = {
    "attendant": _principal("attendant", "conversations.read", "conversations.write",
                            "conversations.record_incoming", "chats.use"),
    "replier": _principal("replier", "conversations.read", "conversations.write"),  # no record_incoming
    "dpo": _principal("dpo", "chats.use", "audit.read"),
    "nobody": _principal("nobody", "profile.read"),
}


@pytest.fixture(scope="module")
def gateway(routes_gateway):
    return routes_gateway(FakeMessaging, PRINCIPALS)


@pytest.fixture(autouse=True)
def calls():
    Calls.calls.clear()
    yield Calls.calls


def test_unread_and_search_are_routes_of_their_own_not_ids(gateway, calls):
    unread = gateway.request("GET", "/v1/conversations/unread", "attendant")
    assert unread.status_code == 200, unread.text
    assert unread.json() == {"total": 3, "items": [{"conversation_id": CONVERSATION, "unread": 2},
                                                   {"chat_id": CHAT, "unread": 1}]}
    found = gateway.request("GET", "/v1/messages/search", "attendant", params={"q": "não chegou", "limit": "5"})
    assert found.status_code == 200, found.text
    assert calls == [("unread",), ("search", "não chegou", None, None, 5, None)]


def test_a_send_is_201_and_its_repeat_200_with_the_same_message(gateway, calls):
    first = gateway.request("POST", f"/v1/conversations/{CONVERSATION}/messages", "attendant",
                            json={"body": "Seu pedido saiu", "direction": "outgoing", "client_message_id": "new"})
    again = gateway.request("POST", f"/v1/conversations/{CONVERSATION}/messages", "attendant",
                            json={"body": "Seu pedido saiu", "direction": "outgoing",
                                  "client_message_id": "seen-before"})
    assert (first.status_code, again.status_code) == (201, 200), (first.text, again.text)
    assert first.json() == again.json() == message(body="Seu pedido saiu")  # the store's extras never shown
    assert first.headers["Location"] == f"/v1/messages/{MESSAGE}"
    assert calls[0] == ("send_message", CONVERSATION, {"body": "Seu pedido saiu", "direction": "outgoing",
                                                        "private": False, "client_message_id": "new"})


def test_an_incoming_message_needs_record_incoming_refused_and_audited_before_messaging(gateway, calls):
    rid = f"msg-denied-{uuid.uuid4().hex[:12]}"
    refused = gateway.request("POST", f"/v1/conversations/{CONVERSATION}/messages", "replier",
                              json={"body": "Oi", "direction": "incoming"}, headers={"X-Request-ID": rid})
    assert gateway.problem(refused, 403, "forbidden")["permission"] == "conversations.record_incoming"
    assert calls == []
    (record,) = gateway.denials(rid)
    assert (record["actor_id"], record["outcome"]) == ("user-replier", "denied")
    sent = gateway.request("POST", f"/v1/conversations/{CONVERSATION}/messages", "replier",
                           json={"body": "Oi", "direction": "outgoing"})
    assert sent.status_code == 201, sent.text


def test_either_permission_lets_in_to_a_route_over_both_containers(gateway, calls):
    dpo = gateway.request("GET", f"/v1/messages/{MESSAGE}", "dpo")  # chats.use only: a chat message
    assert dpo.status_code == 200 and dpo.json()["chat_id"] == CHAT
    assert gateway.request("GET", f"/v1/messages/{MESSAGE}", "replier").status_code == 200  # no chats.use
    gateway.problem(gateway.request("GET", f"/v1/messages/{MESSAGE}", "nobody"), 403, "forbidden")
    # but a conversation's own routes stay closed to a chat-only role
    gateway.problem(gateway.request("GET", "/v1/conversations", "dpo"), 403, "forbidden")
    assert [c[0] for c in calls] == ["message", "message"]


def test_a_conversation_messaging_hides_is_404_as_if_absent(gateway, calls):
    body = gateway.problem(gateway.request("GET", f"/v1/conversations/{HIDDEN}", "attendant"), 404, "not-found")
    assert body["detail"] == "No such conversation."
    gateway.problem(gateway.request("POST", f"/v1/conversations/{HIDDEN}/messages", "attendant",
                                   json={"body": "x", "direction": "outgoing"}), 404, "not-found")


@pytest.mark.parametrize("method, path, kwargs, field", [
    ("POST", f"/v1/conversations/{CONVERSATION}/messages", {"json": {"body": "", "direction": "outgoing"}}, "body"),
    ("POST", f"/v1/conversations/{CONVERSATION}/messages", {"json": {"body": "x" * 20_001,
                                                                    "direction": "outgoing"}}, "body"),
    ("POST", f"/v1/conversations/{CONVERSATION}/messages", {"json": {"body": "x", "direction": "outgoing",
                                                                    "private": "yes"}}, "private"),
    ("GET", f"/v1/conversations/{CONVERSATION}/messages", {"params": {"limit": "201"}}, "limit"),
    ("GET", f"/v1/conversations/{CONVERSATION}/messages", {"params": {"before": MESSAGE, "after": MESSAGE}},
     "after"),
    ("GET", "/v1/conversations/not-an-id", {}, "conversation_id"),
    ("PATCH", f"/v1/conversations/{CONVERSATION}", {"json": {"labels": ["\x1b[2J"]}}, "labels.0"),
    ("GET", "/v1/messages/search", {"params": {"q": ""}}, "q"),
])
def test_a_bad_request_is_a_422_naming_the_field_before_messaging_is_asked(gateway, calls, method, path, kwargs,
                                                                          field):
    body = gateway.problem(gateway.request(method, path, "attendant", **kwargs), 422, "validation-error")
    assert [error["field"] for error in body["errors"]] == [field]
    assert calls == []


def test_a_page_passes_its_cursor_and_limit(gateway, calls):
    page = gateway.request("GET", f"/v1/conversations/{CONVERSATION}/messages", "attendant",
                           params={"before": MESSAGE.upper(), "limit": "2"})
    assert page.status_code == 200, page.text
    assert page.json() == {"items": [message()], "has_more_before": True, "has_more_after": False}
    assert calls == [("messages", CONVERSATION, MESSAGE, None, 2)]


def test_an_upload_is_raw_bytes_to_one_container(gateway, calls):
    uploaded = gateway.request("POST", "/v1/attachments", "attendant", data=b"%PDF-",
                               params={"name": "nota fiscal.pdf", "conversation_id": CONVERSATION},
                               headers={"Content-Type": "application/octet-stream"})
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["id"] == ATTACHMENT and uploaded.headers["Location"] == f"/v1/attachments/{ATTACHMENT}"
    assert calls == [("upload_attachment", {"name": "nota fiscal.pdf", "content_b64": b"%PDF-",
                                            "conversation_id": CONVERSATION})]
    gateway.problem(gateway.request("POST", "/v1/attachments", "attendant", data=b"x", params={
        "name": "a.pdf", "conversation_id": CONVERSATION}, headers={"Content-Type": "application/pdf"}),
        415, "unsupported-media-type")
    too_big = gateway.request("POST", "/v1/attachments", "attendant", data=b"\0" * (10 * 1024 * 1024 + 1),
                              params={"name": "a.bin", "chat_id": CHAT},
                              headers={"Content-Type": "application/octet-stream"})
    gateway.problem(too_big, 413, "payload-too-large")
    # a chat-only role may not upload to a conversation (audited refusal), only to a chat
    gateway.problem(gateway.request("POST", "/v1/attachments", "dpo", data=b"x", params={
        "name": "a.pdf", "conversation_id": CONVERSATION}, headers={"Content-Type": "application/octet-stream"}),
        403, "forbidden")
    assert len(calls) == 1


def test_a_download_is_an_attachment_never_rendered(gateway, calls):
    got = gateway.request("GET", f"/v1/attachments/{ATTACHMENT}", "dpo")
    assert got.status_code == 200 and got.content == b"%PDF-"
    assert got.headers["Content-Type"] == "application/pdf"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Disposition"].startswith("attachment; ")
