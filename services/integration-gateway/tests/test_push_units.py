"""Unit tests of the live push's logic, without a broker or a socket: the replay ring, the client protocol,
the settings, and the hub's dispatch (batching, resume, resync, visibility by messaging, the sweep)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from upgestao_gateway.domain.principal import Principal
from upgestao_gateway.push import protocol
from upgestao_gateway.push.hub import JoinRefused, PushHub
from upgestao_gateway.push.protocol import ProtocolViolation, parse_client_message
from upgestao_gateway.push.ring import ReplayRing
from upgestao_gateway.push.settings import PushSettings, load_push_settings, normalise_origin
from upgestao_kernel.config import ConfigError


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- the ring -----------------------------------------------------------------------------------


def event(n: int) -> dict:
    return {"type": "messaging.message_created.v1", "event_id": f"e{n}", "data": {"message_id": f"m{n}"}}


def test_the_ring_starts_one_below_the_first_offset_read_and_follows_the_head():
    ring = ReplayRing(10, 60)
    assert not ring.started and not ring.can_resume(0)
    ring.observe(41)  # a sentinel
    assert (ring.floor, ring.head) == (40, 41)
    ring.append(42, event(42))
    assert ring.head == 42 and [e.seq for e in ring.after(40)] == [42]
    assert ring.can_resume(40) and not ring.can_resume(39)


def test_the_ring_refuses_an_offset_it_already_read():
    ring = ReplayRing(10, 60)
    assert ring.append(5, event(5)) is not None
    assert ring.append(5, event(5)) is None
    assert ring.append(4, event(4)) is None
    assert len(ring) == 1


def test_the_ring_drops_the_oldest_beyond_its_count_and_the_floor_rises():
    ring = ReplayRing(3, 60)
    for n in range(10, 15):
        ring.append(n, event(n))
    assert [e.seq for e in ring.after(0)] == [12, 13, 14]
    assert ring.floor == 11
    assert ring.can_resume(11) and not ring.can_resume(10)


def test_the_ring_drops_events_older_than_its_age():
    clock = Clock()
    ring = ReplayRing(100, 60, clock=clock)
    ring.append(1, event(1))
    clock.now += 30
    ring.append(2, event(2))
    clock.now += 31
    assert not ring.can_resume(0)  # event 1 is gone
    assert ring.can_resume(1) and [e.seq for e in ring.after(1)] == [2]


def test_after_stops_at_upto():
    ring = ReplayRing(100, 60)
    for n in (3, 4, 7):
        ring.append(n, event(n))
    assert [e.seq for e in ring.after(3, upto=4)] == [4]
    assert ring.after(7) == []


# -- the protocol ---------------------------------------------------------------------------------


def test_an_auth_message_is_parsed():
    message = parse_client_message('{"type": "auth", "token": "abc", "last_seq": 12}')
    assert (message.type, message.token, message.last_seq) == ("auth", "abc", 12)
    assert parse_client_message('{"type": "auth", "token": "abc"}').last_seq is None
    assert parse_client_message('{"type": "ping"}').type == "ping"


@pytest.mark.parametrize("raw", [
    b'{"type": "ping"}',  # binary frame
    "not json",
    "[1, 2]",
    '{"type": "subscribe"}',
    '{"type": "auth"}',
    '{"type": "auth", "token": ""}',
    '{"type": "auth", "token": "t", "last_seq": "12"}',
    '{"type": "auth", "token": "t", "last_seq": -5}',
    '{"type": "auth", "token": "t", "extra": 1}',
    '{"type": "ping", "xxxx\u00e9\u00e9": 1, "\\ud800": 2}',  # the client's keys are not quoted
    '{"type": "auth", "token": "' + "x" * 9000 + '"}',
])
def test_anything_else_is_a_protocol_violation_that_does_not_quote_the_message(raw):
    with pytest.raises(ProtocolViolation) as caught:
        parse_client_message(raw)
    assert "xxxx" not in str(caught.value) and "subscribe" not in str(caught.value)


def test_the_token_and_the_resume_point_may_come_as_subprotocols():
    offered = protocol.offered_protocols("upgestao.v1, upgestao.bearer.eyJ.abc.def, upgestao.resume.77")
    assert protocol.token_from_protocols(offered) == "eyJ.abc.def"
    assert protocol.resume_from_protocols(offered) == 77
    assert protocol.token_from_protocols(["upgestao.v1"]) is None
    assert protocol.resume_from_protocols(["upgestao.resume.-1", "upgestao.resume.x"]) is None


@pytest.mark.parametrize("origin, host, allowed, expected", [
    (None, "gw:8000", (), True),  # not a browser
    ("http://gw:8000", "gw:8000", (), True),
    ("https://gw", "gw", (), True),
    ("http://evil.example", "gw:8000", (), False),
    ("http://gw:8001", "gw:8000", (), False),
    ("null", "gw:8000", (), False),
    ("https://app.example.com", "gw:8000", ("https://app.example.com",), True),
    ("https://app.example.com:443", "gw:8000", ("https://app.example.com",), True),
    ("http://gw:8000", "gw:8000", ("https://app.example.com",), False),
])
def test_the_origin_check(origin, host, allowed, expected):
    assert protocol.origin_allowed(origin, host, "http", allowed) is expected


def test_settings_validate_origins_and_the_stream_retention():
    assert load_push_settings({}).origins == ()
    assert load_push_settings({"GATEWAY_STREAM_ORIGINS": "https://App.Example.com, http://x:8080"}).origins == (
        "https://app.example.com", "http://x:8080")
    assert normalise_origin("https://a.example/path") is None
    with pytest.raises(ConfigError, match="GATEWAY_STREAM_ORIGINS"):
        load_push_settings({"GATEWAY_STREAM_ORIGINS": "app.example.com"})
    with pytest.raises(ConfigError, match="GATEWAY_STREAM_EVENTS_MAX_AGE"):
        load_push_settings({"GATEWAY_STREAM_WINDOW_S": "900", "GATEWAY_STREAM_EVENTS_MAX_AGE": "10m"})
    assert load_push_settings({}).message_timeout_s == 10.0
    assert load_push_settings({"GATEWAY_STREAM_MESSAGE_TIMEOUT_S": "2.5"}).message_timeout_s == 2.5
    with pytest.raises(ConfigError, match="GATEWAY_STREAM_MESSAGE_TIMEOUT_S"):
        load_push_settings({"GATEWAY_STREAM_MESSAGE_TIMEOUT_S": "0"})


# -- the hub --------------------------------------------------------------------------------------


class Sink:
    def __init__(self, accepts: int = 1000) -> None:
        self.sent: list[dict] = []
        self.closed: tuple[int, str] | None = None
        self.accepts = accepts

    def send(self, message) -> bool:
        if len(self.sent) >= self.accepts:
            return False
        self.sent.append(dict(message))
        return True

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def events(self) -> list[tuple[str, int]]:
        return [(m["type"], m["seq"]) for m in self.sent if m["type"] not in ("ready", "resync")]


class Messaging:
    """Stands in for messaging.push_view: each viewer (token) sees the events whose data names it."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], list[str]]] = []
        self.failing = False

    def push_view(self, items, viewers):
        if self.failing:
            raise ConnectionError("messaging away")
        self.calls.append(([item["seq"] for item in items], list(viewers)))
        answer = []
        for item in items:
            for index, token in enumerate(viewers):
                if token in item["event"]["data"].get("for", ()):
                    answer.append({"viewer": index, "seq": item["seq"], "type": "message.created",
                                   "data": {"message_id": item["event"]["data"]["message_id"]}})
        return {"items": answer}


