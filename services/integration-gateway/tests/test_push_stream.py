"""The live push end to end at the gateway: a running gateway (as its own broker user), identity's tokens,
messaging's events published on ``messaging.events`` as messaging's broker user, a fake messaging deciding
who sees what (``push_view``), and real WebSocket clients (``websocket-client``).

What is proven: a socket authenticated by its first message or by ``Sec-WebSocket-Protocol`` receives the
events messaging returned for it and nothing else; a reconnection with ``last_seq`` receives what it
missed, in order, without loss; a revoked token is closed with 4001 at once; the token is never accepted in
the URL; the Origin, the auth timeout, the message size, the permission and the per-user cap are enforced;
an event in the stream that messaging did not publish is not pushed."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import jwt
import pytest
import requests
import websocket
from kombu import Connection, Producer
from nameko.containers import ServiceContainer
from push_harness import PushGateway, free_port, hub_of, publish_event
from upgestao_gateway.push.stream import EVENT_TYPES, QUEUE
from upgestao_kernel.nameko_ext import rpc
from upgestao_kernel.testing import (
    _api,
    isolated_service,
    service_amqp_uri,
    wait_for,
)

ROLES = {
    "attendant": ["conversations.read", "conversations.write"],
    "dpo": ["audit.read"],  # neither conversations.read nor chats.use
}


class State:
    def __init__(self) -> None:
        self.jwks: list[dict] = []
        self.calls: list[tuple[list[int], list[str]]] = []


STATE = State()


class FakeIdentity:
    name = "identity"

    @rpc
    def public_keys(self) -> dict:
        return {"keys": list(STATE.jwks)}

    @rpc
    def role_permissions(self) -> dict:
        return {"roles": ROLES}


class FakeMessaging:
    """Returns, for each viewer, the events whose data lists its user in ``visible_to`` (the real one applies
    its visibility rule: tests/test_messaging_push_e2e.py)."""

    name = "messaging"

    @rpc
    def push_view(self, items: list, viewers: list) -> dict:
        users = [jwt.decode(token, options={"verify_signature": False})["sub"] for token in viewers]
        STATE.calls.append(([item["seq"] for item in items], users))
        answer = []
        for item in items:
            data = item["event"]["data"]
            for index, user in enumerate(users):
                if user in data.get("visible_to", ()):
                    answer.append({"viewer": index, "seq": item["seq"], "type": "message.created",
                                   "data": {"id": data["message_id"], "body": f"body of {data['message_id']}"}})
        return {"items": answer}


class PushPlatform:
    def __init__(self, vhost: str, amqp_uri: str, issuer) -> None:
        self.vhost = vhost
        self.amqp_uri = amqp_uri
        self.issuer = issuer
        self.kid = issuer.new_key()
        STATE.jwks.append(issuer.jwk(self.kid))
        self.containers: list[ServiceContainer] = []
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/v1/stream"
        self.http = f"http://127.0.0.1:{self.port}"

    def start(self, service_cls: type, amqp_uri: str, **config) -> ServiceContainer:
        container = ServiceContainer(service_cls, {"AMQP_URI": amqp_uri, "serializer": "json", **config})
        container.start()
        self.containers.append(container)
        return container

    @property
    def gateway(self) -> ServiceContainer:
        return self.containers[-1]

    @property
    def hub(self):
        return hub_of(self.gateway)

    def token(self, user: str, role: str = "attendant", **claims) -> tuple[str, dict]:
        payload = self.issuer.claims(sub=user, role=role, **claims)
        return self.issuer.token(self.kid, payload), payload

    def publish(self, event_type: str, data: dict, as_service: str | None = "messaging") -> None:
        publish_event(self.amqp_uri, event_type, data, as_service)

    def message(self, message_id: str, *visible_to: str) -> None:
        self.publish("messaging.message_created.v1", {"message_id": message_id, "visible_to": list(visible_to)})

    def revoke(self, session_id: str, user_id: str) -> None:
        self.publish("identity.session_revoked.v1", {"session_id": session_id, "user_id": user_id,
                                                     "reason": "logout"}, as_service="identity")


@pytest.fixture(scope="module")
def platform(issuer, tmp_path_factory):
    with isolated_service("gateway", "upgestao_gateway:migrations", tmp_path_factory.mktemp("var"),
                          "push-test") as isolated:
        isolated.env.setenv("GATEWAY_STREAM_AUTH_TIMEOUT_S", "1")
        isolated.env.setenv("GATEWAY_STREAM_MAX_PER_USER", "3")
        isolated.env.setenv("GATEWAY_STREAM_MESSAGE_TIMEOUT_S", "1")
        platform = PushPlatform(isolated.vhost, isolated.amqp_uri, issuer)
        try:
            platform.start(FakeIdentity, isolated.amqp_uri)
            platform.start(FakeMessaging, isolated.amqp_uri)
            # the gateway as its own broker user: its permissions let it bind its stream to messaging.events
            platform.start(PushGateway, service_amqp_uri(isolated.amqp_uri, "gateway"),
                           WEB_SERVER_ADDRESS=f"127.0.0.1:{platform.port}")
            wait_for(lambda: platform.hub is not None and platform.hub.ring.started, timeout=15)
            yield platform
        finally:
            for container in reversed(platform.containers):
                container.kill()


@pytest.fixture
def fast_teardown():
    """Overrides nameko's autouse fixture: the module's containers outlive each test."""
    yield


# -- a client --------------------------------------------------------------------------------------


class Closed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code = code
        self.reason = reason


def receive(ws: websocket.WebSocket, timeout: float = 5.0) -> dict:
    """The next JSON message; :class:`Closed` (with the server's code) when the server closed."""
    ws.settimeout(timeout)
    while True:
        opcode, frame = ws.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else None
            raise Closed(code, frame.data[2:].decode("utf-8", "replace"))
        if opcode == websocket.ABNF.OPCODE_TEXT:
            return json.loads(frame.data.decode("utf-8"))


def closed_with(ws: websocket.WebSocket, timeout: float = 5.0) -> Closed:
    with pytest.raises(Closed) as closed:
        while True:
            receive(ws, timeout)
    return closed.value


def nothing_more(ws: websocket.WebSocket, wait_s: float = 0.5) -> None:
    with pytest.raises(websocket.WebSocketTimeoutException):
        message = receive(ws, wait_s)
        raise AssertionError(f"unexpected {message}")


def connect(platform: PushPlatform, token: str | None = None, last_seq: int | None = None, **options):
    ws = websocket.create_connection(platform.url, timeout=5, **options)
    if token is not None:
        ws.send(json.dumps({"type": "auth", "token": token, "last_seq": last_seq}))
        ready = receive(ws)
        assert ready["type"] == "ready", ready
        ws.ready_seq = ready["seq"]
    return ws


def events_until(ws: websocket.WebSocket, message_id: str) -> list[dict]:
    seen = []
    while True:
        message = receive(ws)
        seen.append(message)
        if message.get("data", {}).get("id") == message_id:
            return seen


# -- the tests -------------------------------------------------------------------------------------


def test_the_stream_is_bound_to_messagings_push_events(platform):
    vhost = quote(platform.vhost, safe="")
    info = _api("GET", f"/api/queues/{vhost}/{quote(QUEUE, safe='')}").json()
    assert info["arguments"]["x-queue-type"] == "stream"
    bindings = _api("GET", f"/api/queues/{vhost}/{quote(QUEUE, safe='')}/bindings").json()
    assert {(b["source"], b["routing_key"]) for b in bindings if b["source"]} == {
        ("messaging.events", event_type) for event_type in EVENT_TYPES}


def test_an_allowed_user_receives_the_event_and_another_receives_nothing(platform):
    ana, _ = platform.token("user-ana")
    bob, _ = platform.token("user-bob")
    with_ana, with_bob = connect(platform, ana), connect(platform, bob)
    try:
        platform.message("m-ana-only", "user-ana")
        platform.message("m-both", "user-ana", "user-bob")
        first = receive(with_ana)
        assert first["type"] == "message.created" and first["seq"] > with_ana.ready_seq
        assert first["data"] == {"id": "m-ana-only", "body": "body of m-ana-only"}
        assert receive(with_ana)["data"]["id"] == "m-both"
        # bob's first event is the second message: the first was never sent to him
        only = receive(with_bob)
        assert only["data"]["id"] == "m-both" and only["seq"] > first["seq"]
        nothing_more(with_bob)
    finally:
        with_ana.close()
        with_bob.close()


def test_the_token_may_come_in_the_subprotocol_header_and_only_upgestao_v1_is_echoed(platform):
    token, _ = platform.token("user-carla")
    ws = websocket.create_connection(platform.url, timeout=5,
                                     subprotocols=["upgestao.v1", f"upgestao.bearer.{token}"])
    try:
        assert ws.getsubprotocol() == "upgestao.v1"
        assert receive(ws)["type"] == "ready"
        platform.message("m-carla", "user-carla")
        assert receive(ws)["data"]["id"] == "m-carla"
        ws.send(json.dumps({"type": "ping"}))
        assert receive(ws) == {"type": "pong"}
    finally:
        ws.close()


def test_a_reconnection_with_last_seq_receives_what_it_missed_without_loss(platform):
    token, _ = platform.token("user-dora")
    ws = connect(platform, token)
    platform.message("m-dora-1", "user-dora")
    seen = receive(ws)
    assert seen["data"]["id"] == "m-dora-1"
    ws.close()
    wait_for(lambda: not any(s.user_id == "user-dora" for s in platform.hub.subscribers), timeout=5)
    for n in range(2, 6):
        platform.message(f"m-dora-{n}", "user-dora")
        platform.message(f"m-other-{n}", "user-someone-else")
    wait_for(lambda: sum(1 for e in platform.hub.ring.after(seen["seq"])) >= 8, timeout=10)
    again = connect(platform, token, last_seq=seen["seq"])
    try:
        assert again.ready_seq == seen["seq"]
        platform.message("m-dora-6", "user-dora")
        replayed = events_until(again, "m-dora-6")
        assert [m["data"]["id"] for m in replayed] == [f"m-dora-{n}" for n in range(2, 7)]
        seqs = [m["seq"] for m in replayed]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    finally:
        again.close()


def test_a_revoked_token_closes_the_socket_with_4001_at_once(platform):
    token, claims = platform.token("user-eva")
    other, _ = platform.token("user-eva")  # another session of the same user stays open
    ws, kept = connect(platform, token), connect(platform, other)
    try:
        started = time.monotonic()
        platform.revoke(claims["sid"], "user-eva")
        closed = closed_with(ws)
        assert closed.code == 4001 and "revoked" in closed.reason
        assert time.monotonic() - started < 3
        platform.message("m-eva", "user-eva")
        assert receive(kept)["data"]["id"] == "m-eva"
        with pytest.raises(Closed) as refused:  # the revoked token cannot open another socket
            connect(platform, token)
        assert refused.value.code == 4001
    finally:
        ws.close()
        kept.close()


def test_an_expired_or_forged_token_is_closed_with_4001(platform):
    expired, _ = platform.token("user-fred", iat=int(time.time()) - 2000)
    forged = jwt.encode(platform.issuer.claims(sub="user-fred"), "a-shared-secret-of-at-least-32-bytes!",
                        algorithm="HS256", headers={"kid": platform.kid})
    for token, detail in ((expired, "expired"), (forged, "invalid")):
        ws = websocket.create_connection(platform.url, timeout=5)
        ws.send(json.dumps({"type": "auth", "token": token}))
        closed = closed_with(ws)
        assert closed.code == 4001 and detail in closed.reason
        ws.close()


def test_a_token_in_the_url_is_refused_before_the_upgrade(platform):
    token, _ = platform.token("user-gil")
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"{platform.url}?token={token}", timeout=5)
    assert refused.value.status_code == 400
    response = requests.get(f"{platform.http}/v1/stream?access_token={token}", timeout=5,
                            headers={"Connection": "Upgrade", "Upgrade": "websocket"})
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    assert token not in response.text
    assert response.headers["X-Request-ID"]


