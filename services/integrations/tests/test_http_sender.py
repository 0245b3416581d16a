"""The webhook sender on real sockets: a threaded HTTP receiver on 127.0.0.1 (and a TLS one with a test CA).

The SSRF guard refuses loopback without the allow-list, a DNS name that resolves to 127.0.0.1, and a name that
resolves to an allowed and a refused address at once (nothing reaches the receiver: it counts every TCP
connection it accepts); with ``127.0.0.0/8`` allowed the POST arrives byte for byte, signed so that the
``standardwebhooks`` reference verifies it; a 302 is returned, not followed; a stalled receiver is a
``timeout`` within the deadline (and does not hold other deliveries up); answer headers come lower-cased; a
huge answer is read no further than ``max_response_bytes``; kept-alive connections are reused, and one the
server dropped is replaced.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks.webhooks import Webhook
from upgestao_integrations.adapters.http_sender import SendResult, WebhookSender
from upgestao_integrations.domain.network import AllowedNetworks
from upgestao_integrations.domain.signing import new_secret, webhook_headers

LOOPBACK = AllowedNetworks.parse("127.0.0.0/8")
HUGE = 64 * 1024 * 1024


class Receiver:
    """A tiny HTTP/1.1 (keep-alive) server: records each request and each accepted connection."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict] = []
        self.connections: list[tuple[str, int]] = []
        self.release = threading.Event()
        self.huge_sent = 0
        self.closed = 0  # connections the server has closed
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body,
                                          "client": self.client_address})
                route = getattr(receiver, "route_" + self.path.strip("/").split("?")[0].replace("-", "_"),
                                receiver.route_ok)
                route(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request, client_address) -> None:
                receiver.connections.append(client_address)
                super().process_request(request, client_address)

            def shutdown_request(self, request) -> None:
                super().shutdown_request(request)
                receiver.closed += 1

        self.server = Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/ok", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _answer(handler, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def route_ok(self, handler) -> None:
        self._answer(handler, 204)

    def route_redirect(self, handler) -> None:
        self._answer(handler, 302, {"Location": self.redirect_to})

    def route_throttle(self, handler) -> None:
        self._answer(handler, 503, {"Retry-After": "7", "Webhook-Delivery": "abort-message", "X-Mixed-Case": "Kept"},
                     b"busy")

    def route_stall(self, handler) -> None:
        self.release.wait(30)
        self._answer(handler, 200)

    def route_chunked(self, handler) -> None:
        handler.send_response(202)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for part in (b"accepted", b" later"):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        handler.wfile.write(b"0\r\n\r\n")

    def route_slow_body(self, handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        handler.wfile.write(b"0123456789")
        handler.wfile.flush()
        self.release.wait(30)

    def route_drop(self, handler) -> None:
        # answer kept-alive, then close the connection without saying so (as an idle timeout would)
        self._answer(handler, 200, body=b"ok")
        handler.close_connection = True

    def route_huge(self, handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(HUGE))
        handler.end_headers()
        chunk = b"x" * 65536
        try:
            while self.huge_sent < HUGE:
                handler.wfile.write(chunk)
                self.huge_sent += len(chunk)
        except OSError:
            handler.close_connection = True


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def other_receiver():
    server = Receiver()
    yield server
    server.stop()


def resolver_for(*addresses: str):
    calls: list[str] = []

    def resolve(host, port, *args):
        calls.append(host)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port, 0, 0) if ":" in a else (a, port)) for a in addresses]

    resolve.calls = calls
    return resolve


def _signed(body: bytes, secrets: list[str], msg_id: str = "msg_0123abcd") -> dict[str, str]:
    return webhook_headers(msg_id, int(time.time()), body, secrets)


BODY = json.dumps({"type": "message.created", "timestamp": "2026-01-01T00:00:00.000Z",
                   "data": {"message_id": "m1", "body": "Olá ✓"}}, ensure_ascii=False,
                  separators=(",", ":")).encode()


def test_loopback_is_refused_without_the_allow_list(receiver):
    sender = WebhookSender(AllowedNetworks(), timeout_s=2)
    result = sender.post(receiver.url(), BODY, _signed(BODY, [new_secret()]))
    assert result.status_code is None and result.error is None
    assert "loopback" in result.refused
    assert receiver.connections == [] and receiver.requests == []
    assert sender.connections_opened == 0


