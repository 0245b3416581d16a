"""Data subjects on fakes: export and erasure are privacy's alone; erasing one customer leaves their
messages unreadable everywhere (read models, history, search, event log) and another's intact; once."""

from __future__ import annotations

import pytest
from upgestao_kernel.errors import ServiceError


@pytest.fixture
def two_customers(world):
    admin, agent = world.staff("admin"), world.staff("attendant")
    joana, pedro = world.customer(), world.customer()
    api = world.api(admin)
    cj = api.open_conversation({"customer_id": joana, "channel": "email", "subject": "Cancelamento Joana",
                                "assignee_id": agent})["id"]
    cp = api.open_conversation({"customer_id": pedro, "channel": "email", "subject": "Dúvida Pedro",
                                "assignee_id": agent})["id"]
    a = world.api(agent)
    mj = a.send_message(cj, {"body": "Quero cancelar meu plano", "direction": "incoming"})["message"]["id"]
    a.edit_message(mj, "Quero cancelar meu plano hoje")
    a.send_message(cj, {"body": "Nota sobre Joana", "direction": "outgoing", "private": True})
    mp = a.send_message(cp, {"body": "Como mudo meu endereço", "direction": "incoming"})["message"]["id"]
    chat = a.create_chat({"kind": "direct", "member_ids": [admin]})["id"]
    a.send_chat_message(chat, {"body": "Atendente escreveu isto"})
    return world, admin, agent, joana, pedro, cj, cp, mj, mp, chat


def test_only_privacy_may_ask(two_customers):
    world, admin, agent, joana, *_ = two_customers
    for api in (world.api(admin), world.api(admin, caller_service="gateway"), world.api(None)):
        for call in (api.export_subject, api.erase_subject):
            with pytest.raises(ServiceError) as caught:
                call(joana)
            assert caught.value.status == 403
    assert world.store.audit_records(outcome="denied", resource_type="data_subject")


def test_export_of_a_customer_and_of_a_staff_member(two_customers):
    world, admin, agent, joana, pedro, cj, cp, mj, mp, chat = two_customers
    privacy = world.api(None, caller_service="privacy")
    exported = privacy.export_subject(joana)
    assert exported["service"] == "messaging" and [c["id"] for c in exported["conversations"]] == [cj]
    conversation = exported["conversations"][0]
    assert conversation["subject"] == "Cancelamento Joana"
    assert [m["body"] for m in conversation["messages"]] == ["Quero cancelar meu plano hoje", "Nota sobre Joana"]
    assert world.store.audit_records(purpose="data subject access", action="export")
    staff = privacy.export_subject(agent)
    bodies = {m["body"] for m in staff["messages_authored"]}
    assert "Atendente escreveu isto" in bodies and "Como mudo meu endereço" not in bodies
    assert [c["id"] for c in staff["chats"]] == [chat]


def test_erasure_of_one_customer_leaves_the_other_intact_and_happens_once(two_customers):
    world, admin, agent, joana, pedro, cj, cp, mj, mp, chat = two_customers
    privacy = world.api(None, caller_service="privacy")
    assert privacy.erase_subject(joana) == {"subject_id": joana, "erased": True, "messages": 2}
    a = world.api(admin)
    assert [m["body"] for m in a.messages(cj)["items"]] == [None, None]
    assert a.message(mj)["body"] is None and a.conversation(cj)["subject"] is None
    assert [h["body"] for h in a.message_history(mj)["items"]] == [None, None]
    assert a.search("cancelar")["items"] == [] and a.search("nota joana")["items"] == []
    assert a.message(mp)["body"] == "Como mudo meu endereço" and a.conversation(cp)["subject"] == "Dúvida Pedro"
    assert [m["id"] for m in a.search("endereco")["items"]] == [mp]
    assert all(r["body_sealed"] is None and r["erased"] for r in world.store.rows("messages")
               if r["key_subject_id"] == joana)
    assert privacy.erase_subject(joana) == {"subject_id": joana, "erased": True, "messages": 2}
    assert [e["data"] for e in world.store.published("messaging.subject_erased.v1")] == [
        {"subject_id": joana, "messages": 2}]
    with pytest.raises(ServiceError) as caught:  # nothing is sealed under a shredded key again
        world.api(agent).send_message(cj, {"body": "de novo", "direction": "incoming"})
    assert caught.value.status == 409
