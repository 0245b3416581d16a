"""End to end through the gateway with every service and relay running as a
process (D1, D4): readiness, the RPC round trip, request ids, problem+json."""

from __future__ import annotations

import signal

import pytest
from upgestao_kernel.testing import wait_for

pytestmark = pytest.mark.e2e


def get(http, path, **kwargs):
    return http.get(http.base_url + path, timeout=10, **kwargs)


def test_gateway_is_alive_and_every_service_is_ready(http):
    assert get(http, "/healthz").json() == {"status": "ok"}
    ready = get(http, "/readyz")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    for name in ("broker", "database", "identity", "messaging", "privacy", "notifier", "integrations"):
        assert name in checks, checks


def test_ping_is_one_rpc_round_trip_carrying_the_request_id(http):
    response = get(http, "/v1/ping", headers={"X-Request-ID": "e2e-request-000001"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "e2e-request-000001"
    body = response.json()
    assert body["pong"] is True and body["request_id"] == "e2e-request-000001"


def test_unknown_route_and_wrong_method_are_problem_json(http):
    missing = get(http, "/v1/nowhere")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/problem+json")
    assert missing.json()["instance"] == "/v1/nowhere" and missing.headers["X-Request-ID"]
    wrong = http.post(http.base_url + "/v1/ping", timeout=10)
    assert wrong.status_code == 405 and "GET" in wrong.headers["Allow"]
    assert wrong.json()["status"] == 405


def test_openapi_document_validates(http):
    from openapi_spec_validator import validate

    document = get(http, "/v1/openapi.json").json()
    validate(document)
    assert "/v1/ping" in document["paths"] and "/readyz" in document["paths"]


def test_readyz_names_a_stopped_service_then_recovers(platform, http):
    platform.kill("notifier", signal.SIGKILL)
    try:
        # (a 503 Response is falsy, so wait for the pair)
        _, down = wait_for(lambda: (r := get(http, "/readyz")).status_code == 503 and (True, r),
                           timeout=20, interval=0.2)
        assert down.headers["Content-Type"].startswith("application/problem+json")
        assert down.json()["checks"]["notifier"] != "ok"
    finally:
        platform.restart("notifier")
    wait_for(lambda: get(http, "/readyz").status_code == 200, timeout=30, interval=0.2)