def test_a_plain_get_is_told_to_upgrade(platform):
    response = requests.get(f"{platform.http}/v1/stream", timeout=5)
    assert response.status_code == 426
    assert response.headers["Upgrade"] == "websocket"
    assert response.headers["Content-Type"] == "application/problem+json"


def test_another_origin_is_refused(platform):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(platform.url, timeout=5, origin="https://evil.example")
    assert refused.value.status_code == 403
    ws = websocket.create_connection(platform.url, timeout=5, origin=f"http://127.0.0.1:{platform.port}")
    ws.close()


def test_a_socket_that_does_not_authenticate_in_time_is_closed(platform):
    ws = websocket.create_connection(platform.url, timeout=5)
    started = time.monotonic()
    closed = closed_with(ws)
    assert closed.code == 4001 and 0.8 < time.monotonic() - started < 4
    ws.close()


def test_a_first_message_that_is_not_auth_or_not_the_protocol_is_refused(platform):
    ws = websocket.create_connection(platform.url, timeout=5)
    ws.send(json.dumps({"type": "ping"}))
    assert closed_with(ws).code == 4001
    ws.close()
    ws = websocket.create_connection(platform.url, timeout=5)
    ws.send("not json")
    assert closed_with(ws).code == 1008
    ws.close()


def test_a_message_over_the_size_limit_closes_the_socket(platform):
    ws = websocket.create_connection(platform.url, timeout=5)
    ws.send(json.dumps({"type": "auth", "token": "x" * 20_000}))
    assert closed_with(ws).code == 1009
    ws.close()
    ws = websocket.create_connection(platform.url, timeout=5)  # the same, in small fragments
    ws.send_frame(websocket.ABNF.create_frame("{" + " " * 4000, websocket.ABNF.OPCODE_TEXT, fin=0))
    for _ in range(4):
        ws.send_frame(websocket.ABNF.create_frame(" " * 4000, websocket.ABNF.OPCODE_CONT, fin=0))
    assert closed_with(ws).code == 1009
    ws.close()