class Revocations:
    def __init__(self) -> None:
        self.revoked: set[str] = set()

    def is_revoked(self, session_id: str) -> bool:
        return session_id in self.revoked


def principal(user: str, *, expires_in: float = 900, session: str | None = None) -> Principal:
    return Principal(actor_id=user, role="attendant", session_id=session or f"sess-{user}",
                     permissions=frozenset({"conversations.read"}),
                     expires_at=datetime.now(UTC) + timedelta(seconds=expires_in))


def for_(n: int, *tokens: str) -> dict:
    return {"type": "messaging.message_created.v1", "data": {"message_id": f"m{n}", "for": list(tokens)}}


@pytest.fixture
def hub():
    ring = ReplayRing(100, 600)
    ring.observe(9)  # the sentinel came back: the stream is current at 9
    return PushHub(PushSettings(max_per_user=2), ring, Messaging(), Revocations())


def test_a_new_socket_is_ready_at_the_head_and_receives_what_follows_only(hub):
    hub.ring.append(10, for_(10, "tok-a"))
    sink = Sink()
    hub.join(principal("a"), "tok-a", sink, None)
    assert sink.sent == [{"type": "ready", "seq": 10}]
    hub.ring.append(11, for_(11, "tok-a"))
    hub.dispatch()
    assert sink.events() == [("message.created", 11)]
    assert sink.sent[-1]["data"] == {"message_id": "m11"}


