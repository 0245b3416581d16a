"""``push_view`` on a running messaging (real RabbitMQ and PostgreSQL, the vault, signed tokens): the
gateway's broker user only, viewers' tokens verified with identity's keys, bodies for who may see them,
each push in the audit outbox naming its recipient."""

from __future__ import annotations

import pytest
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.testing_tokens import signed_token

from .conftest import PEOPLE


def envelope(event_type: str, **data) -> dict:
    return {"type": event_type, "occurred_at": "2026-01-01T00:00:00+00:00", "data": data}


def token(user_id: str) -> str:
    return signed_token(user_id, PEOPLE[user_id]["role"])


@pytest.fixture
def scene(desk):
    admin, attendant, outsider = desk.person(role="admin"), desk.person(), desk.person()
    customer = desk.person(kind="customer")
    team = desk.caller(admin).create_team("Suporte", [attendant])["id"]
    conversation = desk.caller(attendant).open_conversation({"customer_id": customer, "channel": "web",
                                                             "team_id": team})["id"]
    sent = desk.caller(attendant).send_message(conversation, {"body": "Seu pedido saiu hoje",
                                                              "direction": "outgoing"})["message"]
    return dict(admin=admin, attendant=attendant, outsider=outsider, customer=customer, conversation=conversation,
                message=sent["id"])


def test_push_view_answers_the_gateway_what_each_viewer_may_see(desk, scene):
    items = [{"seq": 41, "event": envelope("messaging.message_created.v1", message_id=scene["message"],
                                           conversation_id=scene["conversation"])}]
    viewers = [token(scene["attendant"]), token(scene["outsider"]), "not-a-token", token(scene["admin"])]
    answer = desk.caller(service="gateway").push_view(items=items, viewers=viewers)
    by_viewer = {item["viewer"]: item for item in answer["items"]}
    assert sorted(by_viewer) == [0, 3]
    for item in by_viewer.values():
        assert (item["seq"], item["type"]) == (41, "message.created")
        assert item["data"]["id"] == scene["message"] and item["data"]["body"] == "Seu pedido saiu hoje"
    rows = desk.rows("SELECT body FROM outbox WHERE exchange = 'audit'")
    pushes = [r.body for r in rows if r.body["purpose"] == "live push"]
    assert sorted(p["actor_id"] for p in pushes) == sorted([scene["attendant"], scene["admin"]])
    assert {(p["resource_id"], p["subject_id"], tuple(p["fields"])) for p in pushes} == {
        (scene["message"], scene["customer"], ("body",))}


@pytest.mark.parametrize("service", [None, "notifier", "identity"])
def test_push_view_refuses_anyone_but_the_gateway(desk, scene, service):
    items = [{"seq": 1, "event": envelope("messaging.message_created.v1", message_id=scene["message"])}]
    caller = desk.caller(scene["attendant"], service=service) if service is None else desk.caller(service=service)
    with pytest.raises(ServiceError) as refused:
        caller.push_view(items=items, viewers=[token(scene["attendant"])])
    assert refused.value.status == 403
    assert not [r for r in desk.rows("SELECT body FROM outbox WHERE exchange = 'audit'")
                if r.body["purpose"] == "live push" and r.body["outcome"] == "success"]
