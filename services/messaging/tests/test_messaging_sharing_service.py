"""Messaging's sharing RPC on the running service (RabbitMQ, PostgreSQL), issue 15: ``share_messages`` answers
the integrations service's broker user alone; it never gives a private note, a staff chat's message or a message
of an erased customer; each body opened is audited as a ``share`` naming the integration and the customer."""

from __future__ import annotations

import json
import uuid

import pytest
from upgestao_kernel.audit import records_in
from upgestao_kernel.errors import ServiceError

RECIPIENT = "integration:int_0123456789abcdef0123456789"
PURPOSE = "integration delivery: message.created"


def _status(caught) -> int:
    return caught.value.status


def _audit(desk, **match) -> list[dict]:
    bodies = [b if isinstance(b, dict) else json.loads(b)
              for (b,) in desk.rows("SELECT body FROM outbox WHERE exchange = 'audit' ORDER BY id")]
    return [r for body in bodies for r in records_in(body) if all(r.get(k) == v for k, v in match.items())]


@pytest.fixture
def shop(desk):
    admin, colleague = desk.person(role="admin"), desk.person()
    as_admin = desk.caller(admin)
    joana, pedro = desk.person("customer"), desk.person("customer")
    cj = as_admin.open_conversation({"customer_id": joana, "channel": "email", "subject": "Assunto da Joana"})["id"]
    cp = as_admin.open_conversation({"customer_id": pedro, "channel": "email"})["id"]
    incoming = as_admin.send_message(cj, {"body": "Quero trocar o produto", "direction": "incoming"})["message"]
    reply = as_admin.send_message(cj, {"body": "Claro, envie o pedido", "direction": "outgoing"})["message"]
    as_admin.edit_message(reply["id"], "Claro, envie o número do pedido")
    gone = as_admin.send_message(cj, {"body": "mensagem apagada", "direction": "outgoing"})["message"]
    as_admin.delete_message(gone["id"])
    note = as_admin.send_message(cj, {"body": "Nota: cliente difícil", "direction": "outgoing",
                                      "private": True})["message"]
    pedros = as_admin.send_message(cp, {"body": "Pedro pergunta do prazo", "direction": "incoming"})["message"]
    chat = as_admin.create_chat({"kind": "direct", "member_ids": [colleague]})
    chatted = as_admin.send_chat_message(chat["id"], {"body": "Conversa entre colegas"})["message"]
    return {"joana": joana, "pedro": pedro, "cj": cj, "cp": cp, "incoming": incoming["id"], "reply": reply["id"],
            "gone": gone["id"], "note": note["id"], "pedros": pedros["id"], "chatted": chatted["id"]}


def test_share_messages_gives_conversation_messages_and_audits_each_body(desk, shop):
    integrations = desk.caller(service="integrations")
    unknown = str(uuid.uuid4())
    ids = [shop["incoming"], shop["reply"], shop["gone"], shop["note"], shop["chatted"], unknown, "not-a-uuid"]
    answer = integrations.share_messages(ids, True, RECIPIENT, PURPOSE)["messages"]
    assert set(answer) == set(ids)
    assert [answer[i] for i in (shop["note"], shop["chatted"], unknown, "not-a-uuid")] == [None] * 4
    incoming = answer[shop["incoming"]]
    assert {k: incoming[k] for k in ("message_id", "conversation_id", "customer_id", "direction", "deleted",
                                     "attachment_count", "body", "edited_at")} == {
        "message_id": shop["incoming"], "conversation_id": shop["cj"], "customer_id": shop["joana"],
        "direction": "incoming", "deleted": False, "attachment_count": 0, "body": "Quero trocar o produto",
        "edited_at": None}
    assert answer[shop["reply"]]["body"] == "Claro, envie o número do pedido"
    assert answer[shop["reply"]]["edited_at"] is not None
    assert (answer[shop["gone"]]["deleted"], answer[shop["gone"]]["body"]) == (True, None)

    shares = _audit(desk, action="share")
    assert sorted(r["resource_id"] for r in shares) == sorted([shop["incoming"], shop["reply"]])
    for record in shares:
        assert (record["resource_type"], record["subject_id"], record["fields"], record["recipient"],
                record["purpose"]) == ("message", shop["joana"], ["body"], RECIPIENT, PURPOSE)

    # without bodies: the same metadata, no body key, nothing opened, nothing audited
    bare = integrations.share_messages([shop["incoming"], shop["note"]], False, RECIPIENT, PURPOSE)["messages"]
    assert "body" not in bare[shop["incoming"]] and bare[shop["note"]] is None
    assert len(_audit(desk, action="share")) == 2


def test_an_erased_customers_messages_are_not_shared(desk, shop):
    integrations = desk.caller(service="integrations")
    desk.caller(service="privacy").erase_subject(shop["joana"], "deletion", "req-1")
    answer = integrations.share_messages([shop["incoming"], shop["pedros"]], True, RECIPIENT, PURPOSE)["messages"]
    assert answer[shop["incoming"]] is None
    assert answer[shop["pedros"]]["body"] == "Pedro pergunta do prazo"
    assert {r["subject_id"] for r in _audit(desk, action="share")} == {shop["pedro"]}


def test_share_messages_refuses_other_callers_and_bad_arguments(desk, shop):
    admin = desk.person(role="admin")
    for caller in (desk.caller(service="privacy"), desk.caller(service="gateway"), desk.caller(admin),
                   desk.caller(admin, caller_service="integrations")):
        with pytest.raises(ServiceError) as caught:
            caller.share_messages([shop["incoming"]], True, RECIPIENT, PURPOSE)
        assert _status(caught) == 403
    assert len(_audit(desk, action="share", outcome="denied")) == 4
    assert _audit(desk, action="share", outcome="success") == []
    integrations = desk.caller(service="integrations")
    cases = [(([shop["incoming"]], "yes", RECIPIENT, PURPOSE), "include_body"),
             (([shop["incoming"]], True, "someone", PURPOSE), "recipient"),
             (([shop["incoming"]], True, RECIPIENT, ""), "purpose"),
             (([str(uuid.uuid4()) for _ in range(201)], True, RECIPIENT, PURPOSE), "message_ids"),
             (([7], True, RECIPIENT, PURPOSE), "message_ids")]
    for args, field in cases:
        with pytest.raises(ServiceError) as caught:
            integrations.share_messages(*args)
        assert _status(caught) == 422, args
        assert [e["field"] for e in caught.value.extensions["errors"]] == [field]