def test_a_name_resolving_to_loopback_is_refused(receiver):
    resolve = resolver_for("127.0.0.1")
    sender = WebhookSender(AllowedNetworks(), timeout_s=2, resolver=resolve)
    result = sender.post(receiver.url(host="hooks.example.test"), BODY, _signed(BODY, [new_secret()]))
    assert result.refused is not None and "127.0.0.1" in result.refused and "loopback" in result.refused
    assert resolve.calls == ["hooks.example.test"]
    assert receiver.connections == []


def test_one_refused_address_refuses_the_host(receiver):
    # DNS rebinding: an allowed address and the metadata service in one answer; nothing is tried
    resolve = resolver_for("127.0.0.1", "169.254.169.254")
    sender = WebhookSender(LOOPBACK, timeout_s=2, resolver=resolve)
    result = sender.post(receiver.url(host="hooks.example.test"), BODY, _signed(BODY, [new_secret()]))
    assert result.refused is not None and "169.254.169.254" in result.refused
    assert receiver.connections == []
    public_then_private = WebhookSender(AllowedNetworks(), timeout_s=2, resolver=resolver_for("93.184.216.34",
                                                                                              "10.0.0.5"))
    assert "10.0.0.5" in public_then_private.post("http://hooks.example.test/", BODY, {}).refused


def test_every_call_resolves_again(receiver):
    answers = iter([["127.0.0.1"], ["10.9.9.9"]])
    resolve_calls = []

    def resolve(host, port, *args):
        resolve_calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in next(answers)]

    sender = WebhookSender(LOOPBACK, timeout_s=2, resolver=resolve)
    assert sender.post(receiver.url(host="hooks.example.test"), BODY, {}).status_code == 204
    assert "10.9.9.9" in sender.post(receiver.url(host="hooks.example.test"), BODY, {}).refused
    assert len(resolve_calls) == 2 and len(receiver.requests) == 1


def test_with_the_allow_list_the_exact_bytes_and_headers_arrive(receiver):
    old, new = new_secret(), new_secret()
    resolve = resolver_for("127.0.0.1")
    sender = WebhookSender(LOOPBACK, timeout_s=5, resolver=resolve)
    headers = _signed(BODY, [new, old])
    result = sender.post(receiver.url("/ok?x=1", host="hooks.example.test"), BODY,
                         {**headers, "Host": "evil.example", "Content-Length": "1"})
    assert isinstance(result, SendResult)
    assert (result.status_code, result.error, result.refused) == (204, None, None)
    assert 0 < result.duration_ms < 5000
    [request] = receiver.requests
    assert request["path"] == "/ok?x=1"
    assert request["body"] == BODY
    got = {k.lower(): v for k, v in request["headers"].items()}
    for name, value in headers.items():
        assert got[name] == value
    assert got["host"] == f"hooks.example.test:{receiver.port}"  # the URL's name, though we connected to the IP
    assert got["content-length"] == str(len(BODY))
    # a receiver holding either secret verifies with the reference package
    assert Webhook(new).verify(request["body"], request["headers"])["data"]["body"] == "Olá ✓"
    assert Webhook(old).verify(request["body"], request["headers"])["type"] == "message.created"


def test_a_redirect_is_returned_not_followed(receiver, other_receiver):
    receiver.redirect_to = other_receiver.url("/target")
    result = WebhookSender(LOOPBACK, timeout_s=5).post(receiver.url("/redirect"), BODY, {})
    assert result.status_code == 302 and result.error is None
    assert result.headers["location"] == other_receiver.url("/target")
    assert other_receiver.connections == [] and other_receiver.requests == []


def test_a_stalled_receiver_times_out_within_the_deadline(receiver):
    sender = WebhookSender(LOOPBACK, timeout_s=1)
    started = time.monotonic()
    result = sender.post(receiver.url("/stall"), BODY, {})
    elapsed = time.monotonic() - started
    assert result.error == "timeout" and result.status_code is None and result.refused is None
    assert 0.9 <= elapsed < 1.8
    assert 900 <= result.duration_ms < 1800


def test_a_stalled_receiver_does_not_hold_other_deliveries(receiver, other_receiver):
    stalled: list[SendResult] = []
    sender = WebhookSender(LOOPBACK, timeout_s=3)
    worker = threading.Thread(target=lambda: stalled.append(sender.post(receiver.url("/stall"), BODY, {})))
    worker.start()
    deadline = time.monotonic() + 5
    while not receiver.requests and time.monotonic() < deadline:  # the stalled request is in
        time.sleep(0.01)
    assert receiver.requests
    started = time.monotonic()
    assert sender.post(other_receiver.url(), BODY, {}).status_code == 204
    assert time.monotonic() - started < 1.0 and not stalled
    receiver.release.set()
    worker.join(5)
    assert stalled[0].status_code == 200