def test_each_socket_gets_only_what_messaging_returned_for_it_in_one_call(hub):
    a, b = Sink(), Sink()
    hub.join(principal("a"), "tok-a", a, None)
    hub.join(principal("b"), "tok-b", b, None)
    hub.ring.append(10, for_(10, "tok-a"))
    hub.ring.append(11, for_(11, "tok-a", "tok-b"))
    hub.ring.append(12, for_(12))
    hub.dispatch()
    assert hub.messaging.calls == [([10, 11, 12], ["tok-a", "tok-b"])] or \
        hub.messaging.calls == [([10, 11, 12], ["tok-b", "tok-a"])]
    assert a.events() == [("message.created", 10), ("message.created", 11)]
    assert b.events() == [("message.created", 11)]
    hub.dispatch()  # nothing new: no call
    assert len(hub.messaging.calls) == 1


def test_a_reconnection_receives_what_it_missed_then_what_follows_without_loss_or_repeat(hub):
    first = Sink()
    subscriber = hub.join(principal("a"), "tok-a", first, None)
    hub.ring.append(10, for_(10, "tok-a"))
    hub.dispatch()
    assert first.events() == [("message.created", 10)]
    hub.drop(subscriber, 1000, "")
    hub.ring.append(11, for_(11, "tok-a"))
    hub.ring.append(12, for_(12, "tok-a"))
    hub.dispatch()  # nobody connected
    again = Sink()
    hub.join(principal("a"), "tok-a", again, last_seq=10)
    assert again.sent[0] == {"type": "ready", "seq": 10}
    hub.ring.append(13, for_(13, "tok-a"))
    hub.dispatch()
    hub.dispatch()
    assert again.events() == [("message.created", 11), ("message.created", 12), ("message.created", 13)]


def test_live_sockets_and_a_resuming_one_are_served_from_their_own_cursor(hub):
    live = Sink()
    hub.join(principal("a"), "tok-a", live, None)
    hub.ring.append(10, for_(10, "tok-a", "tok-b"))
    hub.ring.append(11, for_(11, "tok-a", "tok-b"))
    resuming = Sink()
    hub.join(principal("b"), "tok-b", resuming, last_seq=9)
    hub.dispatch()
    # one call per cursor: the resuming socket asked from 9, the live one joined at 9 too: one group
    assert live.events() == resuming.events() == [("message.created", 10), ("message.created", 11)]
    hub.ring.append(12, for_(12, "tok-b"))
    late = Sink()
    hub.join(principal("c"), "tok-c", late, last_seq=11)
    hub.dispatch()
    assert sorted(call[0] for call in hub.messaging.calls[-1:]) == [[12]]
    assert resuming.events()[-1] == ("message.created", 12) and late.events() == []


def test_a_resume_older_than_the_ring_is_told_to_resync(hub):
    for n in range(10, 115):
        hub.ring.append(n, for_(n, "tok-a"))
    sink = Sink()
    hub.join(principal("a"), "tok-a", sink, last_seq=3)
    assert sink.sent == [{"type": "ready", "seq": 114}, {"type": "resync", "seq": 114}]
    hub.dispatch()
    assert sink.events() == []


