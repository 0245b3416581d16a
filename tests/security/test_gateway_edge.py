"""Attacks on the gateway's edge, through a real platform (issue 11, findings 3, 8, 12 and 14).

The platform is this module's own: identity keeps its production login budgets (the session's
end-to-end platform raises the per-address one to 1000, because all its tests share 127.0.0.1) and
the gateway trusts one proxy, the "ingress" at 127.0.0.2 (Linux routes all of 127.0.0.0/8 to the
loopback interface: a client socket bound to 127.0.0.2 is that ingress). Requests from 127.0.0.1 are
direct ones, from an operator network (loopback, the default GATEWAY_OPS_NETWORKS).

Each test is an exploit that worked on the landed gateway and asserts that it now fails. What reached
the audit log is read from privacy's database itself (every record, not only what a query shows).
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit

import pytest
import requests
import sqlalchemy as sa
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, Api, new_request_id
from e2e_platform import own_platform
from requests.adapters import HTTPAdapter
from upgestao_kernel.testing import RABBIT_API, wait_for

pytestmark = pytest.mark.e2e

INGRESS = "127.0.0.2"  # the trusted proxy (GATEWAY_TRUSTED_PROXIES below)
ATTACKER = "198.51.100.66"
VICTIM = "203.0.113.50"
ENV = {
    "UPGESTAO_ADMIN_EMAIL": ADMIN_EMAIL,
    "UPGESTAO_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "UPGESTAO_ADMIN_BIRTH_DATE": "1980-01-15",
    "UPGESTAO_ADMIN_NAME": "Primeira Admin",
    "GATEWAY_TRUSTED_PROXIES": f"{INGRESS}/32",
    # not what is tested here (every bad login of the spoofing test is a dummy bcrypt): cost 12 took 20 s
    # of a 2-core CI; the production minimum is proven by tests/test_deploy.py and identity's settings tests
    "IDENTITY_BCRYPT_COST": "4",
}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class FromAddress(HTTPAdapter):
    """Connections from a given local address (the ingress)."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


