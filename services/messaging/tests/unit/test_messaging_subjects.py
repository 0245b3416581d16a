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


def _entries_of(world, subject_id: str) -> list:
    return [e for bucket in world.index.rows.values() for e in bucket.values() if e.subject_id == subject_id]


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
    assert privacy.erase_subject(joana, "deletion", "req-1") == {
        "subject_id": joana, "erased": True, "messages": None, "mode": "deletion", "request_id": "req-1",
        "shredded": True}
    a = world.api(admin)
    assert [m["body"] for m in a.messages(cj)["items"]] == [None, None]
    assert a.message(mj)["body"] is None and a.conversation(cj)["subject"] is None
    assert [h["body"] for h in a.message_history(mj)["items"]] == [None, None]
    assert a.search("cancelar")["items"] == [] and a.search("nota joana")["items"] == []
    assert a.message(mp)["body"] == "Como mudo meu endereço" and a.conversation(cp)["subject"] == "Dúvida Pedro"
    assert [m["id"] for m in a.search("endereco")["items"]] == [mp]
    # answered before the purge: the entries are still there (found by nobody), and so are the ciphertexts
    entries = len(_entries_of(world, joana))
    assert entries == 8  # quero cancelar meu plano hoje / nota sobre joana
    assert world.store.published("messaging.subject_purged.v1") == []
    assert world.system().purge_erased() == 1
    assert all(r["body_sealed"] is None and r["erased"] for r in world.store.rows("messages")
               if r["key_subject_id"] == joana)
    assert all(r["body_sealed"] is None for r in world.store.rows("message_versions") if r["key_subject_id"] == joana)
    assert not _entries_of(world, joana) and _entries_of(world, pedro)
    assert [e["data"] for e in world.store.published("messaging.subject_purged.v1")] == [
        {"subject_id": joana, "messages": 2, "search_entries": entries, "attachments": 0}]
    assert world.system().purge_erased() == 0  # once
    # a repeat (another request of privacy's) is confirmed again, with the purge's count, and erases nothing twice
    assert privacy.erase_subject(joana, "anonymisation", "req-2") == {
        "subject_id": joana, "erased": True, "messages": 2, "mode": "anonymisation", "request_id": "req-2",
        "shredded": False}
    assert [e["data"] for e in world.store.published("messaging.subject_erased.v1")] == [
        {"subject_id": joana, "messages": None, "request_id": "req-1", "mode": "deletion", "shredded": True},
        {"subject_id": joana, "messages": 2, "request_id": "req-2", "mode": "anonymisation", "shredded": False}]
    assert len(world.store.audit_records(action="erase", resource_type="data_subject")) == 1  # one shred
    assert world.system().purge_erased() == 0
    with pytest.raises(ServiceError) as caught:  # nothing is sealed under a shredded key again
        world.api(agent).send_message(cj, {"body": "de novo", "direction": "incoming"})
    assert caught.value.status == 409


def test_erasing_a_staff_member_shreds_their_chat_messages_and_titles_and_drops_their_read_cursors(world):
    admin, agent = world.staff("admin"), world.staff("attendant")
    customer = world.customer()
    a, b = world.api(agent), world.api(admin)
    conversation = b.open_conversation({"customer_id": customer, "channel": "web", "assignee_id": agent})["id"]
    reply = a.send_message(conversation, {"body": "Resposta ao cliente", "direction": "outgoing"})["message"]["id"]
    a.mark_read(conversation, reply)
    group = a.create_chat({"kind": "group", "title": "Plantão de sábado", "member_ids": [admin]})["id"]
    said = a.send_chat_message(group, {"body": "Eu cubro o sábado"})["message"]["id"]
    a.mark_chat_read(group, said)
    assert [r for r in world.store.rows("read_cursors") if r["user_id"] == agent]
    answer = world.api(None, caller_service="privacy").erase_subject(agent)
    assert answer["shredded"] and answer["mode"] == "deletion"
    assert b.chat(group)["title"] is None and b.message(said)["body"] is None
    assert b.search("sabado")["items"] == []
    assert b.message(reply)["body"] == "Resposta ao cliente"  # the customer's conversation: the customer's data
    assert not [r for r in world.store.rows("read_cursors") if r["user_id"] == agent]
    assert world.system().purge_erased() == 1
    assert world.store.published("messaging.subject_purged.v1")[0]["data"]["messages"] == 1  # the chat message
    assert b.message(reply)["body"] == "Resposta ao cliente"


