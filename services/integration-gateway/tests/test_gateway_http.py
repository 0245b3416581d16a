"""The gateway over real HTTP, with the platform's services on real RabbitMQ
and PostgreSQL: problem details, request ids, limits, auth, readiness, docs."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import time

import eventlet
import pytest
import requests
import structlog
from eventlet.event import Event
from openapi_spec_validator import validate
from upgestao_gateway.entrypoints.http.bodies import RawBody
from upgestao_gateway.entrypoints.http.openapi import routes_of
from upgestao_gateway.entrypoints.http.problems import PROBLEM_BASE
from upgestao_gateway.entrypoints.http.schemas import ProblemSchema
from upgestao_gateway.entrypoints.http.server import GatewayWebServer
from upgestao_gateway.entrypoints.http.spec import MAX_BODY_BYTES
from upgestao_kernel.logging import configure_logging
from upgestao_notifier.service import NotifierService

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
JSON = {"Content-Type": "application/json"}
VALID_ECHO = {"title": "order", "lines": [{"sku": "A-1", "quantity": 2}]}
PHOTO_LIMIT = 2 * 1024 * 1024  # /test/photo's RawBody limit (conftest)


def assert_problem(response, status: int, slug: str, instance: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert body["instance"] == instance
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert ProblemSchema().validate(body) == {}
    assert "Traceback" not in response.text
    return body


# -- success and request ids ---------------------------------------------------------


def test_healthz_is_json_with_a_generated_request_id(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}
    assert UUID4.match(response.headers["X-Request-ID"])


def test_head_answers_without_body(client):
    response = client.request("HEAD", "/healthz")
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize("path", ["/healthz", "/no/such/path", "/test/boom"])
def test_a_well_formed_request_id_is_echoed_on_every_response(client, path):
    response = client.get(path, headers={"X-Request-ID": "client.req_0001-A"})
    assert response.headers["X-Request-ID"] == "client.req_0001-A"


@pytest.mark.parametrize("bad", ["short", "has spaces in it", "x" * 129, "émoji-id-123", "a,b,c,d,e,f"])
def test_a_malformed_request_id_is_replaced(client, bad):
    response = client.get("/healthz", headers={"X-Request-ID": bad})
    assert UUID4.match(response.headers["X-Request-ID"])


def test_ping_makes_one_rpc_round_trip(client):
    response = client.get("/v1/ping", headers={"X-Request-ID": "bench-ping-0001"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"pong": True, "service": "identity", "request_id": "bench-ping-0001"}


def test_request_id_and_source_ip_reach_the_downstream_service(client):
    response = client.get("/test/context", headers={"X-Request-ID": "trace-me-0001"})
    assert response.status_code == 200
    assert response.json() == {"request_id": "trace-me-0001", "source_ip": "127.0.0.1"}


def test_a_direct_peer_cannot_name_its_own_address(client):
    """No proxy is trusted (GATEWAY_TRUSTED_PROXIES unset): X-Forwarded-For means nothing (finding 3)."""
    response = client.get("/test/context", headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.1"})
    assert response.json()["source_ip"] == "127.0.0.1"


@pytest.mark.parametrize("request_id", ["Maria Silva", "maria@example.com", "x" * 10_000, "short", "ação-123456"])
def test_a_malformed_request_id_is_replaced_and_the_answer_says_which(client, request_id):
    response = client.get("/test/context", headers={"X-Request-ID": request_id.encode("utf-8")})
    used = response.headers["X-Request-ID"]
    assert used != request_id and re.fullmatch(r"[0-9a-f-]{36}", used)
    assert response.json()["request_id"] == used


def test_a_generated_request_id_reaches_the_downstream_service(client):
    response = client.get("/test/context")
    assert response.json()["request_id"] == response.headers["X-Request-ID"]


def test_the_authenticated_actor_reaches_the_downstream_service(client):
    response = client.get("/test/private", headers={"Authorization": "Bearer admin-token",
                                                    "X-Request-ID": "actor-trace-01"})
    assert response.status_code == 200
    assert response.json() == {
        "actor_id": "user-admin",
        "downstream": {"request_id": "actor-trace-01", "source_ip": "127.0.0.1",
                       "actor_id": "user-admin", "actor_role": "admin"},
    }


def test_valid_body_and_query_are_loaded_and_the_answer_dumped(client):
    response = client.post("/test/echo?limit=5&tag=a&tag=b", json=VALID_ECHO)
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json"
    # "unexpected" (returned by the handler) is not in the response schema: not sent
    assert response.json() == {**VALID_ECHO, "limit": 5, "tag": ["a", "b"]}


def test_a_small_chunked_body_is_accepted(client):
    chunks = iter([b'{"title": "chunked", ', b'"lines": []}'])
    response = client.post("/test/echo", data=chunks, headers=JSON)
    assert response.status_code == 201
    assert response.json()["title"] == "chunked"


def test_reply_sets_status_and_headers(client):
    response = client.get("/test/items/1")
    assert response.status_code == 202
    assert response.headers["Location"] == "/test/items/1"
    assert response.json() == {"item_id": 1}


# -- errors ----------------------------------------------------------------------------


def test_unknown_path_is_404_problem(client):
    response = client.get("/no/such/path?secret=1")
    assert_problem(response, 404, "not-found", "/no/such/path")


def test_path_converter_mismatch_is_404_problem(client):
    assert_problem(client.get("/test/items/abc"), 404, "not-found", "/test/items/abc")


def test_problem_raised_by_a_handler(client):
    body = assert_problem(client.get("/test/items/0"), 404, "not-found", "/test/items/0")
    assert body["detail"] == "No item 0."


def test_wrong_method_is_405_problem_with_allow(client):
    response = client.post("/healthz", json={})
    assert_problem(response, 405, "method-not-allowed", "/healthz")
    assert response.headers["Allow"] == "GET, HEAD"


def test_body_over_1_mib_is_413(client):
    response = client.post("/test/echo", data=b" " * (2 * MAX_BODY_BYTES), headers=JSON)
    assert_problem(response, 413, "payload-too-large", "/test/echo")
    assert response.headers["Connection"] == "close"


def raw_exchange(platform, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send raw bytes, read one response: (status line, lower-cased headers, body)."""
    with socket.create_connection((platform.host, platform.port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, "connection closed without an answer"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        while len(body) < int(headers["content-length"]):
            body += sock.recv(65536)
    return lines[0], headers, body


def test_broken_chunked_encoding_is_400(platform):
    status, headers, body = raw_exchange(
        platform,
        b"POST /test/echo HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nZZZ\r\n{}\r\n0\r\n\r\n",
    )
    assert status.startswith("HTTP/1.1 400 ")
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["type"] == PROBLEM_BASE + "malformed-request"


def assert_raw_problem(status_line: str, headers: dict[str, str], body: bytes, status: int, slug: str) -> dict:
    assert status_line.startswith(f"HTTP/1.1 {status} "), status_line
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    document = json.loads(body)
    assert document["type"] == PROBLEM_BASE + slug and document["status"] == status
    assert document["request_id"] == headers["x-request-id"]
    assert ProblemSchema().validate(document) == {}
    return document


def test_an_over_long_request_line_is_414_problem_json(platform):
    status, headers, body = raw_exchange(
        platform, b"GET /healthz?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: gateway\r\n\r\n")
    document = assert_raw_problem(status, headers, body, 414, "uri-too-long")
    assert "aaaa" not in body.decode()  # the client's input is not echoed
    assert document["instance"] == ""


def test_an_over_long_header_line_is_431_problem_json(platform):
    status, headers, body = raw_exchange(
        platform, b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n")
    document = assert_raw_problem(status, headers, body, 431, "header-fields-too-large")
    assert document["instance"] == "/healthz"


def test_too_many_header_bytes_are_431_problem_json(platform):
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"c" * 4000) for i in range(20))  # 80 KB in lines under 8 KB
    status, headers, body = raw_exchange(platform, b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n" + many + b"\r\n")
    assert_raw_problem(status, headers, body, 431, "header-fields-too-large")


def test_too_many_header_fields_are_431_problem_json(platform):
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    status, headers, body = raw_exchange(platform, b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n" + many + b"\r\n")
    assert_raw_problem(status, headers, body, 431, "header-fields-too-large")


@pytest.mark.parametrize("line", [b"GET /healthz HTTP/x.y", b"GET /healthz HTTP/1.1 extra", b"POST /test/echo"])
def test_a_malformed_request_line_is_400_problem_json(platform, line):
    status, headers, body = raw_exchange(platform, line + b"\r\nHost: gateway\r\n\r\n")
    document = assert_raw_problem(status, headers, body, 400, "malformed-request")
    assert "x.y" not in document["detail"] and "extra" not in document["detail"]


def test_http_2_on_the_http_1_port_is_505_problem_json(platform):
    status, headers, body = raw_exchange(platform, b"GET /healthz HTTP/2.0\r\nHost: gateway\r\n\r\n")
    assert_raw_problem(status, headers, body, 505, "http-version-not-supported")


@pytest.mark.parametrize("extra", [
    b"Content-Length: -1\r\n", b"Content-Length: 1x\r\n", b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
    # issue 11, finding 14: framings two parsers could read differently (request smuggling) were let through
    b"Content-Length: 2\r\nContent-Length: 40\r\n",  # the first was used, the rest read as the next request
    b"Transfer-Encoding: gzip\r\n",  # no body read: "{}" was read as the next request
    b"Transfer-Encoding: gzip, chunked\r\n",
    b"NoColonHere\r\nX-After: dropped\r\n",  # the standard library dropped every header after it
])
def test_a_malformed_content_length_is_400_problem_json(platform, extra):
    status, headers, body = raw_exchange(
        platform, b"POST /test/echo HTTP/1.1\r\nHost: gateway\r\nX-Request-ID: raw-socket-cl-400\r\n"
                  b"Content-Type: application/json\r\n" + extra + b"\r\n{}")
    assert_raw_problem(status, headers, body, 400, "malformed-request")
    assert headers["x-request-id"] == "raw-socket-cl-400"


def test_a_refused_request_line_leaves_one_info_line_without_traceback(platform, json_logs):
    raw_exchange(platform, b"GET /" + b"z" * 9000 + b" HTTP/1.1\r\nHost: gateway\r\n\r\n")
    refused = [line for line in json_logs() if line.get("event") == "http.refused"]
    assert len(refused) == 1 and refused[0]["level"] == "info" and refused[0]["status"] == 414
    assert "exception" not in refused[0]


def test_the_connection_serves_the_next_request_after_a_normal_one(platform):
    """The override keeps eventlet's keep-alive path: two requests on one connection."""
    with socket.create_connection((platform.host, platform.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n" * 2)
        received = b""
        while received.count(b'{"status":"ok"}') < 2:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    assert received.count(b"HTTP/1.1 200 ") == 2


def test_declared_length_over_the_limit_is_refused_before_the_body_arrives(platform):
    """The body is never sent: an answer proves the server did not wait for it."""
    status, headers, body = raw_exchange(
        platform,
        b"POST /test/echo HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"X-Request-ID: raw-socket-413\r\nContent-Length: 5242880\r\n\r\n",
    )
    assert status.startswith("HTTP/1.1 413 ")
    assert headers["content-type"] == "application/problem+json"
    assert headers["x-request-id"] == "raw-socket-413"
    assert headers["connection"] == "close"
    assert json.loads(body)["type"] == PROBLEM_BASE + "payload-too-large"


def test_chunked_body_over_1_mib_is_413(client):
    def chunks():
        for _ in range(24):  # 1.5 MiB
            yield b" " * 65536

    response = client.post("/test/echo", data=chunks(), headers=JSON)
    assert_problem(response, 413, "payload-too-large", "/test/echo")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/json; charset=latin-1"])
def test_a_body_that_is_not_json_is_415(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/test/echo", data=json.dumps(VALID_ECHO).encode(), headers=headers)
    assert_problem(response, 415, "unsupported-media-type", "/test/echo")


def test_json_suffix_media_types_are_accepted(client):
    response = client.post("/test/echo", data=json.dumps(VALID_ECHO),
                           headers={"Content-Type": "application/merge-patch+json; charset=utf-8"})
    assert response.status_code == 201


@pytest.mark.parametrize("raw", [b"{bad", b"", b"   ", b'{"title": NaN}', b"\xff\xfe{}", b"[" * 100_000])
def test_malformed_json_is_400(client, raw):
    response = client.post("/test/echo", data=raw, headers=JSON)
    assert_problem(response, 400, "malformed-request", "/test/echo")


@pytest.mark.parametrize("raw, key", [
    (b'{"title": "A", "title": "B", "lines": []}', "title"),
    (b'{"title": "A", "lines": [{"sku": "x", "quantity": 1, "sku": "y"}]}', "sku"),
    (b'{"title": "A", "lines": [], "\\u0074itle": "B"}', "title"),  # the same name, escaped
])
def test_a_json_object_repeating_a_member_is_400_naming_it(client, raw, key):
    response = client.post("/test/echo", data=raw, headers=JSON)
    body = assert_problem(response, 400, "malformed-request", "/test/echo")
    assert body["errors"] == [{"field": key, "message": "is given more than once"}]
    assert repr(key) in body["detail"]


@pytest.mark.parametrize("raw", [b'{"title": "\\ud800", "lines": []}', b'{"title": "A", "lines": [{"sku": "\\udfff"}]}',
                                 b'{"\\ud83d": 1, "title": "A", "lines": []}'])
def test_a_lone_surrogate_escape_is_400(client, raw):
    """Valid JSON, but no character: it would fail later, when a service encodes it (a 500)."""
    body = assert_problem(client.post("/test/echo", data=raw, headers=JSON), 400, "malformed-request", "/test/echo")
    assert "surrogate" in body["detail"]


def test_a_surrogate_pair_escape_is_a_character(client):
    response = client.post("/test/echo", data=b'{"title": "\\ud83d\\ude00", "lines": []}', headers=JSON)
    assert response.status_code == 201 and response.json()["title"] == "\U0001f600"


def test_invalid_body_is_422_with_dotted_field_paths(client):
    response = client.post("/test/echo", json={
        "title": "",
        "lines": [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 0}],
        "extra": True,
    })
    body = assert_problem(response, 422, "validation-error", "/test/echo")
    fields = {error["field"]: error["message"] for error in body["errors"]}
    assert set(fields) == {"title", "lines.1.quantity", "extra"}
    assert fields["lines.1.quantity"] == "Must be greater than or equal to 1."
    assert fields["extra"] == "Unknown field."


def test_a_body_of_the_wrong_shape_is_422(client):
    body = assert_problem(client.post("/test/echo", json=[1, 2]), 422, "validation-error", "/test/echo")
    assert body["errors"] == [{"field": "_schema", "message": "Invalid input type."}]


def test_invalid_query_is_422(client):
    response = client.post("/test/echo?limit=0", json=VALID_ECHO)
    body = assert_problem(response, 422, "validation-error", "/test/echo")
    assert [error["field"] for error in body["errors"]] == ["limit"]


def test_an_exploding_handler_is_a_generic_500_and_the_traceback_is_logged(client, json_logs):
    response = client.get("/test/boom", headers={"X-Request-ID": "boom-request-01"})
    body = assert_problem(response, 500, "internal-error", "/test/boom")
    assert "secret-internal-detail" not in response.text
    assert "RuntimeError" not in response.text
    assert set(body) == {"type", "title", "status", "detail", "instance", "request_id"}

    logged = [line for line in json_logs() if line.get("event") == "http.unhandled_exception"]
    assert len(logged) == 1
    assert logged[0]["request_id"] == "boom-request-01"
    assert logged[0]["error_type"] == "RuntimeError"
    assert "Traceback" in logged[0]["exception"] and "secret-internal-detail" in logged[0]["exception"]


def test_auth_required_without_credentials_is_401_bearer_challenge(client):
    response = client.get("/test/private")
    assert_problem(response, 401, "unauthenticated", "/test/private")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="upgestao"'


@pytest.mark.parametrize("header", ["Bearer unknown-token", "Basic dXNlcjpwYXNz", "Bearer", "Bearer a b"])
def test_unacceptable_credentials_are_401(client, header):
    response = client.get("/test/private", headers={"Authorization": header})
    assert_problem(response, 401, "unauthenticated", "/test/private")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_a_missing_permission_is_403_naming_it(client):
    response = client.get("/test/admin", headers={"Authorization": "Bearer member-token"})
    body = assert_problem(response, 403, "forbidden", "/test/admin")
    assert body["permission"] == "admin.read"
    assert client.get("/test/admin", headers={"Authorization": "Bearer admin-token"}).json() == {"ok": True}


# -- raw bodies --------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 100


def test_a_raw_body_reaches_the_handler_as_bytes(client):
    response = client.request("PUT", "/test/photo", data=PNG, headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    assert response.json() == {"bytes": len(PNG), "type": "image/png", "head": "89504e47"}


def test_a_raw_body_over_the_global_json_limit_but_within_the_routes_limit_is_accepted(client):
    data = b"\xff\xd8" + b"\0" * (MAX_BODY_BYTES + 1000)
    response = client.request("PUT", "/test/photo", data=data, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200, response.text
    assert response.json()["bytes"] == len(data)


@pytest.mark.parametrize("content_type", [None, "application/json", "image/gif", "text/plain"])
def test_a_raw_body_of_another_type_is_415(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.request("PUT", "/test/photo", data=PNG, headers=headers)
    body = assert_problem(response, 415, "unsupported-media-type", "/test/photo")
    assert "image/png" in body["detail"]


def test_a_raw_body_over_the_routes_limit_is_413(client):
    data = b"\0" * (PHOTO_LIMIT + 1)
    response = client.request("PUT", "/test/photo", data=data, headers={"Content-Type": "image/png"})
    body = assert_problem(response, 413, "payload-too-large", "/test/photo")
    assert str(PHOTO_LIMIT) in body["detail"]
    assert response.headers["Connection"] == "close"


def test_a_chunked_raw_body_over_the_routes_limit_is_413(client):
    def chunks():
        for _ in range(40):  # 2.5 MiB
            yield b"\0" * 65536

    response = client.request("PUT", "/test/photo", data=chunks(), headers={"Content-Type": "image/png"})
    assert_problem(response, 413, "payload-too-large", "/test/photo")


def test_an_empty_raw_body_is_400(client):
    response = client.request("PUT", "/test/photo", data=b"", headers={"Content-Type": "image/png"})
    assert_problem(response, 400, "malformed-request", "/test/photo")


def test_a_binary_response_is_passed_through(client):
    response = client.get("/test/photo")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")


# -- streamed responses --------------------------------------------------------------------


def test_a_stream_is_sent_chunk_by_chunk_from_the_routes_worker(client):
    response = client.get("/test/stream?lines=300&per_chunk=7", headers={"X-Request-ID": "stream-request-01"},
                          stream=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-ndjson"
    assert response.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in response.headers
    assert response.headers["X-Stream"] == "yes" and response.headers["X-Request-ID"] == "stream-request-01"
    lines = [json.loads(line) for line in response.iter_lines()]
    assert [line["n"] for line in lines] == list(range(301))
    # every chunk made an RPC with the request's context: the worker lived for the whole stream
    assert {line["request_id"] for line in lines} == {"stream-request-01"}
    assert client.get("/healthz").status_code == 200  # and the connection is reusable


def test_an_empty_stream_is_an_empty_body(client):
    response = client.get("/test/stream?lines=0")
    assert response.status_code == 200 and response.content == b""


def test_a_stream_failing_before_its_first_chunk_is_an_ordinary_500(client):
    assert_problem(client.get("/test/stream?fail_at=0"), 500, "internal-error", "/test/stream")


def test_a_stream_failing_midway_is_cut_short_and_logged(client, json_logs):
    response = client.get("/test/stream?lines=10&fail_at=4", headers={"X-Request-ID": "stream-request-02"},
                          stream=True)
    assert response.status_code == 200
    received = []
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for line in response.iter_lines():
            received.append(json.loads(line)["n"])
    assert received == [0, 1, 2, 3]  # what was produced before the failure, then no final chunk
    logged = [line for line in json_logs() if line.get("event") == "http.stream_failed"]
    assert len(logged) == 1 and logged[0]["request_id"] == "stream-request-02"
    assert logged[0]["route"] == "/test/stream" and logged[0]["chunks"] == 4
    assert "broken mid-stream" in logged[0]["exception"]
    assert client.get("/healthz").status_code == 200


def test_a_client_leaving_a_stream_ends_its_worker(platform, client):
    events = platform.containers["gateway"].service_cls.stream_events
    events.closed = Event()
    response = client.get("/test/stream?endless=true", stream=True)
    lines = response.iter_lines()
    assert [json.loads(next(lines))["n"] for _ in range(3)] == [0, 1, 2]
    response.close()
    with eventlet.Timeout(10):
        produced = events.closed.wait()
    assert produced >= 3


def test_a_stream_from_a_route_not_declared_streaming_is_a_500(client):
    assert_problem(client.get("/test/not-a-stream"), 500, "internal-error", "/test/not-a-stream")


def test_a_service_that_does_not_answer_in_time_is_503(client):
    started = time.monotonic()
    response = client.get("/test/slow")
    assert_problem(response, 503, "service-unavailable", "/test/slow")
    assert response.headers["Retry-After"] == "5"
    assert time.monotonic() - started < 1.0


def test_a_service_that_does_not_exist_is_503(client):
    assert_problem(client.get("/test/nowhere"), 503, "service-unavailable", "/test/nowhere")


# -- logs ------------------------------------------------------------------------------


def test_one_access_log_line_per_request_without_query_values(client, json_logs):
    client.get("/v1/ping?email=someone@example.com", headers={"X-Request-ID": "access-log-0001"})
    client.get("/no/such/place", headers={"X-Request-ID": "access-log-0002"})
    lines = [line for line in json_logs() if line.get("event") == "http.request"]
    by_id = {line["request_id"]: line for line in lines}
    assert len(lines) == 2
    ping, missing = by_id["access-log-0001"], by_id["access-log-0002"]
    assert (ping["method"], ping["path"], ping["status"]) == ("GET", "/v1/ping", 200)
    assert (missing["path"], missing["status"]) == (None, 404)
    assert isinstance(ping["duration_ms"], float) and ping["duration_ms"] > 0
    assert "someone@example.com" not in json.dumps(lines)


@pytest.fixture
def json_logs():
    """Route the logs through the kernel's JSON configuration into a buffer."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_config = structlog.get_config()
    stream = io.StringIO()
    configure_logging("gateway", "INFO", stream=stream)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    yield lines
    for handler in root.handlers[:]:
        if handler not in saved_handlers:
            root.removeHandler(handler)
    for handler in saved_handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(saved_level)
    structlog.configure(**saved_config)


# -- readiness ----------------------------------------------------------------------------


def test_readyz_is_ready_when_everything_answers(client):
    """From loopback (an operator network by default): the details, the unrouted queue's depth included."""
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["checks"] == {
        "broker": "ok", "database": "ok", "identity": "ok", "messaging": "ok", "privacy": "ok", "notifier": "ok",
        "integrations": "ok",
    }
    assert body["status"] == "ready" and isinstance(body["unrouted_depth"], int)


def test_readyz_is_503_naming_a_stopped_service(platform, client):
    platform.stop("notifier")
    try:
        response = client.get("/readyz")
        body = assert_problem(response, 503, "not-ready", "/readyz")
        assert body["checks"] == {
            "broker": "ok", "database": "ok", "identity": "ok", "messaging": "ok", "privacy": "ok",
            "notifier": "down", "integrations": "ok",
        }
        assert "notifier" in body["detail"]
    finally:
        platform.start("notifier", NotifierService)
    assert client.get("/readyz").status_code == 200


# -- documentation ---------------------------------------------------------------------


def test_openapi_document_is_valid_and_documents_every_served_route(platform, client):
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    validate(doc)
    assert doc["openapi"] == "3.0.3"

    documented = {(method.upper(), path) for path, item in doc["paths"].items()
                  for method in item if method != "parameters"}
    server = next(ext for ext in platform.containers["gateway"].extensions if isinstance(ext, GatewayWebServer))
    served = {(provider.spec.method, provider.spec.template) for provider in server._providers}
    assert served == documented
    assert {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/v1/ping"), ("GET", "/v1/openapi.json")} <= served

    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for method_name, spec in routes_of(platform.containers["gateway"].service_cls):
        operation = doc["paths"][spec.template][spec.method.lower()]
        assert operation["operationId"] == method_name
        assert operation["x-personal-data"] is spec.personal_data
        responses = operation["responses"]
        assert str(spec.status) in responses
        assert responses["500"]["content"]["application/problem+json"]["schema"] == problem_ref
        if spec.auth == "required":
            assert operation["security"] == [{"bearerAuth": []}] and {"401", "403"} <= set(responses)
            assert operation["x-permission"] == spec.permission
        else:
            assert "security" not in operation and "x-permission" not in operation
        if spec.body is not None and not isinstance(spec.body, RawBody):  # (a raw body has its own media types)
            assert {"400", "413", "415", "422"} <= set(responses)
            assert "application/json" in operation["requestBody"]["content"]

    assert doc["paths"]["/test/admin"]["get"]["x-permission"] == "admin.read"
    assert doc["components"]["securitySchemes"]["bearerAuth"]["bearerFormat"] == "JWT"
    put_photo = doc["paths"]["/test/photo"]["put"]
    binary = {"schema": {"type": "string", "format": "binary"}}
    assert put_photo["requestBody"]["content"] == {"image/jpeg": binary, "image/png": binary, "image/webp": binary}
    assert {"400", "413", "415"} <= set(put_photo["responses"]) and "422" not in put_photo["responses"]
    assert doc["paths"]["/test/photo"]["get"]["responses"]["200"]["content"]["image/png"] == binary
    streamed = doc["paths"]["/test/stream"]["get"]["responses"]["200"]
    assert streamed["content"] == {"application/x-ndjson": {"schema": {"type": "string"}}}
    assert streamed["description"] == "Numbered lines"

    echo = doc["paths"]["/test/echo"]["post"]
    assert {p["name"] for p in echo["parameters"] if p.get("in") == "query"} == {"limit", "tag"}
    assert doc["paths"]["/test/items/{item_id}"]["parameters"] == [
        {"in": "path", "name": "item_id", "required": True, "schema": {"type": "integer"}},
    ]
