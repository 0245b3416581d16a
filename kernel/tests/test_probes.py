"""The probe listener and its checks (issue 16), on fakes and a real green socket in this process."""

from __future__ import annotations

import json
import socket
import time

import eventlet
import pytest
import sqlalchemy as sa
from nameko.messaging import QueueConsumer
from upgestao_kernel.config import ConfigError
from upgestao_kernel.db import create_engine
from upgestao_kernel.nameko_ext.readiness import ServiceReadiness
from upgestao_kernel.probes import (
    PROBE_ADDRESS,
    CachedCheck,
    ProbeServer,
    RelayReadiness,
    database_problem,
    probe,
    probe_address,
    readiness_answer,
    respond,
)
from upgestao_kernel.testing import wait_for


@pytest.mark.parametrize(("raw", "expected"), [
    (None, None), ("", None), ("  ", None),
    ("0.0.0.0:9000", ("0.0.0.0", 9000)), ("127.0.0.1:1", ("127.0.0.1", 1)),
    ("[::]:9000", ("::", 9000)), ("probe.local:65535", ("probe.local", 65535)),
])
def test_probe_address_accepts_host_port_or_nothing(raw, expected):
    assert probe_address({} if raw is None else {PROBE_ADDRESS: raw}) == expected


@pytest.mark.parametrize("raw", ["9000", ":9000", "host:", "host:0", "host:65536", "host:http", "a b:9000",
                                 "0.0.0.0:-1"])
def test_a_bad_probe_address_is_a_config_error_naming_the_variable(raw):
    with pytest.raises(ConfigError) as caught:
        probe_address({PROBE_ADDRESS: raw})
    assert caught.value.variable == PROBE_ADDRESS
    assert str(caught.value).startswith("configuration error: UPGESTAO_PROBE_ADDRESS: ")


