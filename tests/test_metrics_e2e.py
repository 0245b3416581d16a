"""Metrics on every process (issue 18), on the session's platform: each of the twelve ``/metrics`` endpoints
(six ``run``, six relays) scraped and parsed with ``prometheus_client.parser``; the generic series exist and
move when their cause happens (a request, an RPC, a published event, a consumed message); no label value
looks like personal data or an id."""

from __future__ import annotations

import re
import uuid

import pytest
import requests
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from e2e_integrations import integration_request_json
from prometheus_client.parser import text_string_to_metric_families
from upgestao_kernel.testing import wait_for

pytestmark = pytest.mark.e2e

SERVICES = ("identity", "messaging", "privacy", "notifier", "integrations", "gateway")
# services whose run process has reliable handlers or a batch consumer (the notifier's, identity's ...)
CONSUMING = ("identity", "messaging", "privacy", "notifier", "integrations")


def scrape(url: str) -> list:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, f"{url}: {response.status_code}"
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return [sample for family in text_string_to_metric_families(response.text) for sample in family.samples]


def value(samples: list, name: str, **labels) -> float:
    """The sum of the samples of ``name`` with these labels (0 when none)."""
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def has(samples: list, name: str, **labels) -> bool:
    return any(s.name == name and all(s.labels.get(k) == v for k, v in labels.items()) for s in samples)


@pytest.fixture(scope="module")
def endpoints(platform) -> dict[str, str]:
    urls = {name: platform.metrics_url(name) for name in platform.children if name != "mail-sink"}
    assert sorted(urls) == sorted([*SERVICES, *(f"{s}-relay" for s in SERVICES)])
    assert all(urls.values()), urls
    return urls


@pytest.fixture(scope="module")
def admin(platform) -> str:
    return Api(platform.url).admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]


def scrape_all(endpoints: dict[str, str]) -> dict[str, list]:
    return {name: scrape(url) for name, url in endpoints.items()}


def test_every_process_serves_its_series_off_the_public_port(platform, endpoints):
    public_port = platform.url.rsplit(":", 1)[1]
    assert not any(url.split("/")[2].endswith(f":{public_port}") for url in endpoints.values())
    scraped = scrape_all(endpoints)
    for name, samples in scraped.items():
        assert has(samples, "process_cpu_seconds_total"), name  # prometheus_client's process collector
        assert has(samples, "python_info"), name
    for service in SERVICES:
        run, relay = scraped[service], scraped[f"{service}-relay"]
        assert has(run, "upgestao_outbox_depth", service=service), service
        assert has(run, "upgestao_outbox_oldest_unsent_age_seconds", service=service), service
        assert value(run, "upgestao_outbox_oldest_unsent_age_seconds", service=service) >= 0
        if service != "gateway":  # the gateway's readiness asks every other service's health over RPC
            assert has(run, "upgestao_rpc_requests_total", service=service, method="health", outcome="ok",
                       error=""), service
            assert has(run, "upgestao_rpc_request_duration_seconds_bucket", service=service, method="health")
        assert has(relay, "upgestao_relay_published_total", service=service), service
        assert has(relay, "upgestao_relay_publish_failures_total", service=service), service
        assert has(relay, "upgestao_queue_messages", queue="upgestao.unrouted"), service
    for service in CONSUMING:
        assert has(scraped[service], "upgestao_events_handled_total", service=service, outcome="parked"), service
    # every parking queue of a service's consumers, in its relay
    assert has(scraped["privacy-relay"], "upgestao_queue_messages", queue="privacy.audit-ingest.parked")
    assert has(scraped["notifier-relay"], "upgestao_queue_messages", queue="notifier.on_identity_event.parked")
    assert has(scraped["gateway"], "upgestao_http_requests_total", route="/readyz", method="GET", status="200",
               problem="")
    assert has(scraped["gateway"], "upgestao_websocket_connections")
    for name in ("upgestao_bcrypt_queue_depth", "upgestao_bcrypt_refused_total", "upgestao_login_lockouts_total"):
        assert has(scraped["identity"], name), name
    for outcome in ("ok", "invalid", "locked", "throttled"):
        assert has(scraped["identity"], "upgestao_login_attempts_total", outcome=outcome)


