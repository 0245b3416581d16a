"""THE visibility matrix (R2.1, issue 13): every messaging route × every kind of viewer, through the gateway.

The cast: attendants A and B and supervisor S in team T, the first admin, and a dpo. The targets are A's:
a conversation of T assigned to A (with a message by A, one recorded by S, an attachment, a search word),
and a group chat A made with S. The table says, for each route, what each viewer gets:

* a status (201, 403, 404, ...): that exact status; or
* ``SEES`` / ``HIDDEN`` for an answer that lists things (lists, unread counts, search): 200, with the
  target in it, or without any trace of it.

The row to read first is B's: attendant B never reaches A's conversation, by any route (404, or 200 without
a trace: never a 403 that would say it exists). Every 403 leaves a ``denied`` audit record naming the
caller; every 404 of something that exists too (investigators see the attempt, the caller does not).
A messaging route missing from the table fails the test: a new route cannot ship without its row.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import pytest
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, Api, audit_search, create_user, new_request_id
from e2e_messaging import Desk, Person, messaging_routes, new_desk, png, words

pytestmark = pytest.mark.e2e

VIEWERS = ("A", "B", "S", "admin", "dpo")
SEES, HIDDEN = "sees", "hidden"

# (method, path template, variant) -> what A, B, S, admin, dpo get
MATRIX: dict[tuple[str, str, str], tuple] = {
    # teams: data anyone of the help desk reads, the admin alone manages
    ("POST", "/v1/teams", ""): (403, 403, 403, 201, 403),
    ("GET", "/v1/teams", ""): (200, 200, 200, 200, 403),
    ("GET", "/v1/teams/{team_id}", ""): (200, 200, 200, 200, 403),
    ("PATCH", "/v1/teams/{team_id}", ""): (403, 403, 403, 200, 403),
    # A's conversation: A, the team's supervisor and the admin; never B; a dpo reads no conversation
    ("POST", "/v1/conversations", ""): (201, 201, 201, 201, 403),
    ("GET", "/v1/conversations", ""): (SEES, HIDDEN, SEES, SEES, 403),
    ("GET", "/v1/conversations", "assignee"): (SEES, HIDDEN, SEES, SEES, 403),  # ?assignee_id=A
    ("GET", "/v1/conversations/unread", ""): (SEES, HIDDEN, SEES, SEES, HIDDEN),
    ("GET", "/v1/conversations/{conversation_id}", ""): (200, 404, 200, 200, 403),
    ("PATCH", "/v1/conversations/{conversation_id}", ""): (200, 404, 200, 200, 403),
    ("POST", "/v1/conversations/{conversation_id}/messages", ""): (201, 404, 201, 201, 403),
    ("POST", "/v1/conversations/{conversation_id}/messages", "incoming"): (201, 404, 201, 201, 403),
    ("GET", "/v1/conversations/{conversation_id}/messages", ""): (200, 404, 200, 200, 403),
    ("POST", "/v1/conversations/{conversation_id}/read", ""): (200, 404, 200, 200, 403),
    ("GET", "/v1/conversations/{conversation_id}/receipts", ""): (200, 404, 200, 200, 403),
    ("GET", "/v1/messages/search", ""): (SEES, HIDDEN, SEES, SEES, HIDDEN),
    ("GET", "/v1/messages/search", "conversation"): (SEES, 404, SEES, SEES, 403),  # ?conversation_id=
    ("GET", "/v1/messages/{message_id}", ""): (200, 404, 200, 200, 404),
    ("PATCH", "/v1/messages/{message_id}", ""): (200, 404, 403, 200, 404),  # the author, or a moderator
    ("DELETE", "/v1/messages/{message_id}", ""): (200, 404, 403, 200, 404),
    ("GET", "/v1/messages/{message_id}/history", ""): (200, 404, 200, 200, 404),
    ("POST", "/v1/attachments", ""): (201, 404, 201, 201, 403),  # ?conversation_id=
    ("GET", "/v1/attachments/{attachment_id}", ""): (200, 404, 200, 200, 404),
    # A's group chat with S: its members only (the admin manages members without reading it)
    ("POST", "/v1/chats", ""): (201, 201, 201, 201, 201),
    ("GET", "/v1/chats", ""): (SEES, HIDDEN, SEES, HIDDEN, HIDDEN),
    ("GET", "/v1/chats/{chat_id}", ""): (200, 404, 200, 404, 404),
    ("POST", "/v1/chats/{chat_id}/messages", ""): (201, 404, 201, 404, 404),
    ("GET", "/v1/chats/{chat_id}/messages", ""): (200, 404, 200, 404, 404),
    ("POST", "/v1/chats/{chat_id}/read", ""): (200, 404, 200, 404, 404),
    ("POST", "/v1/chats/{chat_id}/members", ""): (200, 404, 403, 200, 404),  # its creator, or a moderator
    ("DELETE", "/v1/chats/{chat_id}/members/{user_id}", ""): (200, 404, 403, 200, 404),
    ("GET", "/v1/messages/{message_id}", "chat"): (200, 404, 200, 404, 404),
    ("GET", "/v1/messages/search", "chat"): (SEES, 404, SEES, 404, 404),  # ?chat_id=
    ("POST", "/v1/attachments", "chat"): (201, 404, 201, 404, 404),  # ?chat_id=
}


@dataclass
class World:
    desk: Desk
    viewers: dict[str, Person]
    team: str
    customer: str
    conversation: str
    messages: list[str]  # of the conversation: A's, then S's record of the customer's
    attachment: str
    chat: str
    chat_message: str
    tag: str  # a word of the conversation's messages
    chat_tag: str  # a word of the chat's message
    spare: list[str] = field(default_factory=list)  # staff ids to add to the chat, one per call


@pytest.fixture(scope="module")
def world(platform) -> World:
    api = Api(platform.url)
    desk = new_desk(api, platform, api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"])
    a, b, s = desk.staff("A"), desk.staff("B"), desk.staff("S", "supervisor")
    dpo = desk.staff("dpo", "dpo")
    team = desk.team(a, b, s)
    customer = desk.customer()
    conversation = desk.conversation(desk.admin, customer, team_id=team, assignee_id=a.id, subject="Do A")["id"]
    tag, chat_tag = words("vis"), words("vic")
    mine = desk.send(a, conversation, f"Resposta da A {tag}")["id"]
    recorded = desk.send(s, conversation, f"Cliente disse {tag}", direction="incoming")["id"]
    uploaded = desk.upload(a, png(), "anexo.png", conversation_id=conversation)
    assert uploaded.status_code == 201, uploaded.text
    desk.send(a, conversation, "Segue o anexo", attachment_ids=[uploaded.json()["id"]])  # sent: the conversation's
    chat = desk.chat(a, s, title="Sala da A")["id"]
    chat_message = desk.post(a, chat, f"Só entre nós {chat_tag}")["id"]
    # B has a conversation of its own (assigned to B), so B's answers are not empty by accident
    desk.send(b, desk.conversation(b, desk.customer(), team_id=team, assignee_id=b.id)["id"], f"Do B {tag}")
    return World(desk=desk, viewers={"A": a, "B": b, "S": s, "admin": desk.admin, "dpo": dpo}, team=team,
                 customer=customer, conversation=conversation, messages=[mine, recorded],
                 attachment=uploaded.json()["id"], chat=chat, chat_message=chat_message, tag=tag, chat_tag=chat_tag)


def _call(w: World, viewer: Person, method: str, template: str, variant: str, rid: str):
    """One request of the row as ``viewer``; returns (response, the target id a list answer must (not) hold)."""
    api, desk = w.desk.api, w.desk
    a = w.viewers["A"]
    headers = {"X-Request-ID": rid}
    target = w.conversation
    path = template.replace("{team_id}", w.team).replace("{conversation_id}", w.conversation)
    path = path.replace("{chat_id}", w.chat).replace("{attachment_id}", w.attachment)
    kwargs: dict = {}
    if "{message_id}" in template:
        message = w.chat_message if variant == "chat" else w.messages[0]
        if method == "DELETE":  # each caller gets a message of A's of its own to delete
            message = desk.send(a, w.conversation, "Para apagar")["id"]
        path = path.replace("{message_id}", message)
        target = message
        if method == "PATCH":
            kwargs["json"] = {"body": f"Editado por {viewer.role}"}
    if "{user_id}" in template:  # a member A adds first, for this caller to remove
        member = create_user(api, desk.admin.token)["id"]
        assert api.post(f"/v1/chats/{w.chat}/members", a.token, json={"user_id": member}).status_code == 200
        path = path.replace("{user_id}", member)
    if (method, template) == ("POST", "/v1/teams"):
        kwargs["json"] = {"name": f"Equipe {uuid.uuid4().hex[:6]}", "member_ids": [a.id]}
    elif (method, template) == ("PATCH", "/v1/teams/{team_id}"):
        kwargs["json"] = {"name": f"Equipe T {uuid.uuid4().hex[:4]}"}
    elif (method, template) == ("POST", "/v1/conversations"):
        kwargs["json"] = {"customer_id": w.customer, "channel": "email", "team_id": w.team}
    elif (method, template) == ("GET", "/v1/conversations"):
        kwargs["params"] = {"customer_id": w.customer, **({"assignee_id": a.id} if variant == "assignee" else {})}
    elif template == "/v1/conversations/{conversation_id}" and method == "PATCH":
        kwargs["json"] = {"priority": "high"}
    elif template == "/v1/conversations/{conversation_id}/messages" and method == "POST":
        kwargs["json"] = {"body": "Mensagem da matriz", "direction": variant or "outgoing"}
    elif template == "/v1/conversations/{conversation_id}/read":
        kwargs["json"] = {"message_id": w.messages[0]}
    elif template == "/v1/messages/search":
        kwargs["params"] = {"q": w.chat_tag if variant == "chat" else w.tag, "limit": 100,
                            **({"conversation_id": w.conversation} if variant == "conversation" else {}),
                            **({"chat_id": w.chat} if variant == "chat" else {})}
        target = w.chat_message if variant == "chat" else w.messages[1]  # S's record: never edited here
    elif template == "/v1/attachments" and method == "POST":
        container = {"chat_id": w.chat} if variant == "chat" else {"conversation_id": w.conversation}
        kwargs.update(data=png(), params={"name": "matriz.png", **container},
                      headers={"Content-Type": "application/octet-stream"})
    elif (method, template) == ("POST", "/v1/chats"):
        kwargs["json"] = {"kind": "group", "member_ids": [w.viewers["S"].id if viewer.role != "supervisor"
                                                          else a.id], "title": "Nova sala"}
    elif template in ("/v1/chats", "/v1/chats/{chat_id}/messages") or template == "/v1/chats/{chat_id}":
        target = w.chat
        if method == "POST":
            kwargs["json"] = {"body": "Mensagem de sala"}
    elif template == "/v1/chats/{chat_id}/read":
        kwargs["json"] = {"message_id": w.chat_message}
    elif (method, template) == ("POST", "/v1/chats/{chat_id}/members"):
        kwargs["json"] = {"user_id": create_user(api, desk.admin.token)["id"]}
    headers.update(kwargs.pop("headers", {}))
    return api.request(method, path, viewer.token, headers=headers, **kwargs), target


def _outcome(response, target: str, expected) -> object:
    """What the viewer got, in the table's terms."""
    if expected in (SEES, HIDDEN) and response.status_code == 200:
        return SEES if target in response.text else HIDDEN
    return response.status_code