class Ingress(Api):
    """The platform as the Internet sees it: every request arrives from the ingress, which appends the
    address it received the request from to X-Forwarded-For (``client``), after whatever the client
    wrote itself (``spoofed``)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.session.mount("http://", FromAddress(INGRESS))

    def relay(self, method: str, path: str, client: str, token: str | None = None, spoofed: str | None = None,
              **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        headers["X-Forwarded-For"] = f"{spoofed}, {client}" if spoofed else client
        return self.request(method, path, token, headers=headers, **kwargs)


@pytest.fixture(scope="module")
def edge_platform(tmp_path_factory, platform_module):
    with own_platform(platform_module, tmp_path_factory.mktemp("edge-platform"), "edge", ENV) as running:
        yield running


@pytest.fixture(scope="module")
def direct(edge_platform) -> Api:
    return Api(edge_platform.url)


@pytest.fixture(scope="module")
def ingress(edge_platform) -> Ingress:
    return Ingress(edge_platform.url)


@pytest.fixture(scope="module")
def people(direct):
    admin = direct.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    attendant_user, attendant = direct.create_staff(admin, "attendant")
    return {"admin": admin, "attendant": attendant["access_token"], "attendant_user": attendant_user}


def rows_as_text(url: str, table: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [row[0] for row in conn.execute(sa.text(f"SELECT CAST(t AS text) FROM {table} t"))]
    finally:
        engine.dispose()


def stored_audit(platform, request_id: str, timeout: float = 20.0) -> list[dict]:
    """The audit records of ``request_id`` in privacy's log (each record's leaf), once there is one."""
    engine = sa.create_engine(platform.database_urls["privacy"])
    query = sa.text("SELECT leaf FROM audit_records WHERE request_id = :rid ORDER BY seq")
    try:
        def found() -> list[dict]:
            with engine.connect() as conn:
                return [json.loads(row[0]) for row in conn.execute(query, {"rid": request_id})]

        return wait_for(found, timeout=timeout, interval=0.25)
    finally:
        engine.dispose()


def record_of(leaf: dict) -> dict:
    return leaf.get("record", leaf)


# -- finding 3: one client locks everyone out ------------------------------------------------


def test_spoofed_forwarded_for_cannot_lock_out_other_clients(ingress, people):
    """60 bad logins from one attacker behind the ingress, each naming another address first: the
    landed gateway keyed identity's per-address budget on the ingress's address (every client's), so the
    victim was refused (429). The attacker's own address is throttled now, and nobody else."""

    def bad_login(n: int) -> int:
        return ingress.relay("POST", "/v1/auth/login", ATTACKER, spoofed=f"10.{n % 250}.{n // 250}.7",
                             json={"email": f"nobody-{uuid.uuid4().hex[:10]}@example.com",
                                   "password": "wrong password 123"}).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(bad_login, range(60)))
    assert set(statuses) <= {401, 429}, statuses
    assert 429 in statuses, "the attacker's own address was never throttled: spoofed addresses gave fresh budgets"
    assert ingress.relay("POST", "/v1/auth/login", ATTACKER, spoofed=VICTIM, json={
        "email": "nobody@example.com", "password": "wrong password 123"}).status_code == 429

    victim = people["attendant_user"]
    started = time.monotonic()
    response = ingress.relay("POST", "/v1/auth/login", VICTIM, json={"email": victim["email"],
                                                                    "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 10


def test_a_direct_peers_forwarded_for_is_ignored(edge_platform, direct, people):
    """A client connecting directly (not through a trusted proxy) names any address it likes in
    X-Forwarded-For: ignored; its login is recorded from its own network, 127.0.0.0/24."""
    request_id = new_request_id("direct-xff")
    user = people["attendant_user"]
    response = direct.post("/v1/auth/login", json={"email": user["email"], "password": PASSWORD},
                           headers={"X-Forwarded-For": "203.0.113.99", "X-Request-ID": request_id})
    assert response.status_code == 200, response.text
    records = [record_of(leaf) for leaf in stored_audit(edge_platform, request_id)]
    assert [r["source_ip"] for r in records if r["action"] == "login"] == ["127.0.0.0/24"], records


# -- finding 8: personal values in the immutable log -------------------------------------------


def test_audit_records_hold_a_network_never_the_client_address(edge_platform, ingress, direct, people):
    client = "198.51.100.23"
    request_id = new_request_id("network-only")
    user = people["attendant_user"]
    response = ingress.relay("POST", "/v1/auth/login", client, headers={"X-Request-ID": request_id},
                             json={"email": user["email"], "password": PASSWORD})
    assert response.status_code == 200, response.text
    records = [record_of(leaf) for leaf in stored_audit(edge_platform, request_id)]
    assert [r["source_ip"] for r in records if r["action"] == "login"] == ["198.51.100.0/24"], records
    stored = rows_as_text(edge_platform.database_urls["privacy"], "audit_records")
    assert stored and not [row for row in stored if client in row or ATTACKER in row or VICTIM in row]


@pytest.mark.parametrize("subject", ["Maria Silva", "maria.silva", "Maria_Silva-1985"])
def test_a_summary_path_cannot_store_a_name(edge_platform, direct, people, subject):
    """``GET /v1/audit/subjects/<name>/summary`` by someone without audit.read was audited as a denied
    access with the path text as its subject, forever ("maria.silva" matched the old id converter).
    Now any non-UUID is a 422 naming the parameter, whoever asks, and nothing is recorded."""
    path = f"/v1/audit/subjects/{quote(subject)}/summary"
    for who in ("attendant", "admin"):
        response = direct.get(path, people[who])
        assert response.status_code == 422, (who, response.status_code, response.text)
        body = response.json()
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert body["errors"] == [{"field": "subject_id", "message": "must be a UUID"}]
        assert subject not in json.dumps({k: v for k, v in body.items() if k != "instance"})  # (echoed, not kept)
    # whatever was going to reach the log has: a denied request is audited synchronously by the gateway
    # (its outbox) and relayed within a second
    marker = new_request_id("after-name")
    denied = direct.get(f"/v1/audit/subjects/{uuid.uuid4()}/summary", people["attendant"],
                        headers={"X-Request-ID": marker})
    assert denied.status_code == 403
    assert [record_of(leaf)["outcome"] for leaf in stored_audit(edge_platform, marker)] == ["denied"]
    for service, table in (("privacy", "audit_records"), ("gateway", "outbox")):
        rows = rows_as_text(edge_platform.database_urls[service], table)
        assert not [row for row in rows if subject in row or subject.lower() in row.lower()], service


@pytest.mark.parametrize("request_id", ["Maria Silva", "maria@example.com", "x" * 10_000])
def test_a_bad_request_id_is_replaced_and_never_stored(edge_platform, direct, people, request_id):
    user = people["attendant_user"]
    response = direct.post("/v1/auth/login", json={"email": user["email"], "password": PASSWORD},
                           headers={"X-Request-ID": request_id})
    used = response.headers["X-Request-ID"]
    assert UUID.match(used) and used != request_id
    if response.status_code == 200:  # (10 KB exceeds the header line limit: a 431, its id replaced too)
        assert stored_audit(edge_platform, used)
    else:
        assert response.status_code == 431 and response.json()["request_id"] == used
    rows = rows_as_text(edge_platform.database_urls["privacy"], "audit_records")
    assert not [row for row in rows if request_id[:64] in row]


# -- finding 14: malformed HTTP -------------------------------------------------------------------


def raw_exchange(url: str, data: bytes, timeout: float = 10.0) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(data)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    return received


MALFORMED = {
    "bad request line": (b"GARBAGE\r\n\r\n", 400),
    "three-part garbage line": (b"GET / HTTP/1.1 extra\r\nHost: g\r\n\r\n", 400),
    "HTTP/2 on the request line": (b"GET /healthz HTTP/2.0\r\nHost: g\r\n\r\n", 505),
    "URI too long": (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: g\r\n\r\n", 414),
    "header line too long": (b"GET /healthz HTTP/1.1\r\nHost: g\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
    "too many header bytes": (b"GET /healthz HTTP/1.1\r\nHost: g\r\n"
                              + b"".join(b"X-H%d: %s\r\n" % (i, b"c" * 4000) for i in range(20)) + b"\r\n", 431),
    "non-numeric Content-Length": (b"POST /v1/auth/login HTTP/1.1\r\nHost: g\r\nContent-Length: ten\r\n\r\n", 400),
    "negative Content-Length": (b"POST /v1/auth/login HTTP/1.1\r\nHost: g\r\nContent-Length: -5\r\n\r\n", 400),
    "Content-Length with Transfer-Encoding": (
        b"POST /v1/auth/login HTTP/1.1\r\nHost: g\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n", 400),
    "two different Content-Lengths (smuggling)": (
        b"POST /v1/auth/login HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
        b"Content-Length: 40\r\n\r\n{}", 400),
    "a transfer coding other than chunked (smuggling)": (
        b"POST /v1/auth/login HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: gzip\r\n\r\n{}", 400),
    "a header line without a colon (the headers after it were dropped)": (
        b"GET /healthz HTTP/1.1\r\nHost: g\r\nNoColonHere\r\nAuthorization: Bearer x\r\n\r\n", 400),
    "broken chunked body": (
        b"POST /v1/auth/login HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_http_is_answered_as_problem_json(edge_platform, case):
    data, status = MALFORMED[case]
    answer = raw_exchange(edge_platform.url, data)
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith(f"HTTP/1.1 {status} "), (case, answer[:300])
    headers = {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip() for line in lines[1:] if ":" in line}
    assert headers["content-type"].startswith("application/problem+json"), (case, headers)
    document = json.loads(body[: int(headers["content-length"])])
    assert document["status"] == status and document["type"].startswith("https://upgestao.com.br/problems/")
    assert UUID.match(headers["x-request-id"]) and document["request_id"] == headers["x-request-id"]


# -- finding 12: /readyz --------------------------------------------------------------------------


def rpc_messages(vhost: str, queue: str) -> int:
    parts = urlsplit(RABBIT_API)
    base = f"{parts.scheme}://{parts.hostname}:{parts.port}"
    response = requests.get(f"{base}/api/queues/{quote(vhost, safe='')}/{queue}",
                            auth=(parts.username or "guest", parts.password or "guest"), timeout=10)
    response.raise_for_status()
    return int((response.json().get("message_stats") or {}).get("publish", 0))


def test_readyz_tells_the_public_nothing_but_ready_and_a_flood_makes_no_rpc_storm(edge_platform, ingress, direct):
    """The landed /readyz answered everyone with each dependency's state and made a broker connection
    and four RPCs per call: 200 calls, 800 health RPCs. Through the ingress now: ready or not, nothing
    more, from a check at most 2 s old, shared by everyone."""
    public = ingress.relay("GET", "/readyz", "203.0.113.8")
    assert public.status_code == 200 and public.json() == {"status": "ready"}
    operator = direct.get("/readyz")  # loopback, not through the proxy: an operator
    assert operator.status_code == 200 and operator.json()["checks"]["identity"] == "ok"
    assert "unrouted_depth" in operator.json(), operator.text

    wait_for(lambda: rpc_messages(edge_platform.vhost, "rpc-identity") > 0, timeout=20, interval=0.5)
    time.sleep(6)  # the management API's statistics are sampled every 5 s
    before = rpc_messages(edge_platform.vhost, "rpc-identity")
    started = time.monotonic()
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda n: ingress.relay("GET", "/readyz", f"203.0.113.{n % 250}"), range(200)))
    took = time.monotonic() - started
    assert all(a.status_code == 200 and a.json() == {"status": "ready"} for a in answers)
    time.sleep(6)
    after = rpc_messages(edge_platform.vhost, "rpc-identity")
    # one health RPC to identity per check, one check per 2 s at most (plus slack for sampling)
    assert after - before <= took / 2 + 3, (before, after, took)