def test_a_resume_ahead_of_this_replica_waits_until_it_read_that_far(hub):
    import eventlet

    def another_replica_was_ahead():
        eventlet.sleep(0.1)
        for n in (10, 11, 12):
            hub.ring.append(n, for_(n, "tok-a"))

    eventlet.spawn(another_replica_was_ahead)
    sink = Sink()
    hub.join(principal("a"), "tok-a", sink, last_seq=11)  # another replica had served up to 11
    assert sink.sent == [{"type": "ready", "seq": 11}]
    hub.dispatch()
    assert sink.events() == [("message.created", 12)]


def test_a_resume_ahead_of_a_stream_that_never_gets_there_is_a_resync():
    ring = ReplayRing(100, 600)
    ring.observe(9)
    hub = PushHub(PushSettings(resume_ahead_wait_s=0.05), ring, Messaging())
    sink = Sink()
    hub.join(principal("a"), "tok-a", sink, last_seq=5000)  # an offset of a stream declared again since
    assert sink.sent == [{"type": "ready", "seq": 9}, {"type": "resync", "seq": 9}]
    ring.append(10, for_(10, "tok-a"))
    hub.dispatch()
    assert sink.events() == [("message.created", 10)]


def test_messaging_away_leaves_the_cursors_and_the_events_are_pushed_later(hub):
    sink = Sink()
    hub.join(principal("a"), "tok-a", sink, None)
    hub.ring.append(10, for_(10, "tok-a"))
    hub.messaging.failing = True
    with pytest.raises(ConnectionError):
        hub.dispatch()
    hub.messaging.failing = False
    hub.dispatch()
    assert sink.events() == [("message.created", 10)]


def test_messaging_away_longer_than_the_window_means_resync():
    ring = ReplayRing(3, 600)
    ring.observe(9)
    hub = PushHub(PushSettings(), ring, Messaging())
    sink = Sink()
    hub.join(principal("a"), "tok-a", sink, None)
    for n in range(10, 20):
        ring.append(n, for_(n, "tok-a"))
    hub.dispatch()
    assert sink.sent[-1] == {"type": "resync", "seq": 19}
    assert hub.messaging.calls == []


def test_a_user_may_open_only_so_many_sockets(hub):
    hub.join(principal("a"), "tok-a", Sink(), None)
    hub.join(principal("a"), "tok-a", Sink(), None)
    with pytest.raises(JoinRefused) as refused:
        hub.join(principal("a"), "tok-a", Sink(), None)
    assert refused.value.code == protocol.TOO_MANY


def test_nobody_joins_before_the_stream_was_read_up_to_date():
    hub = PushHub(PushSettings(), ReplayRing(10, 60), Messaging(), wait_current=lambda timeout_s: False)
    with pytest.raises(JoinRefused) as refused:
        hub.join(principal("a"), "tok-a", Sink(), None)
    assert refused.value.code == protocol.TRY_AGAIN_LATER


def test_the_sweep_closes_revoked_and_expired_tokens_with_4001(hub):
    revoked, expired, fine = Sink(), Sink(), Sink()
    hub.join(principal("a", session="s-revoked"), "tok-a", revoked, None)
    hub.join(principal("b", expires_in=-60), "tok-b", expired, None)
    hub.join(principal("c"), "tok-c", fine, None)
    hub.revocations.revoked.add("s-revoked")
    assert hub.sweep() == 2
    assert revoked.closed == (4001, "The access token has been revoked.")
    assert expired.closed == (4001, "The access token has expired.")
    assert fine.closed is None and len(hub.subscribers) == 1
    hub.ring.append(10, for_(10, "tok-a", "tok-b", "tok-c"))
    hub.dispatch()
    assert hub.messaging.calls == [([10], ["tok-c"])]  # a closed socket's token is never sent again


def test_a_socket_that_does_not_read_is_closed_and_does_not_hold_the_others(hub):
    slow, fast = Sink(accepts=2), Sink()
    hub.join(principal("a"), "tok-a", slow, None)
    hub.join(principal("b"), "tok-b", fast, None)
    for n in range(10, 14):
        hub.ring.append(n, for_(n, "tok-a", "tok-b"))
    hub.dispatch()
    assert slow.closed[0] == protocol.TOO_SLOW
    assert len(fast.events()) == 4


