"""``push_view`` on fakes: the gateway's call only, each viewer from its verified token, the visibility rule
on the current read model, a body opened once per call and its push audited per recipient."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from upgestao_kernel.access_tokens import AccessClaims
from upgestao_kernel.errors import ServiceError
from upgestao_messaging.service_layer.push import PURPOSE, PushViews


class Tokens:
    """Stands in for the kernel's verifier: a token is ``tok:<user>:<role>``; anything else is invalid."""

    def __call__(self, token: str) -> AccessClaims | None:
        parts = token.split(":")
        if len(parts) != 3 or parts[0] != "tok":
            return None
        return AccessClaims(subject=parts[1], session_id=f"s-{parts[1]}", role=parts[2],
                            expires_at=datetime.now(UTC) + timedelta(minutes=15))


def token(world, user_id: str) -> str:
    return f"tok:{user_id}:{world.directory.people[user_id].role}"


def push(world, items, viewers, caller: str | None = "gateway"):
    deps = world.api(None, caller_service=caller).deps
    return PushViews(deps, Tokens()).push_view(items, viewers)


def items_of(world, *event_types: str) -> list[dict]:
    published = [e for e in world.store.published() if not event_types or e["type"] in event_types]
    return [{"seq": 100 + n, "event": event} for n, event in enumerate(published)]


def pushed_to(answer, index: int) -> list[tuple[str, dict]]:
    return [(item["type"], item["data"]) for item in answer["items"] if item["viewer"] == index]


@pytest.fixture
def desk(world):
    """An admin, a supervisor and an attendant of one team, an attendant of none, and a conversation of the
    team, unassigned, with one message."""
    admin = world.staff("admin")
    supervisor, attendant, outsider = world.staff("supervisor"), world.staff("attendant"), world.staff("attendant")
    team = world.api(admin).create_team("Suporte", [supervisor, attendant])["id"]
    customer = world.customer()
    conversation = world.api(attendant).open_conversation({"customer_id": customer, "channel": "web",
                                                           "team_id": team})["id"]
    message = world.api(attendant).send_message(conversation, {"body": "Olá, posso ajudar?",
                                                               "direction": "outgoing"})["message"]
    return dict(admin=admin, supervisor=supervisor, attendant=attendant, outsider=outsider, team=team,
                customer=customer, conversation=conversation, message=message)


def test_only_the_gateway_may_ask(world, desk):
    items = items_of(world, "messaging.message_created.v1")
    for caller in (None, "notifier", "identity"):
        with pytest.raises(ServiceError) as refused:
            push(world, items, [token(world, desk["attendant"])], caller=caller)
        assert refused.value.status == 403
    assert world.store.audit_records(outcome="denied", purpose=PURPOSE)
    assert not world.store.audit_records(outcome="success", purpose=PURPOSE)


def test_a_message_goes_to_who_may_see_its_conversation_with_its_body(world, desk):
    viewers = [token(world, desk[name]) for name in ("attendant", "outsider", "supervisor", "admin")]
    answer = push(world, items_of(world, "messaging.message_created.v1"), viewers)
    for index in (0, 2, 3):
        ((kind, data),) = pushed_to(answer, index)
        assert kind == "message.created"
        assert data["id"] == desk["message"]["id"] and data["body"] == "Olá, posso ajudar?"
        assert data["conversation_id"] == desk["conversation"]
    assert pushed_to(answer, 1) == []  # an attendant of another team: nothing, not even that it exists
    assert {item["seq"] for item in answer["items"]} == {100}


def test_the_body_is_opened_once_and_each_recipients_push_is_audited(world, desk):
    decrypts = len([op for op in world.store.vault_log if op[0] == "open"])
    viewers = [token(world, desk[name]) for name in ("attendant", "supervisor", "admin", "outsider")]
    push(world, items_of(world, "messaging.message_created.v1"), viewers)
    assert len([op for op in world.store.vault_log if op[0] == "open"]) == decrypts + 1
    records = world.store.audit_records(purpose=PURPOSE)
    assert sorted(r["actor_id"] for r in records) == sorted([desk["attendant"], desk["supervisor"], desk["admin"]])
    for record in records:
        assert (record["action"], record["resource_type"], record["resource_id"]) == (
            "read", "message", desk["message"]["id"])
        assert record["subject_id"] == desk["customer"] and record["fields"] == ["body"]
        assert record["outcome"] == "success"


def test_invalid_tokens_get_nothing_and_the_indexes_stay_aligned(world, desk):
    viewers = ["garbage", token(world, desk["attendant"]), "tok:system:system"]
    answer = push(world, items_of(world, "messaging.message_created.v1"), viewers)
    assert [item["viewer"] for item in answer["items"]] == [1]


def test_the_visibility_is_the_current_one_not_the_events(world, desk):
    items = items_of(world, "messaging.message_created.v1")
    world.api(desk["admin"]).update_conversation(desk["conversation"], {"assignee_id": desk["supervisor"]})
    viewers = [token(world, desk["attendant"]), token(world, desk["supervisor"])]
    answer = push(world, items, viewers)  # the attendant no longer sees an assigned conversation of the team
    assert pushed_to(answer, 0) == [] and len(pushed_to(answer, 1)) == 1


