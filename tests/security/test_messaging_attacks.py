"""Attacks on messaging (issue 13): on who may see which conversation, on who messaging believes is asking,
on the data-subject RPCs only privacy may call, and on what an upload may become.

An attendant tries to reach another attendant's conversation by side doors (a reassignment, an incoming
message, an attachment id, a client_message_id, a search scoped to it, straight RPC with a real token
past the gateway); a process holding the Internet-facing gateway's broker credentials forges who it is;
a staff user uploads a page that a browser would run. Each attack runs against the whole platform and
must fail; each has its control (the same thing done rightly works), so a test fails for the right reason.
"""

from __future__ import annotations

import pytest
import upgestao_kernel.nameko_ext.rpc  # noqa: F401  (answers rebuilt as ServiceError, not RemoteError)
from e2e_messaging import messaging_as, new_desk, png, words
from nameko.standalone.rpc import ClusterRpcProxy
from upgestao_kernel.errors import ServiceError

pytestmark = pytest.mark.e2e
pytest_plugins = ["e2e_messaging_fixtures"]  # api, admin_token, dpo, desk

FORGED = [
    pytest.param({"actor_id": "system", "actor_role": "system"}, id="system"),
    pytest.param({"actor_id": "system", "actor_role": "system", "caller_service": "privacy"}, id="system-as-privacy"),
    pytest.param({"actor_id": "00000000-0000-4000-8000-000000000001", "actor_role": "admin"}, id="admin"),
]


@pytest.fixture(scope="module")
def scene(api, platform, admin_token) -> dict:
    """Attendants A and B of one team, each with a conversation assigned to them, A's holding a message,
    an attachment and a search word."""
    desk = new_desk(api, platform, admin_token)
    a, b = desk.staff("A"), desk.staff("B")
    team = desk.team(a, b)
    customer = desk.customer()
    mine = desk.conversation(a, customer, team_id=team, assignee_id=a.id, subject="Segredo da A")["id"]
    theirs = desk.conversation(b, desk.customer(), team_id=team, assignee_id=b.id)["id"]
    tag = words("atk")
    message = desk.send(a, mine, f"Dado sigiloso {tag}", direction="incoming", client_message_id="cm-1")
    uploaded = desk.upload(a, png(), "documento.png", conversation_id=mine)
    assert uploaded.status_code == 201, uploaded.text
    return {"desk": desk, "a": a, "b": b, "team": team, "customer": customer, "mine": mine, "theirs": theirs,
            "tag": tag, "message": message, "attachment": uploaded.json()["id"]}


@pytest.fixture(scope="module")
def gateway_broker(platform) -> dict:
    assert not platform.shared_broker_user, "the platform could not create the services' broker users"
    return {"AMQP_URI": platform.broker_uris["gateway"], "serializer": "json"}


# -- who is asking ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", FORGED)
def test_with_the_gateways_credentials_no_header_reads_a_conversation(gateway_broker, scene, headers):
    reads = [("conversation", (scene["mine"],)), ("messages", (scene["mine"], None, None, 50)),
             ("message", (scene["message"]["id"],)), ("search", (scene["tag"], None, None, 20, None)),
             ("conversations", ({}, 50, None)), ("attachment", (scene["attachment"],)),
             ("export_subject", (scene["customer"],)), ("erase_subject", (scene["customer"],))]
    with ClusterRpcProxy(gateway_broker, context_data=headers, timeout=15) as cluster:
        for method, args in reads:
            with pytest.raises(ServiceError) as refused:
                getattr(cluster.messaging, method)(*args)
            assert refused.value.status in (401, 403), (method, refused.value)