def test_a_renewed_token_must_be_the_same_users(hub):
    subscriber = hub.join(principal("a"), "tok-a", Sink(), None)
    assert hub.renew(subscriber, principal("a"), "tok-a2") and subscriber.token == "tok-a2"
    assert not hub.renew(subscriber, principal("b"), "tok-b")
    assert subscriber.token == "tok-a2"


def test_stopping_closes_every_socket_going_away(hub):
    sinks = [Sink(), Sink()]
    for index, sink in enumerate(sinks):
        hub.join(principal(f"u{index}"), f"tok-{index}", sink, None)
    hub.stop()
    assert [sink.closed[0] for sink in sinks] == [protocol.GOING_AWAY] * 2
    assert not hub.subscribers


@pytest.mark.parametrize("variable, value", [
    ("GATEWAY_STREAM_ORIGINS", "app.example.com"),
    ("GATEWAY_STREAM_MAX_PER_USER", "0"),
    ("GATEWAY_STREAM_EVENTS_MAX_AGE", "5m"),
])
def test_check_config_refuses_a_wrong_stream_setting_before_anything_starts(tmp_path, variable, value):
    environ = {"PATH": "/usr/bin:/bin", "UPGESTAO_DATA_DIR": str(tmp_path), "UPGESTAO_ENV": "local", variable: value}
    result = subprocess.run([sys.executable, "-m", "upgestao_gateway", "check-config"], env=environ,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"configuration error: {variable}: " in result.stderr and "Traceback" not in result.stderr


def test_a_long_replay_goes_in_chunks_after_the_live_sockets_and_loses_nothing():
    ring = ReplayRing(1000, 600)
    ring.observe(9)
    hub = PushHub(PushSettings(), ring, Messaging())
    for n in range(10, 460):
        ring.append(n, for_(n, "tok-a", "tok-b"))
    live, resuming = Sink(), Sink()
    hub.join(principal("b"), "tok-b", live, None)  # at the head: 459
    hub.join(principal("a"), "tok-a", resuming, last_seq=9)
    ring.append(460, for_(460, "tok-a", "tok-b"))
    hub.dispatch()
    assert hub.messaging.calls[0] == ([460], ["tok-b"])  # the live socket first
    assert hub.messaging.calls[1][0] == list(range(10, 210))  # then one call's worth of the replay
    assert hub._wake.ready()  # and another round is due
    for _ in range(3):
        hub.dispatch()
    assert [seq for _, seq in resuming.events()] == list(range(10, 461))
    assert [seq for _, seq in live.events()] == [460]


def test_a_batch_messaging_refuses_is_skipped_with_a_resync_and_a_failure_is_retried(hub):
    from upgestao_kernel.errors import ServiceError

    sink = Sink()
    hub.join(principal("a"), "tok-a", sink, None)
    hub.ring.append(10, for_(10, "tok-a"))
    refusing = hub.messaging.push_view
    hub.messaging.push_view = lambda **kw: (_ for _ in ()).throw(ServiceError("service-unavailable", "away", 503))
    with pytest.raises(ServiceError):
        hub.dispatch()
    hub.messaging.push_view = lambda **kw: (_ for _ in ()).throw(ServiceError("validation-error", "no", 422))
    hub.dispatch()
    assert sink.sent[-1] == {"type": "resync", "seq": 10}
    hub.messaging.push_view = refusing
    hub.ring.append(11, for_(11, "tok-a"))
    hub.dispatch()
    assert sink.events() == [("message.created", 11)]


def test_messaging_is_asked_through_the_containers_rpc_path_as_the_system_and_a_late_answer_is_forgotten():
    """push_view goes out through the container's publisher and reply listener (no proxy, connection or reply
    queue of its own): as the system, a request id per call, expiring with its deadline; no answer in time is
    a TimeoutError (an Exception: the dispatcher retries it instead of dying) and the waiter is forgotten."""
    import eventlet
    from upgestao_gateway.entrypoints import push as glue

    class Listener:
        routing_key = "replies-of-the-gateway"

        def __init__(self) -> None:
            self.waiting: dict[str, eventlet.event.Event] = {}

        def get_reply_event(self, correlation_id):
            self.waiting[correlation_id] = event = eventlet.event.Event()
            return event

        def forget(self, reply_event) -> None:
            self.waiting = {c: e for c, e in self.waiting.items() if e is not reply_event}

    class Publisher:
        def __init__(self) -> None:
            self.sent: list[dict] = []
            self.answering = False

        def publish(self, payload, *, headers, **kwargs) -> None:
            self.sent.append({"payload": payload, "headers": headers, **kwargs})
            if self.answering:
                event = listener.waiting.pop(kwargs["correlation_id"])
                eventlet.spawn_after(0, event.send, {"result": {"items": [{"viewer": 0, "seq": 1}]}, "error": None})

    listener, publisher = Listener(), Publisher()
    messaging = glue.ContainerMessaging(listener, publisher, timeout_s=0.05)
    with pytest.raises(TimeoutError):
        messaging.push_view([{"seq": 1, "event": {}}], ["tok"])
    assert listener.waiting == {}  # forgotten: an answer coming now is dropped
    publisher.answering = True
    assert messaging.push_view([{"seq": 1, "event": {}}], ["tok"]) == {"items": [{"viewer": 0, "seq": 1}]}
    first, second = publisher.sent
    assert first["routing_key"] == "messaging.push_view" and first["reply_to"] == "replies-of-the-gateway"
    assert first["payload"] == {"args": (), "kwargs": {"items": [{"seq": 1, "event": {}}], "viewers": ["tok"]}}
    assert first["expiration"] == 0.05
    for sent in (first, second):
        assert sent["headers"]["nameko.actor_id"] == sent["headers"]["nameko.actor_role"] == "system"
        assert "nameko.idempotency_key" not in sent["headers"]
    assert first["headers"]["nameko.request_id"] != second["headers"]["nameko.request_id"]


# -- the socket's writer ---------------------------------------------------------------------------------


class RecordingSocket:
    """What eventlet's WebSocket writes to its socket, one entry per system call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        pass


def _writer(frames: list[str]):
    from eventlet.websocket import RFC6455WebSocket
    from upgestao_gateway.push.connection import SocketSink

    sock = RecordingSocket()
    ws = RFC6455WebSocket(sock, {}, version=13)
    sink = SocketSink(ws, PushSettings())
    sink.reader_done.send()  # the client's side of the closing handshake: not waited for here
    for frame in frames:
        sink.send({"type": "message.created", "seq": frame})
    return sock, ws, sink


def test_frames_queued_together_go_out_in_one_write_the_same_bytes_in_order():
    import eventlet

    frames = [f"f{n}" for n in range(5)]
    sock, ws, sink = _writer(frames)
    sink.close(1000, "done")
    eventlet.spawn(sink.write_forever).wait()
    single = [ws._pack_message(protocol.encode({"type": "message.created", "seq": f}), masked=False) for f in frames]
    assert sock.writes[0] == b"".join(single)  # one system call for the five frames
    assert len(sock.writes) == 2  # then the closing frame
    assert sock.writes[1][0] == 0x88  # FIN + close


def test_a_frame_alone_is_written_alone_and_the_writer_goes_on():
    import eventlet

    sock, ws, sink = _writer(["only"])
    writer = eventlet.spawn(sink.write_forever)
    eventlet.sleep(0.01)
    assert sock.writes == [ws._pack_message(protocol.encode({"type": "message.created", "seq": "only"}),
                                            masked=False)]
    sink.send({"type": "message.created", "seq": "next"})
    eventlet.sleep(0.01)
    assert len(sock.writes) == 2
    sink.close(1000, "done")
    writer.wait()
    assert len(sock.writes) == 3


# -- the socket's reader (the frames a client sends) -----------------------------------------------------------


class FeedSocket(RecordingSocket):
    """Gives the reader ``data``, then the end of the connection; counts the bytes read."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data = data
        self.read = 0

    def recv(self, size: int) -> bytes:
        chunk = self.data[self.read:self.read + size]
        self.read += len(chunk)
        return chunk


def client_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
                 length: int | None = None) -> bytes:
    """A masked client frame (``length``: another declared length than the payload's)."""
    mask = b"\x0f\xf0\x55\xaa"
    length = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 65_536:
        head += bytes([0x80 | 126]) + length.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + length.to_bytes(8, "big")
    return head + mask + bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))


