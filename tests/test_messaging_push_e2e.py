"""Live push end to end (issue 13, "Live push"), every service running as a process: a real WebSocket client
(``websocket-client``) on the gateway's ``GET /v1/stream``, messages sent through the gateway, messaging's
events read from the gateway's push stream and judged by messaging's visibility rule (``push_view``).

Proven here: an allowed user receives ``message.created`` with the body, a user who may not see the
conversation receives nothing of it; a reconnection with the last sequence id receives what it missed, in
order, without loss; logging out closes the socket with 4001 at once; a token in the URL is refused before
the upgrade; and every content push is in the audit log (purpose ``live push``, the recipient as actor).
"""

from __future__ import annotations

import json
import time

import pytest
import websocket
from e2e_api import wait_for_audit
from e2e_messaging import Person, words

pytestmark = pytest.mark.e2e
pytest_plugins = ["e2e_messaging_fixtures"]  # api, admin_token, dpo, desk

PUSH_TIMEOUT_S = 15.0


class Closed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code = code
        self.reason = reason


class Stream:
    """A WebSocket on /v1/stream, authenticated by its first message."""

    def __init__(self, platform, person: Person, last_seq: int | None = None) -> None:
        url = platform.url.replace("http://", "ws://", 1) + "/v1/stream"
        self.seen: list[dict] = []
        self.ws = websocket.create_connection(url, timeout=PUSH_TIMEOUT_S)
        self.ws.send(json.dumps({"type": "auth", "token": person.token, "last_seq": last_seq}))
        ready = self.receive()
        assert ready["type"] == "ready", ready
        self.seq = ready["seq"]

    def receive(self, timeout: float = PUSH_TIMEOUT_S) -> dict:
        self.ws.settimeout(timeout)
        while True:
            opcode, frame = self.ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else None
                raise Closed(code, frame.data[2:].decode("utf-8", "replace"))
            if opcode == websocket.ABNF.OPCODE_TEXT:
                return json.loads(frame.data.decode("utf-8"))

    def message(self, message_id: str, timeout: float = PUSH_TIMEOUT_S) -> dict:
        """The next ``message.created`` of ``message_id`` (other events on the way are skipped, and kept)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.receive(max(0.1, deadline - time.monotonic()))
            self.seen.append(event)
            if event["type"] == "message.created" and event["data"]["id"] == message_id:
                return event

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def test_an_allowed_user_receives_the_message_with_its_body_and_another_receives_nothing(desk, platform, api, dpo):
    a, b = desk.staff("a"), desk.staff("b")  # b is in no team: the conversation is not b's to see
    team = desk.team(a)
    conversation = desk.conversation(desk.admin, desk.customer(), team_id=team)
    chat = desk.chat(desk.admin, b)  # something b may see, to prove b's stream works and got nothing before
    with Stream(platform, a) as for_a, Stream(platform, b) as for_b:
        body = f"Seu pedido {words()} saiu para entrega"
        sent = desk.send(desk.admin, conversation["id"], body)
        pushed = for_a.message(sent["id"])
        assert pushed["seq"] > for_a.seq
        data = pushed["data"]
        assert (data["body"], data["conversation_id"], data["author_id"], data["direction"]) == (
            body, conversation["id"], desk.admin.id, "outgoing")
        note = desk.post(desk.admin, chat["id"], "Bom dia")
        first = for_b.message(note["id"])
        assert all(conversation["id"] not in json.dumps(event) for event in for_b.seen), for_b.seen
        assert first["seq"] > pushed["seq"]
    # the push of the body to a is a read of it, in the audit log
    wait_for_audit(api, dpo, {"service": "messaging", "action": "read", "resource_type": "message",
                              "resource_id": sent["id"], "actor_id": a.id, "purpose": "live push",
                              "fields": ["body"], "outcome": "success"},
                   what="the live push of the body to a", subject_id=conversation["customer_id"])


def test_a_reconnection_with_the_last_seq_receives_what_it_missed_without_loss(desk, platform):
    a = desk.staff("a")
    conversation = desk.conversation(desk.admin, desk.customer(), team_id=desk.team(a))
    first = desk.send(desk.admin, conversation["id"], "primeira")
    with Stream(platform, a) as stream:
        second = desk.send(desk.admin, conversation["id"], "segunda")
        last = stream.message(second["id"])
    missed = [desk.send(desk.admin, conversation["id"], f"perdida {n}") for n in range(3)]
    with Stream(platform, a, last_seq=last["seq"]) as again:
        after = desk.send(desk.admin, conversation["id"], "depois")
        again.message(after["id"])
        created = [e for e in again.seen if e["type"] == "message.created"]
        assert [e["data"]["id"] for e in created] == [m["id"] for m in missed] + [after["id"]]
        assert [e["data"]["body"] for e in created] == ["perdida 0", "perdida 1", "perdida 2", "depois"]
        seqs = [e["seq"] for e in again.seen]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] > last["seq"]
        assert first["id"] not in json.dumps(again.seen)  # before last_seq: not sent again


def test_logging_out_closes_the_socket_with_4001(desk, platform, api):
    a = desk.staff("a")
    with Stream(platform, a) as stream:
        assert api.post("/v1/auth/logout", a.token).status_code == 204
        started = time.monotonic()
        with pytest.raises(Closed) as closed:
            while True:
                stream.receive(5)
        assert closed.value.code == 4001 and "revoked" in closed.value.reason
        assert time.monotonic() - started < 3


def test_the_token_is_never_accepted_in_the_url(desk, platform):
    a = desk.staff("a")
    url = platform.url.replace("http://", "ws://", 1) + f"/v1/stream?access_token={a.token}"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, timeout=10)
    assert refused.value.status_code == 400