def test_a_real_token_past_the_gateway_still_meets_the_rule(gateway_broker, scene):
    """B's own valid token, sent straight to messaging: the rule lives in messaging, not only at the door."""
    with ClusterRpcProxy(gateway_broker, context_data={"access_token": scene["b"].token}, timeout=15) as cluster:
        for method, args in [("conversation", (scene["mine"],)), ("message", (scene["message"]["id"],)),
                             ("messages", (scene["mine"], None, None, 50)), ("read_receipts", (scene["mine"],)),
                             ("attachment", (scene["attachment"],))]:
            with pytest.raises(ServiceError) as refused:
                getattr(cluster.messaging, method)(*args)
            assert refused.value.status == 404, (method, refused.value)
        assert scene["tag"] not in str(cluster.messaging.search(scene["tag"], None, None, 20, None))
        # the control: B's own conversation answers
        assert cluster.messaging.conversation(scene["theirs"])["id"] == scene["theirs"]


def test_only_privacy_erases_or_exports_a_person_even_with_an_admins_token(gateway_broker, scene, admin_token,
                                                                             platform):
    with ClusterRpcProxy(gateway_broker, context_data={"access_token": admin_token}, timeout=15) as cluster:
        for method in ("erase_subject", "export_subject"):
            with pytest.raises(ServiceError) as refused:
                getattr(cluster.messaging, method)(scene["customer"])
            assert refused.value.status == 403, (method, refused.value)
    assert scene["desk"].get(scene["a"], f"/v1/messages/{scene['message']['id']}")["body"] is not None
    # the control: privacy's own broker user may export (and nothing is erased by it)
    with messaging_as(platform, "privacy") as messaging:
        exported = messaging.export_subject(scene["customer"])
    assert exported["service"] == "messaging" and exported["subject_id"] == scene["customer"]
    assert scene["tag"] in str(exported)


# -- side doors into another attendant's conversation -----------------------------------------------------------


def test_reassigning_it_to_oneself_is_no_way_in(scene):
    desk, b = scene["desk"], scene["b"]
    for changes in ({"assignee_id": b.id}, {"team_id": None, "assignee_id": None}, {"status": "resolved"}):
        response = desk.api.patch(f"/v1/conversations/{scene['mine']}", b.token, json=changes)
        assert response.status_code == 404, (changes, response.text)
    conversation = desk.get(scene["a"], f"/v1/conversations/{scene['mine']}")
    assert (conversation["assignee_id"], conversation["status"]) == (scene["a"].id, "open")


def test_recording_an_incoming_message_into_it_neither_posts_nor_reopens(scene):
    desk, a, b = scene["desk"], scene["a"], scene["b"]
    desk.patch(a, scene["mine"], status="resolved")
    sent = desk.api.post(f"/v1/conversations/{scene['mine']}/messages", b.token,
                         json={"body": "Injetada", "direction": "incoming"})
    assert sent.status_code == 404, sent.text
    assert desk.get(a, f"/v1/conversations/{scene['mine']}")["status"] == "resolved"
    assert "Injetada" not in str(desk.get(a, f"/v1/conversations/{scene['mine']}/messages"))
    desk.patch(a, scene["mine"], status="open")


def test_an_attachment_id_of_another_conversation_links_nothing(scene):
    desk, b = scene["desk"], scene["b"]
    stolen = desk.api.post(f"/v1/conversations/{scene['theirs']}/messages", b.token,
                           json={"body": "Veja o anexo", "direction": "outgoing",
                                 "attachment_ids": [scene["attachment"]]})
    assert stolen.status_code in (404, 422), stolen.text
    if stolen.status_code == 422:
        assert [e["field"] for e in stolen.json()["errors"]] == ["attachment_ids"]
    assert desk.api.get(f"/v1/attachments/{scene['attachment']}", b.token).status_code == 404
    # the control: A may download it
    assert desk.api.get(f"/v1/attachments/{scene['attachment']}", scene["a"].token).status_code == 200


def test_a_client_message_id_is_the_authors_own(scene):
    """B reusing A's client_message_id gets a message of B's, never A's (the id is derived per author)."""
    desk, b = scene["desk"], scene["b"]
    mine = desk.send(b, scene["theirs"], "Mensagem do B", client_message_id="cm-1")
    assert mine["id"] != scene["message"]["id"] and mine["author_id"] == b.id and mine["body"] == "Mensagem do B"