def test_a_client_that_stalls_mid_message_is_closed_with_1008_and_others_are_served(platform):
    """Each byte used to restart the idle timeout: an authenticated client could hold a frame open for ever
    (a few bytes a minute), and with it one of its sockets and the gateway's green thread."""
    ana, _ = platform.token("user-ana")
    staller, bystander = connect(platform, ana), connect(platform, ana)
    try:
        frame = websocket.ABNF.create_frame(json.dumps({"type": "ping"}), websocket.ABNF.OPCODE_TEXT).format()
        staller.sock.send(frame[:8])  # the header, the mask and two bytes of the payload
        started = time.monotonic()
        time.sleep(0.6)
        staller.sock.send(frame[8:9])  # a byte now and then: what the idle timeout let through
        closed = closed_with(staller)
        assert closed.code == 1008 and "within 1 seconds" in closed.reason
        assert time.monotonic() - started < 4
        platform.message("m-after-stall", "user-ana")
        assert receive(bystander)["data"]["id"] == "m-after-stall"
    finally:
        staller.close()
        bystander.close()


def test_a_user_without_conversations_or_chats_is_refused_with_4003(platform):
    token, _ = platform.token("user-hana", role="dpo")
    ws = websocket.create_connection(platform.url, timeout=5)
    ws.send(json.dumps({"type": "auth", "token": token}))
    assert closed_with(ws).code == 4003
    ws.close()