def test_the_series_move_when_their_cause_happens(platform, endpoints, admin):
    api = Api(platform.url)
    before = scrape_all(endpoints)
    created = api.post("/v1/customers", admin, json={
        "full_name": "Cliente Métricas", "email": f"metricas.{uuid.uuid4().hex[:8]}@example.com.br"})
    assert created.status_code == 201, created.text
    missing = api.get(f"/v1/nowhere/{uuid.uuid4()}")
    assert missing.status_code == 404
    # nobody's address: no account's budget spent (the address's allows 1,000 failures in the session)
    wrong = api.login(f"ninguem.{uuid.uuid4().hex[:8]}@example.com.br", "not the password at all 1234")
    assert wrong.status_code == 401
    # an integration registered: its event handled by privacy's reliable handler (never throttled)
    registered = api.post("/v1/integrations", admin, json=integration_request_json("POST", "/v1/integrations"))
    assert registered.status_code == 201, registered.text

    route = {"route": "/v1/customers", "method": "POST"}
    checks = {
        "the request, by its route": ("gateway", "upgestao_http_requests_total",
                                      {**route, "status": "201", "problem": ""}),
        "its time": ("gateway", "upgestao_http_request_duration_seconds_count", route),
        "a path no route has, as one value": ("gateway", "upgestao_http_requests_total",
                                              {"route": "unmatched", "status": "404", "problem": "not-found"}),
        "identity's RPC": ("identity", "upgestao_rpc_requests_total",
                           {"method": "create_customer", "outcome": "ok", "error": ""}),
        "the refused login": ("identity", "upgestao_login_attempts_total", {"outcome": "invalid"}),
        "its answer's problem": ("gateway", "upgestao_http_requests_total",
                                 {"route": "/v1/auth/login", "status": "401", "problem": "invalid-credentials"}),
        "identity's relay publishing the event and the audit record": (
            "identity-relay", "upgestao_relay_published_total", {"service": "identity"}),
        "privacy's reliable handler taking the integration's event": (
            "privacy", "upgestao_events_handled_total",
            {"service": "privacy", "consumer": "third_party_on_integration", "outcome": "handled"}),
        "privacy's audit ingest consuming them": (
            "privacy", "upgestao_events_handled_total",
            {"service": "privacy", "consumer": "audit.ingest", "outcome": "handled"}),
    }
    latest: dict[str, list] = {}

    def moved() -> bool:
        latest.update(scrape_all({p: endpoints[p] for p in {c[0] for c in checks.values()}}))
        return all(value(latest[p], n, **labels) > value(before[p], n, **labels) for p, n, labels in checks.values())

    try:
        wait_for(moved, timeout=20, interval=0.3)
    except Exception:
        stuck = [what for what, (p, n, labels) in checks.items()
                 if value(latest[p], n, **labels) <= value(before[p], n, **labels)]
        pytest.fail(f"did not move: {stuck}")


# a label value that could be personal data or an id
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
PHONE = re.compile(r"\(?\+?\d{2,3}\)?[\s.-]?\d{4,5}[\s.-]?\d{4}")
DIGITS = re.compile(r"\d{6,}")
ID_SEGMENT = re.compile(r"^(?:\d+|[0-9a-fA-F]{16,}|[A-Za-z0-9_-]{22,})$")


def suspicious(value: str) -> str | None:
    for what, pattern in (("an e-mail", EMAIL), ("a UUID", UUID), ("a phone number", PHONE),
                          ("a run of 6 digits", DIGITS)):
        if pattern.search(value):
            return what
    if "/" in value and any(ID_SEGMENT.match(segment) for segment in value.split("/") if segment):
        return "a path with an id"
    return None


def test_no_label_value_is_personal_data_or_an_id(platform, endpoints, admin):
    api = Api(platform.url)
    user_id = str(uuid.uuid4())
    api.get(f"/v1/users/{user_id}", admin)  # a path with an id: its route's rule is the label, not the path
    api.get(f"/v1/customers/{user_id}/nothing-here", admin)
    scraped = scrape_all(endpoints)
    assert has(scraped["gateway"], "upgestao_http_requests_total", route="/v1/users/<uuid:user_id>")
    found = []
    for process, samples in scraped.items():
        for s in samples:
            for label, text in s.labels.items():
                what = suspicious(text)
                if what:
                    found.append(f"{process}: {s.name}{{{label}={text!r}}}: {what}")
    assert not found, "\n".join(found)
    assert suspicious("ana@example.com") and suspicious("/v1/users/" + user_id) and suspicious("(11) 98765-4321")
    assert suspicious("/v1/items/12") and not suspicious("/v1/users/<uuid:user_id>")