def test_a_search_scoped_to_it_is_404_and_no_query_is_code(scene):
    desk, b = scene["desk"], scene["b"]
    scoped = desk.api.get("/v1/messages/search", b.token, params={"q": scene["tag"], "conversation_id": scene["mine"]})
    assert scoped.status_code == 404, scoped.text
    for q in ("' OR 1=1 --", f"{scene['tag']}%", "%", "_ _", f"{scene['tag']}' OR 'a'='a", "\\"):
        response = desk.api.get("/v1/messages/search", b.token, params={"q": q})
        assert response.status_code in (200, 422), (q, response.text)
        assert scene["tag"] not in response.text, q


def test_a_dpo_reads_no_conversation_message_even_by_its_id(scene):
    desk = scene["desk"]
    dpo = desk.staff("dpo", "dpo")
    assert desk.api.get(f"/v1/messages/{scene['message']['id']}", dpo.token).status_code == 404
    assert desk.api.get(f"/v1/messages/{scene['message']['id']}/history", dpo.token).status_code == 404
    assert desk.api.get(f"/v1/attachments/{scene['attachment']}", dpo.token).status_code == 404
    assert desk.search(dpo, scene["tag"]) == []


# -- ids messaging is given ------------------------------------------------------------------------------------


def test_a_customer_is_no_staff_member_and_a_staff_user_no_customer(scene):
    desk, a = scene["desk"], scene["a"]
    customer = scene["customer"]
    cases = [
        ("POST", "/v1/conversations", {"customer_id": a.id, "channel": "web"}, "customer_id"),
        ("PATCH", f"/v1/conversations/{scene['mine']}", {"assignee_id": customer}, "assignee_id"),
        ("POST", "/v1/chats", {"kind": "direct", "member_ids": [customer]}, "member_ids"),
    ]
    for method, path, body, field in cases:
        response = desk.api.request(method, path, a.token, json=body)
        assert response.status_code == 422, (path, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [field], response.text
    team = desk.api.post("/v1/teams", desk.admin.token, json={"name": "Equipe falsa", "member_ids": [customer]})
    assert team.status_code == 422 and [e["field"] for e in team.json()["errors"]] == ["member_ids"], team.text


def test_a_removed_member_cannot_add_themself_back(scene):
    desk, a, b = scene["desk"], scene["a"], scene["b"]
    chat = desk.chat(a, b, title="Sala fechada")
    assert desk.api.delete(f"/v1/chats/{chat['id']}/members/{b.id}", a.token).status_code == 200
    back = desk.api.post(f"/v1/chats/{chat['id']}/members", b.token, json={"user_id": b.id})
    assert back.status_code == 404, back.text
    assert b.id not in desk.get(a, f"/v1/chats/{chat['id']}")["member_ids"]


# -- what an upload may become --------------------------------------------------------------------------------


@pytest.mark.parametrize("name, content", [
    ("pagina.html", b"<!doctype html><html><script>fetch('/v1/me')</script></html>"),
    ("imagem.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>'),
    ("foto.png", b"<html><script>alert(document.cookie)</script></html>"),  # a name that lies
])
def test_an_uploaded_page_is_refused_or_never_rendered(scene, name, content):
    desk, a = scene["desk"], scene["a"]
    uploaded = desk.upload(a, content, name, conversation_id=scene["mine"])
    if uploaded.status_code in (415, 422):  # refused by the allow-list of types sniffed from the bytes
        return
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["content_type"] not in ("text/html", "image/svg+xml", "image/png")
    got = desk.api.get(f"/v1/attachments/{uploaded.json()['id']}", a.token)
    assert got.status_code == 200
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in got.headers["Content-Security-Policy"]
    assert not got.headers["Content-Type"].startswith(("text/html", "image/svg"))