def test_a_user_may_open_three_sockets_not_four(platform):
    token, _ = platform.token("user-ines")
    sockets = [connect(platform, token) for _ in range(3)]
    try:
        with pytest.raises(Closed) as refused:
            connect(platform, token)
        assert refused.value.code == 4029
    finally:
        for ws in sockets:
            ws.close()


def test_a_renewed_token_must_be_the_same_users(platform):
    token, _ = platform.token("user-joao")
    renewed, _ = platform.token("user-joao")
    someone, _ = platform.token("user-kai")
    ws = connect(platform, token)
    try:
        ws.send(json.dumps({"type": "auth", "token": renewed}))
        platform.message("m-joao", "user-joao")
        assert receive(ws)["data"]["id"] == "m-joao"
        ws.send(json.dumps({"type": "auth", "token": someone}))
        assert closed_with(ws).code == 4001
    finally:
        ws.close()


def test_an_event_messaging_did_not_publish_is_not_pushed(platform):
    token, _ = platform.token("user-lia")
    ws = connect(platform, token)
    try:
        calls = len(STATE.calls)
        # straight into the stream through the default exchange, as the administrator (whom no service is)
        envelope = {"type": "messaging.message_created.v1", "data": {"message_id": "m-forged",
                                                                     "visible_to": ["user-lia"]}}
        with Connection(platform.amqp_uri, transport_options={"confirm_publish": True}) as connection:
            Producer(connection.default_channel, serializer="json").publish(
                envelope, exchange="", routing_key=QUEUE, mandatory=True, retry=False)
        platform.message("m-real", "user-lia")
        assert receive(ws)["data"]["id"] == "m-real"
        assert all("m-forged" not in str(call) for call in STATE.calls[calls:])
    finally:
        ws.close()