def test_a_reassignment_tells_the_new_assignee_and_the_previous_one_drops_it(world, desk):
    admin = world.api(desk["admin"])
    admin.update_conversation(desk["conversation"], {"assignee_id": desk["attendant"]})
    admin.update_conversation(desk["conversation"], {"assignee_id": desk["outsider"]})
    items = items_of(world, "messaging.conversation_assigned.v1")[-1:]
    viewers = [token(world, desk["outsider"]), token(world, desk["attendant"]), token(world, desk["supervisor"])]
    answer = push(world, items, viewers)
    ((kind, data),) = pushed_to(answer, 0)
    assert kind == "conversation.assigned" and data["assignee_id"] == desk["outsider"] and data["subject"] is None
    assert pushed_to(answer, 1) == [("conversation.assigned", {"id": desk["conversation"], "visible": False})]
    ((kind, data),) = pushed_to(answer, 2)  # a supervisor (read_team) still sees their team's conversation
    assert kind == "conversation.assigned" and data["assignee_id"] == desk["outsider"]


def test_status_changes_are_conversation_updates_without_subject_or_unread(world, desk):
    world.api(desk["attendant"]).update_conversation(desk["conversation"], {"status": "pending"})
    items = items_of(world, "messaging.conversation_status_changed.v1")
    answer = push(world, items, [token(world, desk["supervisor"]), token(world, desk["outsider"])])
    ((kind, data),) = pushed_to(answer, 0)
    assert kind == "conversation.updated" and data["status"] == "pending"
    assert data["subject"] is None and data["unread"] is None  # (the client counts from the events it gets)
    assert data["id"] == desk["conversation"] and data["team_id"] == desk["team"]
    assert pushed_to(answer, 1) == []
    assert not world.store.audit_records(purpose=PURPOSE)  # nothing personal was pushed


def test_a_deleted_message_is_an_update_without_a_body_or_a_content_read(world, desk):
    world.api(desk["attendant"]).delete_message(desk["message"]["id"])
    items = items_of(world, "messaging.message_deleted.v1")
    answer = push(world, items, [token(world, desk["attendant"])])
    ((kind, data),) = pushed_to(answer, 0)
    assert kind == "message.updated" and data["deleted"] is True and data["body"] is None
    assert not world.store.audit_records(purpose=PURPOSE)


def test_a_chat_message_goes_to_its_members_only_not_to_a_moderator(world, desk):
    chat = world.api(desk["attendant"]).create_chat({"kind": "direct", "member_ids": [desk["supervisor"]]})["id"]
    world.api(desk["supervisor"]).send_chat_message(chat, {"body": "Pode cobrir meu turno?"})
    items = items_of(world, "messaging.message_created.v1")[-1:]
    viewers = [token(world, desk[name]) for name in ("attendant", "supervisor", "admin")]
    answer = push(world, items, viewers)
    assert [data["body"] for _, data in pushed_to(answer, 0)] == ["Pode cobrir meu turno?"]
    assert len(pushed_to(answer, 1)) == 1
    assert pushed_to(answer, 2) == []


def test_read_receipts_go_to_who_sees_the_conversation(world, desk):
    world.api(desk["supervisor"]).mark_read(desk["conversation"], desk["message"]["id"])
    items = items_of(world, "messaging.conversation_read.v1")
    answer = push(world, items, [token(world, desk["attendant"]), token(world, desk["outsider"])])
    ((kind, data),) = pushed_to(answer, 0)
    assert kind == "conversation.read"
    assert (data["conversation_id"], data["user_id"], data["message_id"]) == (
        desk["conversation"], desk["supervisor"], desk["message"]["id"])
    assert data["read_at"] is not None
    assert pushed_to(answer, 1) == []


def test_events_are_pointers_only_what_they_claim_is_not_believed(world, desk):
    forged = {"type": "messaging.message_created.v1",
              "data": {"message_id": desk["message"]["id"], "conversation_id": "not-this-one",
                       "chat_id": None, "author_id": desk["outsider"]}}
    answer = push(world, [{"seq": 7, "event": forged}], [token(world, desk["outsider"])])
    assert answer == {"items": []}  # the message's real conversation decides, and the outsider cannot see it


@pytest.mark.parametrize("items, viewers", [
    ("not a list", []),
    ([{"seq": "1", "event": {}}], []),
    ([{"seq": -1, "event": {}}], []),
    ([{"seq": 1}], []),
    ([], "tok"),
    ([], [""]),
    ([{"seq": n, "event": {}} for n in range(501)], []),
])
def test_malformed_calls_are_422(world, items, viewers):
    with pytest.raises(ServiceError) as refused:
        push(world, items, viewers)
    assert refused.value.status == 422


def test_unknown_event_types_and_unknown_ids_are_skipped(world, desk):
    items = [{"seq": 1, "event": {"type": "messaging.team_created.v1", "data": {"team_id": desk["team"]}}},
             {"seq": 2, "event": {"type": "messaging.message_created.v1",
                                  "data": {"message_id": "6c1e2b4e-7f6d-4f38-9a57-4b9ae8f6f0a1"}}},
             {"seq": 3, "event": {"type": "messaging.message_created.v1", "data": {"message_id": "nope"}}}]
    assert push(world, items, [token(world, desk["admin"])]) == {"items": []}
