"""Real ``run`` and ``relay`` processes serve their probes on ``UPGESTAO_PROBE_ADDRESS`` (issue 16): ready once
they can work, not ready (and still alive) when their database or broker is gone, gone with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from kernel_sample import create_sample_tables
from upgestao_kernel.cli import CONFIG_ERROR_EXIT, ServiceDefinition, main
from upgestao_kernel.listen_ports import free_port
from upgestao_kernel.probes import probe
from upgestao_kernel.testing import PG_ADMIN_URL, create_vhost, delete_vhost
from upgestao_kernel.testing_tokens import token_jwks_json

TESTS = Path(__file__).parent
TALLY = ServiceDefinition(name="tally", service_class="kernel_sample_services:TallyService", migrations="unused")
# the command line of a service package (``python -m upgestao_<svc>``), for the sample service of these tests
LAUNCH = ("import upgestao_kernel.green, sys; sys.path.insert(0, sys.argv.pop(1)); "
          "from upgestao_kernel.cli import ServiceDefinition, main; "
          "sys.exit(main(ServiceDefinition(name='tally', service_class='kernel_sample_services:TallyService', "
          "migrations='unused'), sys.argv[1:]))")



def _env(tmp_path, amqp_uri: str, database_url: str, port: int) -> dict[str, str]:
    return {**os.environ, "UPGESTAO_ENV": "test", "UPGESTAO_DATA_DIR": str(tmp_path / "var"), "AMQP_URI": amqp_uri,
            "TALLY_DATABASE_URL": database_url, "UPGESTAO_IDENTITY_JWKS": token_jwks_json(),
            "UPGESTAO_PROBE_ADDRESS": f"127.0.0.1:{port}"}


class Process:
    def __init__(self, command: str, env: dict[str, str], tmp_path: Path) -> None:
        self.address = ("127.0.0.1", int(env["UPGESTAO_PROBE_ADDRESS"].rpartition(":")[2]))
        self.log = tmp_path / f"{command}.log"
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen([sys.executable, "-c", LAUNCH, str(TESTS), command], env=env,
                                          stdout=out, stderr=subprocess.STDOUT)

    def get(self, path: str) -> tuple[int, dict]:
        status, body = probe(self.address, path)
        return status, json.loads(body)

    def until(self, path: str, status: int, timeout_s: float = 60) -> dict:
        """The body of ``path`` once it answers ``status`` (within ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        last: object = None
        while time.monotonic() < deadline:
            assert self.popen.poll() is None, self.log.read_text()
            try:
                answer = self.get(path)
            except OSError as exc:  # not listening yet
                last = exc
            else:
                if answer[0] == status:
                    return answer[1]
                last = answer
            time.sleep(0.1)
        raise AssertionError(f"{path} never answered {status} (last: {last!r})\n{self.log.read_text()}")

    def terminate(self, timeout_s: float = 30) -> int:
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout_s)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