def test_a_body_that_stalls_leaves_the_status_standing(receiver):
    sender = WebhookSender(LOOPBACK, timeout_s=1)
    result = sender.post(receiver.url("/slow-body"), BODY, {})
    assert (result.status_code, result.error) == (200, None)
    assert result.response_bytes == 10 and result.response_truncated
    assert 900 <= result.duration_ms < 1800
    receiver.release.set()
    assert sender.post(receiver.url(), BODY, {}).status_code == 204
    assert sender.connections_opened == 2  # the broken connection was not reused


def test_answer_headers_are_lower_cased(receiver):
    result = WebhookSender(LOOPBACK, timeout_s=5).post(receiver.url("/throttle"), BODY, {})
    assert result.status_code == 503
    assert result.headers["retry-after"] == "7"
    assert result.headers["webhook-delivery"] == "abort-message"
    assert result.headers["x-mixed-case"] == "Kept"
    assert all(name == name.lower() for name in result.headers)
    assert result.response_bytes == 4 and not result.response_truncated


def test_a_huge_answer_is_read_no_further_than_the_limit(receiver):
    sender = WebhookSender(LOOPBACK, timeout_s=5, max_response_bytes=1024)
    started = time.monotonic()
    result = sender.post(receiver.url("/huge"), BODY, {})
    assert result.status_code == 200 and result.error is None
    assert result.response_bytes == 1024 and result.response_truncated
    assert time.monotonic() - started < 3
    deadline = time.monotonic() + 5
    while receiver.thread.is_alive() and receiver.huge_sent < HUGE and time.monotonic() < deadline:
        before = receiver.huge_sent
        time.sleep(0.05)
        if receiver.huge_sent == before:
            break
    assert receiver.huge_sent < HUGE // 2  # the connection was dropped, not drained
    # and never reused: the next delivery opens a new connection
    assert sender.post(receiver.url(), BODY, {}).status_code == 204
    assert sender.connections_opened == 2


def test_keep_alive_reuses_one_connection(receiver):
    sender = WebhookSender(LOOPBACK, timeout_s=5)
    for number in range(3):
        assert sender.post(receiver.url(), BODY, _signed(BODY, [new_secret()], f"msg_{number}")).status_code == 204
    assert len(receiver.requests) == 3
    assert len({request["client"] for request in receiver.requests}) == 1
    assert len(receiver.connections) == 1 and sender.connections_opened == 1
    sender.close()
    assert sender.post(receiver.url(), BODY, {}).status_code == 204
    assert len(receiver.connections) == 2


def test_a_chunked_answer_is_read_and_the_connection_kept(receiver):
    sender = WebhookSender(LOOPBACK, timeout_s=5)
    first = sender.post(receiver.url("/chunked"), BODY, {})
    assert (first.status_code, first.response_bytes, first.response_truncated) == (202, 14, False)
    assert sender.post(receiver.url("/chunked"), BODY, {}).status_code == 202
    assert sender.connections_opened == 1 and len(receiver.connections) == 1


def test_a_connection_the_server_dropped_is_replaced(receiver):
    sender = WebhookSender(LOOPBACK, timeout_s=5, stale_check_after_s=0)  # always polled before reuse
    assert sender.post(receiver.url("/drop"), BODY, {}).status_code == 200
    deadline = time.monotonic() + 5
    while receiver.closed == 0 and time.monotonic() < deadline:  # the server has closed its side
        time.sleep(0.01)
    result = sender.post(receiver.url(), BODY, {})
    assert result.status_code == 204, result
    assert len(receiver.requests) == 2 and len(receiver.connections) == 2
    assert sender.connections_opened == 2


def test_nothing_listening_is_a_connection_error():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    result = WebhookSender(LOOPBACK, timeout_s=2).post(f"http://127.0.0.1:{port}/", BODY, {})
    assert result.status_code is None and result.error == "connection refused"


def test_a_bad_url_is_refused_before_anything():
    resolve = resolver_for("93.184.216.34")
    result = WebhookSender(LOOPBACK, resolver=resolve).post("https://user:pw@hooks.example.test/", BODY, {})
    assert result.refused is not None and "user name" in result.refused and "pw" not in result.refused
    assert resolve.calls == []