def read_all(data: bytes) -> tuple[list, int | None, FeedSocket]:
    """The messages the stream's reader gives for ``data``, the code of the close frame it sent (None:
    none), and the socket."""
    from upgestao_gateway.push.connection import BoundedWebSocket

    sock = FeedSocket(data)
    ws = BoundedWebSocket(sock, {}, version=13, max_frame_length=PushSettings().max_message_bytes)
    messages = []
    while (message := ws.wait()) is not None:
        messages.append(message)
    closes = [write for write in sock.writes if write[0] == 0x88]
    code = int.from_bytes(closes[0][2:4], "big") if closes else None
    assert code is None or ws.closed_with == code  # what the gateway logs
    return messages, code, sock


def test_a_well_formed_message_is_read_in_fragments_with_a_ping_between_them_answered():
    data = (client_frame(0x1, b'{"type":', fin=False) + client_frame(0x9, b"hi") + client_frame(0x0, b' "pi', fin=False)
            + client_frame(0x0, b'ng"}') + client_frame(0x2, b"\x00\xff"))
    messages, code, sock = read_all(data)
    assert messages == ['{"type": "ping"}', b"\x00\xff"] and code is None
    assert bytes([0x8A, 2]) + b"hi" in sock.writes  # the pong


@pytest.mark.parametrize("rsv", range(1, 8))
def test_a_frame_with_any_rsv_bit_fails_the_connection_with_1002(rsv):
    """eventlet refused a frame with RSV1 (no permessage-deflate here): RSV2 and RSV3 alone went through."""
    messages, code, _ = read_all(client_frame(0x1, b'{"type": "ping"}', rsv=rsv))
    assert messages == [] and code == protocol.PROTOCOL_ERROR


