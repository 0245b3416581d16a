"""Staff chat on fakes: direct chats are one per pair, groups are managed by their creator or a moderator,
a removed member keeps no access, titles and bodies are sealed under their authors."""

from __future__ import annotations

import pytest
from upgestao_kernel.errors import ServiceError


@pytest.fixture
def staff(world):
    return world, world.staff("admin"), world.staff("attendant"), world.staff("attendant"), world.staff("supervisor")


def test_a_direct_chat_is_one_per_pair(staff):
    world, admin, ana, bia, _ = staff
    chat = world.api(ana).create_chat({"kind": "direct", "member_ids": [bia]})
    assert chat["kind"] == "direct" and sorted(chat["member_ids"]) == sorted([ana, bia]) and chat["title"] is None
    assert chat["created"] is True
    again = world.api(bia).create_chat({"kind": "direct", "member_ids": [ana]})
    assert again["id"] == chat["id"] and again["created"] is False
    assert len(world.store.published("messaging.chat_created.v1")) == 1
    for data in ({"kind": "direct", "member_ids": [bia, admin]}, {"kind": "direct", "member_ids": [ana]},
                 {"kind": "direct", "member_ids": [bia], "title": "x"}, {"kind": "triad", "member_ids": [bia]}):
        with pytest.raises(ServiceError) as caught:
            world.api(ana).create_chat(data)
        assert caught.value.status == 422
    with pytest.raises(ServiceError) as caught:
        world.api(ana).add_chat_member(chat["id"], admin)
    assert caught.value.status == 409


def test_members_must_be_active_staff(staff):
    world, admin, ana, bia, _ = staff
    for bad in (world.customer(), world.staff(active=False)):
        with pytest.raises(ServiceError) as caught:
            world.api(ana).create_chat({"kind": "group", "member_ids": [bia, bad]})
        assert caught.value.extensions["errors"][0]["field"] == "member_ids"


def test_a_group_members_read_and_post_and_nobody_else(staff):
    world, admin, ana, bia, sup = staff
    chat = world.api(ana).create_chat({"kind": "group", "member_ids": [bia], "title": "Plantão de sábado"})
    assert chat["title"] == "Plantão de sábado" and chat["creator_id"] == ana
    row = world.store.rows("chats")[0]
    assert "Plantão" not in str(row)
    assert world.store.audit_records(action="create", resource_type="chat")[0]["subject_id"] == ana
    sent = world.api(bia).send_chat_message(chat["id"], {"body": "Quem cobre a manhã?", "client_message_id": "k1"})
    assert sent["created"] and sent["message"]["direction"] == "internal" and sent["message"]["chat_id"] == chat["id"]
    assert world.store.rows("messages")[0]["key_subject_id"] == bia  # sealed under its author
    assert world.api(ana).chat_messages(chat["id"])["items"][0]["body"] == "Quem cobre a manhã?"
    assert world.api(ana).chats()["items"][0]["unread"] == 1
    assert world.api(ana).unread()["items"] == [{"chat_id": chat["id"], "unread": 1}]
    world.api(ana).mark_chat_read(chat["id"], sent["message"]["id"])
    assert world.api(ana).unread()["total"] == 0
    for outsider in (sup, admin):  # the admin moderates, but does not read a chat they are not in
        api = world.api(outsider)
        mid = sent["message"]["id"]
        calls = (("chat", (chat["id"],)), ("chat_messages", (chat["id"],)),
                 ("send_chat_message", (chat["id"], {"body": "oi"})), ("message", (mid,)),
                 ("message_history", (mid,)), ("mark_chat_read", (chat["id"], mid)))
        for name, args in calls:
            with pytest.raises(ServiceError) as caught:
                getattr(api, name)(*args)
            assert caught.value.status == 404, name
        assert api.chats()["items"] == [] and api.search("manhã")["items"] == []
    assert [m["id"] for m in world.api(ana).search("QUEM cobre")["items"]] == [sent["message"]["id"]]


def test_membership_by_the_creator_or_a_moderator_and_removal_is_total(staff):
    world, admin, ana, bia, sup = staff
    chat = world.api(ana).create_chat({"kind": "group", "member_ids": [bia], "title": "Equipe"})["id"]
    with pytest.raises(ServiceError) as caught:
        world.api(bia).add_chat_member(chat, sup)
    assert caught.value.status == 403
    assert world.store.audit_records(outcome="denied", actor_id=bia, resource_id=chat)  # every 403 is audited
    added = world.api(admin).add_chat_member(chat, sup)  # the moderator manages without reading
    assert sup in added["member_ids"] and added["title"] is None
    world.api(sup).send_chat_message(chat, {"body": "cheguei"})
    assert world.api(bia).remove_chat_member(chat, bia)["member_ids"] == sorted([ana, sup])  # leaving
    with pytest.raises(ServiceError) as caught:
        world.api(bia).chat_messages(chat)
    assert caught.value.status == 404
    assert world.api(bia).search("cheguei")["items"] == [] and world.api(bia).unread()["total"] == 0
    world.api(ana).remove_chat_member(chat, sup)
    assert world.api(sup).chats()["items"] == []
    with pytest.raises(ServiceError) as caught:
        world.api(ana).remove_chat_member(chat, sup)
    assert caught.value.status == 404
    with pytest.raises(ServiceError) as caught:
        world.api(sup).add_chat_member(chat, sup)  # a former member cannot let themself back in
    assert caught.value.status == 404
    removed = world.store.published("messaging.chat_member_removed.v1")
    assert [(e["data"]["user_id"], e["data"]["by_id"]) for e in removed] == [(bia, bia), (sup, ana)]


def test_chat_needs_chats_use(world):
    nobody = world.staff("customer-service-robot")
    with pytest.raises(ServiceError) as caught:
        world.api(nobody).chats()
    assert caught.value.status == 403