def test_dns_failure_is_an_error():
    def resolve(host, port, *args):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    result = WebhookSender(LOOPBACK, resolver=resolve).post("https://nowhere.example.test/", BODY, {})
    assert result.status_code is None and result.refused is None and result.error.startswith("dns:")


# -- HTTPS: the certificate is checked against the URL's name while the connection goes to the checked IP --

def _certificate_authority(tmp_path, name: str):
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "UpGestao test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "leaf.pem", tmp_path / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


def test_https_verifies_the_url_s_name_on_the_checked_address(tmp_path):
    server_context, client_context = _certificate_authority(tmp_path, "hooks.example.test")
    tls_receiver = Receiver(tls=server_context)
    try:
        resolve = resolver_for("127.0.0.1")
        sender = WebhookSender(LOOPBACK, timeout_s=5, resolver=resolve, ssl_context=client_context)
        secret = new_secret()
        url = tls_receiver.url("/ok", host="hooks.example.test", scheme="https")
        first = sender.post(url, BODY, _signed(BODY, [secret]))
        second = sender.post(url, BODY, _signed(BODY, [secret], "msg_second"))
        assert (first.status_code, second.status_code) == (204, 204)
        assert sender.connections_opened == 1  # the TLS connection kept alive too
        Webhook(secret).verify(tls_receiver.requests[0]["body"], tls_receiver.requests[0]["headers"])
        # the same server under another name: the certificate does not match, nothing is sent
        wrong = sender.post(tls_receiver.url("/ok", host="other.example.test", scheme="https"), BODY, {})
        assert wrong.status_code is None and wrong.error.startswith("tls:")
        assert len(tls_receiver.requests) == 2
        # and without the test CA the certificate is not trusted
        untrusted = WebhookSender(LOOPBACK, timeout_s=5, resolver=resolve).post(url, BODY, {})
        assert untrusted.error is not None and untrusted.error.startswith("tls:")
        assert len(tls_receiver.requests) == 2
    finally:
        tls_receiver.stop()


def test_an_ipv6_literal_is_checked_too():
    result = WebhookSender(AllowedNetworks(), timeout_s=1).post("http://[::1]:9/", BODY, {})
    assert "loopback" in result.refused
    mapped = WebhookSender(AllowedNetworks(), timeout_s=1).post("http://[::ffff:127.0.0.1]:9/", BODY, {})
    assert "IPv4-mapped loopback" in mapped.refused


def test_a_dropped_connection_missed_by_the_idle_check_is_retried_once_on_a_fresh_one(receiver, monkeypatch):
    from upgestao_integrations.adapters import http_sender

    monkeypatch.setattr(http_sender._DeadlineSocket, "stale", lambda self: False)
    sender = WebhookSender(LOOPBACK, timeout_s=5)
    assert sender.post(receiver.url("/drop"), BODY, {}).status_code == 200
    deadline = time.monotonic() + 5
    while receiver.closed == 0 and time.monotonic() < deadline:  # the server has closed its side
        time.sleep(0.01)
    assert receiver.closed == 1
    result = sender.post(receiver.url(), BODY, {})
    assert result.status_code == 204, result
    assert len(receiver.requests) == 2 and sender.connections_opened == 2


def test_the_dispatchers_sender_keeps_a_connection_for_each_post_of_a_wave(receiver):
    """The dispatcher POSTs ``per_endpoint`` (8) at once to an endpoint: its sender keeps that many idle
    connections, so wave after wave reuses them (it used to keep 4: every wave closed 4 and opened 4 more)."""
    from concurrent.futures import ThreadPoolExecutor

    from upgestao_integrations.entrypoints.dispatcher import webhook_sender
    from upgestao_integrations.settings import IntegrationsSettings

    settings = IntegrationsSettings(production=False, allowed_networks="127.0.0.0/8", secrets_key=b"k" * 32,
                                    timeout_s=5)
    sender = webhook_sender(settings)
    wave = settings.per_endpoint
    started = threading.Barrier(wave)

    def post(_: int) -> int:
        started.wait(5)  # the wave's POSTs all at once: each needs a connection of its own
        return sender.post(receiver.url(), BODY, {}).status_code

    with ThreadPoolExecutor(wave) as pool:
        for _ in range(3):
            assert list(pool.map(post, range(wave))) == [204] * wave
    assert len(receiver.requests) == 3 * wave
    assert sender.connections_opened == len(receiver.connections) <= wave
    sender.close()