def _parse(response: bytes) -> tuple[int, dict, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def _ready() -> list:
    return [("service", None), ("database", None)]


def test_livez_and_readyz_answer_200_with_json():
    status, headers, body = _parse(respond(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n", _ready))
    assert (status, json.loads(body)) == (200, {"status": "alive"})
    assert headers["Connection"] == "close" and headers["Content-Type"] == "application/json"
    status, _, body = _parse(respond(b"GET /readyz?verbose=1 HTTP/1.0\r\n\r\n", _ready))
    assert (status, json.loads(body)) == (200, {"status": "ready"})


def test_readyz_is_503_naming_only_the_failing_checks():
    def readiness():
        return [("service", None), ("broker", "not connected"), ("database", "unreachable (OperationalError)")]

    status, _, body = _parse(respond(b"GET /readyz HTTP/1.1\r\n\r\n", readiness))
    assert status == 503
    assert json.loads(body) == {"status": "not ready", "failing": {"broker": "not connected",
                                                                   "database": "unreachable (OperationalError)"}}


def test_a_check_that_raises_is_named_by_its_type_never_its_message():
    def readiness():
        raise ValueError("maria@example.com")

    assert readiness_answer(readiness) == (503, {"status": "not ready", "failing": {"probe": "failed (ValueError)"}})


def test_head_has_the_headers_without_the_body():
    status, headers, body = _parse(respond(b"HEAD /livez HTTP/1.1\r\n\r\n", _ready))
    assert (status, body) == (200, b"")
    assert int(headers["Content-Length"]) == len(b'{"status": "alive"}')


@pytest.mark.parametrize("path", ["/", "/healthz", "/livez/", "/readyz/x", "/metrics"])
def test_other_paths_are_404(path):
    assert _parse(respond(f"GET {path} HTTP/1.1\r\n\r\n".encode(), _ready))[0] == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_are_405_with_allow(method):
    status, headers, _ = _parse(respond(f"{method} /readyz HTTP/1.1\r\n\r\n".encode(), _ready))
    assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_garbage_is_400():
    assert _parse(respond(b"hello\r\n\r\n", _ready))[0] == 400


def test_cached_check_runs_at_most_once_per_ttl():
    now = [100.0]
    calls = []

    def check():
        calls.append(now[0])
        return None if len(calls) == 1 else "down"

    cached = CachedCheck(check, ttl_s=1.5, clock=lambda: now[0])
    assert [cached(), cached()] == [None, None]
    now[0] += 1.4
    assert cached() is None and len(calls) == 1
    now[0] += 0.1
    assert cached() == "down" and calls == [100.0, 101.5]


def test_database_problem_on_sqlite_and_on_a_closed_port(tmp_path):
    assert database_problem(create_engine(f"sqlite:///{tmp_path / 'probe.sqlite3'}")) is None
    closed = sa.create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{_closed_port()}/nothing")
    assert database_problem(closed) == "unreachable (OperationalError)"


def test_database_problem_gives_up_on_a_database_that_does_not_answer():
    class Stalled:
        def connect(self):
            eventlet.sleep(10)

    started = time.monotonic()
    assert database_problem(Stalled(), timeout_s=0.2) == "no answer within 0.2 s"
    assert time.monotonic() - started < 2


class FakeRelay:
    def __init__(self) -> None:
        self.last_pass_at: float | None = None
        self.broker_connected: bool | None = None
        self.failures = 0


def test_relay_readiness_wants_a_recent_pass_and_a_broker():
    now = [1000.0]
    relay = FakeRelay()
    readiness = RelayReadiness(relay, max_pass_age_s=30, clock=lambda: now[0])
    assert dict(readiness()) == {"outbox": "no pass yet", "passes": None, "broker": None, "loops": None}
    relay.last_pass_at = 995.0  # idle: no rows, no connection yet, nothing failed
    assert dict(readiness()) == {"outbox": None, "passes": None, "broker": None, "loops": None}
    relay.broker_connected = True
    assert dict(readiness()) == {"outbox": None, "passes": None, "broker": None, "loops": None}
    relay.broker_connected = False
    assert dict(readiness())["broker"] == "not connected"
    relay.broker_connected, relay.failures = None, 3  # the database, or a failed batch that dropped its connection
    assert dict(readiness()) == {"outbox": None, "passes": "3 failed in a row", "broker": None, "loops": None}
    relay.failures = 0
    now[0] = 1025.1
    assert dict(readiness())["outbox"] == "no pass for more than 30 s"


class FakeThread:
    def __init__(self, name: str, alive: bool) -> None:
        self.name = name
        self._alive = alive

    def is_alive(self) -> bool:
        return self._alive


def test_relay_readiness_names_a_publishing_loop_that_ended():
    relay = FakeRelay()
    relay.last_pass_at = time.monotonic()
    loops = [FakeThread("audit_stream", alive=False), FakeThread("checkpoints", alive=True)]
    assert dict(RelayReadiness(relay, loops=loops)())["loops"] == "ended: audit_stream"
    loops[0]._alive = True
    assert dict(RelayReadiness(relay, loops=loops)())["loops"] is None


class FakeEvent:
    def __init__(self, ready: bool = False) -> None:
        self._ready = ready

    def ready(self) -> bool:
        return self._ready


class FakeConnection:
    def __init__(self, connected: bool) -> None:
        self.connected = connected


class FakeContainer:
    def __init__(self, consumer, dependencies=()) -> None:
        self.started = True
        self._died = FakeEvent()
        self.extensions = {consumer}
        self.dependencies = set(dependencies)


class FakeRunner:
    def __init__(self, *containers) -> None:
        self.containers = list(containers)


def test_service_readiness_follows_the_container_and_its_broker_connection():
    consumer = QueueConsumer()
    container = FakeContainer(consumer)
    readiness = ServiceReadiness()
    assert dict(readiness()) == {"service": "starting"}
    readiness.runner = FakeRunner(container)
    assert dict(readiness())["broker"] == "not connected"  # consuming from no connection yet
    consumer.broker_connection = FakeConnection(True)
    assert dict(readiness()) == {"service": None, "broker": None, "database": None}
    consumer.broker_connection.connected = False
    assert dict(readiness())["broker"] == "not connected"
    container._died = FakeEvent(ready=True)
    assert dict(readiness()) == {"service": "stopped"}


def test_service_readiness_asks_the_database_at_most_once_per_ttl(tmp_path, monkeypatch):
    from upgestao_kernel.nameko_ext import readiness as service_readiness
    from upgestao_kernel.nameko_ext.database import Database

    database = Database()
    database.engine = create_engine(f"sqlite:///{tmp_path / 'svc.sqlite3'}")
    consumer = QueueConsumer()
    consumer.broker_connection = FakeConnection(True)
    asked = []
    monkeypatch.setattr(service_readiness, "database_problem", lambda engine, timeout_s: asked.append(engine) or "down")
    readiness = ServiceReadiness(database_ttl_s=60)
    readiness.runner = FakeRunner(FakeContainer(consumer, [database]))
    for _ in range(5):
        assert dict(readiness())["database"] == "down"
    assert asked == [database.engine]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server():
    state = {"checks": _ready()}
    probe_server = ProbeServer(("127.0.0.1", 0), lambda: state["checks"], max_connections=2, read_timeout_s=5)
    address = probe_server.start()
    yield probe_server, address, state
    probe_server.stop()


def test_the_listener_answers_over_http(server):
    _, address, state = server
    assert probe(address, "/livez") == (200, '{"status": "alive"}')
    assert probe(address, "/readyz")[0] == 200
    state["checks"] = [("database", "unreachable (OperationalError)")]
    assert probe(address, "/readyz")[0] == 503
    assert probe(address, "/nope")[0] == 404


def test_the_listener_serves_a_bounded_number_of_connections(server):
    _, address, _ = server
    idle = [socket.create_connection(address, timeout=5) for _ in range(2)]  # say nothing: held for 5 s
    wait_for(lambda: _refused_at_once(address))
    for s in idle:
        s.close()
    wait_for(lambda: _answers(address))


def _refused_at_once(address) -> bool:
    with socket.create_connection(address, timeout=5) as s:
        s.sendall(b"GET /livez HTTP/1.1\r\n\r\n")
        return s.recv(100) == b""  # closed without an answer


def _answers(address) -> bool:
    try:
        return probe(address, "/livez")[0] == 200
    except OSError:
        return False


def test_a_taken_port_is_a_config_error_and_stop_closes_the_socket(server):
    probe_server, address, _ = server
    with pytest.raises(ConfigError) as caught:
        ProbeServer(address, _ready).start()
    assert caught.value.variable == PROBE_ADDRESS and "cannot listen on 127.0.0.1:" in str(caught.value)
    probe_server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=2).close()


def test_a_blocked_hub_does_not_answer_livez(server):
    """The kubelet's timeout is what catches a stuck process: the answer comes from the process's own hub."""
    from eventlet import patcher

    real_socket = patcher.original("socket")
    real_threading = patcher.original("threading")
    real_time = patcher.original("time")
    _, address, _ = server
    answers: list = []
    asked = real_threading.Event()

    def kubelet() -> None:  # a real OS thread, with a real socket: it runs while the hub is blocked
        try:
            with real_socket.create_connection(address, timeout=0.5) as s:
                s.sendall(b"GET /livez HTTP/1.1\r\n\r\n")
                asked.set()
                answers.append(s.recv(100))
        except OSError as exc:
            answers.append(type(exc).__name__)
        finally:
            asked.set()

    thread = real_threading.Thread(target=kubelet)
    thread.start()
    # real waits block the hub (nothing green runs meanwhile), past the kubelet's 0.5 s timeout
    assert asked.wait(10)
    real_time.sleep(1.0)
    thread.join(5)
    assert answers == ["TimeoutError"]
    assert probe(address, "/livez")[0] == 200  # the hub turns again: so does the answer