@pytest.mark.parametrize("frames", [
    [(0x1, b"\xff", True)],
    [(0x1, b'{"type": "ping"}\xc0\xaf', True)],
    [(0x1, b"\xed", False), (0x0, b"\xa0\x80", True)],  # a surrogate, across fragments
    [(0x1, b"\xe2\x82", True)],  # cut short at the end
])
def test_a_text_message_that_is_not_utf8_fails_the_connection_with_1007(frames):
    """eventlet's UnicodeDecodeError escaped its reader: closed with 1011 "Internal Server Error"."""
    messages, code, _ = read_all(b"".join(client_frame(op, raw, fin=fin) for op, raw, fin in frames))
    assert messages == [] and code == protocol.INVALID_DATA


def test_a_message_in_too_many_fragments_fails_the_connection_with_1009_and_is_not_read_further():
    """eventlet kept every fragment and summed them all again at each: 20,000 empty ones held the CPU for
    seconds (and every other socket of the process with it)."""
    from upgestao_gateway.push.connection import MAX_FRAGMENTS

    start, empty = client_frame(0x1, b'{"type": ', fin=False), client_frame(0x0, b"", fin=False)
    allowed = start + empty * (MAX_FRAGMENTS - 2) + client_frame(0x0, b'"ping"}')
    assert read_all(allowed)[:2] == (['{"type": "ping"}'], None)
    messages, code, sock = read_all(start + empty * 20_000 + client_frame(0x0, b'"ping"}'))
    assert messages == [] and code == protocol.MESSAGE_TOO_BIG
    assert sock.read <= len(start) + len(empty) * MAX_FRAGMENTS


def test_a_message_over_the_limit_in_fragments_is_refused_from_its_declared_length():
    """Before its bytes come: the last fragment's header is enough."""
    data = client_frame(0x1, b"{" + b" " * 15_999, fin=False) + client_frame(0x0, length=1_000)[:6]
    messages, code, _ = read_all(data)
    assert messages == [] and code == protocol.MESSAGE_TOO_BIG