def test_blocking_is_confirmed_without_change_and_a_later_deletion_still_erases(two_customers):
    world, admin, agent, joana, pedro, cj, cp, mj, mp, chat = two_customers
    privacy = world.api(None, caller_service="privacy")
    assert privacy.erase_subject(joana, "blocking", "req-b") == {
        "subject_id": joana, "erased": False, "messages": None, "mode": "blocking", "request_id": "req-b",
        "shredded": False}
    assert world.api(admin).message(mj)["body"] == "Quero cancelar meu plano hoje"
    assert privacy.erase_subject(joana, "deletion", "req-d")["shredded"] is True
    assert world.api(admin).message(mj)["body"] is None


@pytest.mark.parametrize(("args", "field"), [
    (("not-a-uuid",), "subject_id"), ((None,), "subject_id"), (("{id}", "forget"), "mode"),
    (("{id}", "deletion", 7), "request_id"), (("{id}", "deletion", "x" * 65), "request_id")])
def test_erasure_arguments_are_checked(two_customers, args, field):
    world, _, _, joana, *_ = two_customers
    args = tuple(joana if a == "{id}" else a for a in args)
    with pytest.raises(ServiceError) as caught:
        world.api(None, caller_service="privacy").erase_subject(*args)
    assert caught.value.status == 422 and caught.value.extensions["errors"][0]["field"] == field
    assert world.store.published("messaging.subject_erased.v1") == []


def test_the_erasure_event_erases_and_a_malformed_one_is_refused(two_customers):
    world, admin, agent, joana, pedro, cj, cp, mj, mp, chat = two_customers
    api = world.api("system", "system", caller_service="privacy")
    uow = world.make(api.deps.unit_of_work().context)
    with uow:
        api.api.erasure_requested(uow, {"request_id": "r9", "subject_id": joana, "mode": "anonymisation"})
    assert world.api(admin).message(mj)["body"] is None and world.api(admin).message(mp)["body"]
    assert world.store.published("messaging.subject_erased.v1")[0]["data"]["request_id"] == "r9"
    with pytest.raises(ValueError), world.make(api.deps.unit_of_work().context) as uow:
        api.api.erasure_requested(uow, {"request_id": "r10", "subject_id": "nobody", "mode": "deletion"})


def test_customer_ids_are_privacys_and_paged(world):
    admin = world.staff("admin")
    customers = sorted(world.customer() for _ in range(5))
    api = world.api(admin)
    for n, customer in enumerate(customers):
        api.open_conversation({"customer_id": customer, "channel": "email" if n % 2 else "web"})
    api.open_conversation({"customer_id": customers[0], "channel": "web"})  # twice: listed once
    privacy = world.api(None, caller_service="privacy")
    first = privacy.customer_ids(None, 3)
    assert first["items"] == customers[:3] and first["next"] == customers[2]
    rest = privacy.customer_ids(None, 3, first["next"])
    assert rest == {"items": customers[3:], "next": None}
    assert privacy.customer_ids("email")["items"] == customers[1::2]
    for bad, field in (({"channel": "fax"}, "channel"), ({"limit": 0}, "limit"), ({"limit": "9"}, "limit"),
                       ({"cursor": "x"}, "cursor")):
        with pytest.raises(ServiceError) as caught:
            privacy.customer_ids(**bad)
        assert caught.value.status == 422 and caught.value.extensions["errors"][0]["field"] == field
    with pytest.raises(ServiceError) as caught:
        world.api(admin, caller_service="gateway").customer_ids()
    assert caught.value.status == 403


def test_the_data_map_declares_every_sealed_field():
    from upgestao_messaging.domain.datamap import data_map_document
    from upgestao_messaging.service_layer import attachments

    items = data_map_document()
    declared = {(i["resource"], i["field"]) for i in items}
    assert {("message", "body"), ("conversation", "subject"), ("chat", "title"),
            ("attachment", attachments.CONTENT), ("attachment", attachments.NAME),
            ("attachment", attachments.SHA256)} <= declared
    assert all({"category", "description", "purpose", "legal_basis", "retention", "encrypted_at_rest",
                "shareable_with_integrations"} <= set(i) for i in items)