def test_the_matrix_covers_every_messaging_route(platform):
    document = Api(platform.url).get("/v1/openapi.json").json()
    covered = {(method, template) for method, template, _ in MATRIX}
    routes = messaging_routes(document)
    assert routes - covered == set(), "messaging routes without a row in the visibility matrix"
    assert covered - routes == set(), "rows for routes that no longer exist"


def _records(api: Api, dpo: str, rid: str) -> list[dict]:
    return [r for r in audit_search(api, dpo, request_id=rid, limit=50)["items"] if r["outcome"] == "denied"]


@pytest.mark.parametrize("row", sorted(MATRIX), ids=lambda r: f"{r[0]} {r[1]}{' ' + r[2] if r[2] else ''}")
def test_route_by_viewer(world, row):
    method, template, variant = row
    got, rids = {}, {}
    for name, expected in zip(VIEWERS, MATRIX[row], strict=True):
        rids[name] = new_request_id(f"vis-{name}-{method}")  # (a kernel event keeps 64 characters of it)
        response, target = _call(world, world.viewers[name], method, template, variant, rids[name])
        got[name] = _outcome(response, target, expected)
        if response.status_code in (403, 404):
            assert response.headers["Content-Type"].startswith("application/problem+json"), response.text
        if name == "B" and response.status_code == 404:
            for secret in ("Do A", world.tag, world.chat_tag):
                assert secret not in response.text  # a refusal says nothing of what it refused
    assert tuple(got[name] for name in VIEWERS) == MATRIX[row], got

    # every refusal is audited as denied, naming the caller: a 403, and a 404 of something that exists
    api, dpo = world.desk.api, world.viewers["dpo"].token
    refused = {name: rids[name] for name in VIEWERS if got[name] in (403, 404)}
    deadline = time.monotonic() + 20
    while True:
        found = {name: _records(api, dpo, rid) for name, rid in refused.items()}
        if all(found.values()) or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    for name, records in found.items():
        viewer = world.viewers[name]
        assert records, f"{name}: {method} {template} answered {got[name]} but left no denied record"
        assert {r["actor_id"] for r in records} == {viewer.id}, records