class PacedSocket(FeedSocket):
    """Gives the reader ``chunks`` (seconds to wait first, bytes), at most ``per_recv`` bytes a call, then the
    end of the connection: a slow, stalled or trickling client."""

    def __init__(self, chunks: list[tuple[float, bytes]], per_recv: int | None = None) -> None:
        super().__init__(b"")
        self.chunks = list(chunks)
        self.per_recv = per_recv

    def recv(self, size: int) -> bytes:
        import eventlet

        if not self.chunks:
            return b""
        wait, data = self.chunks[0]
        eventlet.sleep(wait)
        take = min(size, self.per_recv or size)
        self.chunks[0] = (0.0, data[take:])
        if not data[take:]:
            self.chunks.pop(0)
        self.read += len(data[:take])
        return data[:take]


def read_paced(chunks: list[tuple[float, bytes]], per_recv: int | None = None,
               timeout_s: float = 0.3) -> tuple[list, int | None]:
    from upgestao_gateway.push.connection import BoundedWebSocket

    sock = PacedSocket(chunks, per_recv)
    ws = BoundedWebSocket(sock, {}, version=13, max_frame_length=PushSettings().max_message_bytes)
    ws.message_timeout_s = timeout_s
    messages = []
    while (message := ws.wait()) is not None:
        messages.append(message)
    closes = [write for write in sock.writes if write[0] == 0x88]
    return messages, int.from_bytes(closes[0][2:4], "big") if closes else None


PING = b'{"type": "ping"}'


def test_a_message_stalled_mid_frame_fails_the_connection_with_1008():
    """The idle timeout restarted at every byte: a client could hold a frame open for ever."""
    frame = client_frame(0x1, PING)
    assert read_paced([(0.0, frame[:9]), (5.0, frame[9:])]) == ([], protocol.POLICY_VIOLATION)


def test_a_message_trickled_a_byte_at_a_time_fails_the_connection_with_1008():
    assert read_paced([(0.05, byte.to_bytes(1, "big")) for byte in client_frame(0x1, PING)]) == (
        [], protocol.POLICY_VIOLATION)


def test_a_fragmented_message_whose_next_fragment_stalls_fails_the_connection_with_1008():
    first, rest = client_frame(0x1, b'{"type": ', fin=False), client_frame(0x0, b'"ping"}')
    assert read_paced([(0.0, first), (0.1, client_frame(0x9, b"hi")), (5.0, rest)]) == (
        [], protocol.POLICY_VIOLATION)


def test_the_wait_between_messages_is_not_a_messages_deadline():
    """Idle is the socket's idle timeout (pings), not this one; a slow but whole message is read."""
    frame = client_frame(0x1, PING)
    chunks = [(0.0, frame), (0.6, frame[:4]), (0.1, frame[4:]), (0.6, frame)]
    assert read_paced(chunks) == ([PING.decode()] * 3, None)
    assert read_paced([(0.0, frame)], per_recv=1, timeout_s=10.0) == ([PING.decode()], None)


def test_a_close_reason_is_at_most_123_bytes_of_utf8_whole_characters():
    assert protocol.close_reason("done") == "done"
    for text in ("é" * 100, "x" + "\U0001f600" * 40, "a" * 200):
        reason = protocol.close_reason(text)
        assert len(reason.encode("utf-8")) <= protocol.MAX_CLOSE_REASON_BYTES and text.startswith(reason)
    assert protocol.close_reason("bad \ud800 key") == "bad ? key"


def test_a_close_with_a_long_non_ascii_reason_still_sends_a_close_frame():
    """The reason once named the client's unknown keys: 120 characters of them were over 125 bytes, and
    eventlet's ProtocolError killed the writer (a traceback, an HTTP 500 written onto the WebSocket)."""
    import eventlet

    sock, _, sink = _writer([])
    sink.close(protocol.POLICY_VIOLATION, "invalid " + "é" * 120)
    eventlet.spawn(sink.write_forever).wait()
    close = sock.writes[-1]
    assert close[0] == 0x88 and close[1] <= 125 and int.from_bytes(close[2:4], "big") == 1008
    close[4:].decode("utf-8")
