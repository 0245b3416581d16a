"""Attacks on the live push (issue 13), against the whole platform: another service's broker credentials
(the notifier's, which may publish through the default exchange to retry and park its own messages) used to
inject a forged event straight into the gateway's push stream, or to ask messaging for what a stolen token
may see. Each attack has its control: the same thing done rightly works, so a test fails for the right reason.
"""

from __future__ import annotations

import json
import uuid

import pytest
import upgestao_kernel.nameko_ext  # noqa: F401  (every publish carries the user_id RabbitMQ checks)
import upgestao_kernel.nameko_ext.rpc  # noqa: F401  (answers rebuilt as ServiceError, not RemoteError)
import websocket
from e2e_messaging import messaging_as, new_desk
from kombu import Connection, Producer
from upgestao_kernel.errors import ServiceError

pytestmark = pytest.mark.e2e
pytest_plugins = ["e2e_messaging_fixtures"]  # api, admin_token, dpo, desk

PUSH_STREAM = "gateway.push-events"


def stream_of(platform, token: str) -> websocket.WebSocket:
    ws = websocket.create_connection(platform.url.replace("http://", "ws://", 1) + "/v1/stream", timeout=15)
    ws.send(json.dumps({"type": "auth", "token": token}))
    assert json.loads(ws.recv())["type"] == "ready"
    return ws


def next_message_created(ws: websocket.WebSocket) -> dict:
    while True:
        event = json.loads(ws.recv())
        if event["type"] == "message.created":
            return event


def test_an_event_injected_into_the_push_stream_by_another_service_is_not_pushed(api, platform, admin_token):
    desk = new_desk(api, platform, admin_token)
    a = desk.staff("a")
    conversation = desk.conversation(desk.admin, desk.customer(), team_id=desk.team(a))
    ws = stream_of(platform, a.token)
    try:
        old = desk.send(desk.admin, conversation["id"], "uma mensagem antiga")
        assert next_message_created(ws)["data"]["id"] == old["id"]  # its real event, pushed once
        forged = {"event_id": str(uuid.uuid4()), "stream_id": f"message-{old['id']}", "version": 1,
                  "type": "messaging.message_created.v1", "occurred_at": "2026-01-01T00:00:00+00:00",
                  "actor": {"id": None, "role": None}, "correlation_id": None, "causation_id": None,
                  "data": {"message_id": old["id"], "conversation_id": conversation["id"]}}
        with Connection(platform.broker_uris["notifier"], transport_options={"confirm_publish": True}) as conn:
            Producer(conn.default_channel, serializer="json").publish(
                forged, exchange="", routing_key=PUSH_STREAM, mandatory=True, retry=False)
        control = desk.send(desk.admin, conversation["id"], "a mensagem nova")
        # the forged pointer (to the old message, which a may see) would have come first: only the real event
        assert next_message_created(ws)["data"]["id"] == control["id"]
    finally:
        ws.close()


def test_another_service_cannot_ask_messaging_what_a_stolen_token_may_see(api, platform, admin_token):
    desk = new_desk(api, platform, admin_token)
    a = desk.staff("a")
    conversation = desk.conversation(desk.admin, desk.customer(), team_id=desk.team(a))
    sent = desk.send(desk.admin, conversation["id"], "confidencial")
    items = [{"seq": 1, "event": {"type": "messaging.message_created.v1", "data": {"message_id": sent["id"]}}}]
    for service in ("notifier", "privacy"):
        with messaging_as(platform, service) as messaging, pytest.raises(ServiceError) as refused:
            messaging.push_view(items=items, viewers=[a.token])
        assert refused.value.status == 403
    with messaging_as(platform, "gateway") as messaging:  # the control: the gateway's own broker user
        answer = messaging.push_view(items=items, viewers=[a.token])
    assert [(item["viewer"], item["data"]["body"]) for item in answer["items"]] == [(0, "confidencial")]