def _raw(address, request: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    return answer


def _health_check(address, path: str) -> int:
    """The image's HEALTHCHECK one-liner (no service code imported), its exit status."""
    line = f"import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:{address[1]}/{path}', timeout=2)"
    return subprocess.run(["python3", "-c", line], capture_output=True, timeout=30).returncode


def _allow_connections(name: str, allowed: bool) -> None:
    """Cut (or give back) this test's own database, as a PostgreSQL outage would: no new connections, the open
    ones terminated. The shared server itself is never touched."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
        if not allowed:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                         {"name": name})
    admin.dispose()


def test_a_service_is_ready_then_not_ready_without_its_database_and_stops_on_sigterm(
        tmp_path, amqp_uri, database_factory, capsys):
    url = database_factory("probes")
    create_sample_tables(url)
    service = Process("run", _env(tmp_path, amqp_uri, url, free_port()), tmp_path)
    try:
        assert service.until("/readyz", 200) == {"status": "ready"}
        assert service.get("/livez") == (200, {"status": "alive"})
        assert b" 404 " in _raw(service.address, b"GET /metrics HTTP/1.1\r\n\r\n").split(b"\r\n")[0]
        assert b" 405 " in _raw(service.address, b"POST /readyz HTTP/1.1\r\n\r\n").split(b"\r\n")[0]
        head = _raw(service.address, b"HEAD /readyz HTTP/1.1\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")
        assert _health_check(service.address, "livez") == 0
        assert _health_check(service.address, "readyz") == 0
        os.environ["UPGESTAO_PROBE_ADDRESS"] = f"127.0.0.1:{service.address[1]}"  # the image's health check
        try:
            assert main(TALLY, ["probe", "readyz"]) == 0
            assert '200 {"status": "ready"}' in capsys.readouterr().out

            name = sa.make_url(url).database
            _allow_connections(name, False)
            try:
                body = service.until("/readyz", 503)
                assert set(body["failing"]) == {"database"}, body
                assert body["failing"]["database"].startswith("unreachable (")
                assert service.get("/livez")[0] == 200  # alive: nothing a restart would mend
                assert _health_check(service.address, "livez") == 0
                assert _health_check(service.address, "readyz") != 0
                assert main(TALLY, ["probe", "readyz"]) == 1
                assert main(TALLY, ["probe", "livez"]) == 0
            finally:
                _allow_connections(name, True)
        finally:
            del os.environ["UPGESTAO_PROBE_ADDRESS"]
        service.until("/readyz", 200)

        started = time.monotonic()
        assert service.terminate() == 0
        assert time.monotonic() - started < 15
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(service.address, timeout=2).close()
        assert "/readyz" not in service.log.read_text()  # no line per probe
    finally:
        service.kill()


def test_a_service_without_its_broker_is_alive_and_not_ready(tmp_path, database_factory):
    url = database_factory("probes")
    create_sample_tables(url)
    broker = f"amqp://guest:guest@127.0.0.1:{free_port()}/"  # nothing listens there
    service = Process("run", _env(tmp_path, broker, url, free_port()), tmp_path)
    try:
        assert service.until("/livez", 200) == {"status": "alive"}
        assert service.until("/readyz", 503) == {"status": "not ready", "failing": {"service": "starting"}}
        assert service.get("/livez")[0] == 200
        # (its handlers' queue declarations give up after kombu's retries and the process exits 1 on its own,
        # to be restarted: not a matter of the probes)
    finally:
        service.kill()


def test_a_relay_is_ready_once_it_polls_and_stops_on_sigterm(tmp_path, amqp_uri, database_factory):
    url = database_factory("probes")
    create_sample_tables(url)
    relay = Process("relay", _env(tmp_path, amqp_uri, url, free_port()), tmp_path)
    try:
        assert relay.until("/readyz", 200) == {"status": "ready"}
        assert relay.get("/livez")[0] == 200
        assert relay.terminate() == 0
    finally:
        relay.kill()



def test_a_relay_without_its_database_is_alive_and_not_ready(tmp_path, amqp_uri, database_factory):
    url = database_factory("probes")
    create_sample_tables(url)
    relay = Process("relay", _env(tmp_path, amqp_uri, url, free_port()), tmp_path)
    try:
        relay.until("/readyz", 200)
        name = sa.make_url(url).database
        _allow_connections(name, False)
        try:
            body = relay.until("/readyz", 503)
            assert set(body["failing"]) == {"passes"} and body["failing"]["passes"].endswith(" failed in a row")
            assert relay.get("/livez")[0] == 200
        finally:
            _allow_connections(name, True)
        relay.until("/readyz", 200)  # back within the loop's back-off (at most 2 s)
        assert relay.terminate() == 0
    finally:
        relay.kill()

    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"  # never there at all
    relay = Process("relay", _env(tmp_path, amqp_uri, closed, free_port()), tmp_path)
    try:
        body = relay.until("/readyz", 503)
        assert body["failing"]["outbox"] == "no pass yet", body
        assert relay.get("/livez")[0] == 200
        assert relay.terminate() == 0
    finally:
        relay.kill()


@pytest.mark.parametrize("command", ["run", "relay", "check-config"])
@pytest.mark.parametrize("address", ["9000", "localhost:http", "0.0.0.0:70000"])
def test_a_bad_probe_address_stops_the_process_before_it_starts(command, address, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("UPGESTAO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("UPGESTAO_PROBE_ADDRESS", address)
    assert main(TALLY, [command]) == CONFIG_ERROR_EXIT
    assert capsys.readouterr().err.startswith("upgestao-tally: configuration error: UPGESTAO_PROBE_ADDRESS: ")


def test_a_taken_probe_port_stops_a_relay_with_a_clear_message(tmp_path, amqp_uri, database_factory):
    url = database_factory("probes")
    create_sample_tables(url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        env = _env(tmp_path, amqp_uri, url, taken.getsockname()[1])
        done = subprocess.run([sys.executable, "-c", LAUNCH, str(TESTS), "relay"], env=env, capture_output=True,
                              text=True, timeout=60)
    assert done.returncode == CONFIG_ERROR_EXIT, done.stderr
    assert "configuration error: UPGESTAO_PROBE_ADDRESS: cannot listen on 127.0.0.1:" in done.stderr


def test_probe_without_an_address_says_so(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("UPGESTAO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("UPGESTAO_PROBE_ADDRESS", raising=False)
    assert main(TALLY, ["probe", "livez"]) == CONFIG_ERROR_EXIT
    assert "UPGESTAO_PROBE_ADDRESS: not set" in capsys.readouterr().err


def test_a_service_whose_broker_goes_away_is_alive_and_not_ready(tmp_path, amqp_vhost, amqp_uri, database_factory):
    url = database_factory("probes")
    create_sample_tables(url)
    service = Process("run", _env(tmp_path, amqp_uri, url, free_port()), tmp_path)
    try:
        service.until("/readyz", 200)
        delete_vhost(amqp_vhost)  # this test's own vhost: its connections closed, new ones refused
        try:
            body = service.until("/readyz", 503)
            assert body["failing"] == {"broker": "not connected"}, body
            assert service.get("/livez")[0] == 200
        finally:
            create_vhost(amqp_vhost)
        service.until("/readyz", 200)
        assert service.terminate() == 0
    finally:
        service.kill()
