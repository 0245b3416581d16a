"""The domain series of privacy, the notifier and integrations (issue 18; R5.2, R6.1, D3, R4.2) on the session's
platform, scraped from each ``run`` process's ``/metrics`` and parsed with ``prometheus_client.parser``: each
exists and moves when its cause happens.

* a person files a data subject request: requests open +1, the nearest due date within 15 days; cancelled: -1;
* the DPO records an incident: incidents open +1, the nearest notice deadline within its 3 business days;
  confirmed: -1, and its notice to the customer affected is an e-mail: an attempt sent, a delivery sent;
* the audited calls above: audit records ingested and the tree's size grow, ingest lags observed, a newer
  checkpoint signed (every 10 s while records arrive);
* a customer created while an integration listens on a local receiver: a webhook attempt succeeded, a message
  succeeded.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from e2e_api import staff_payload
from e2e_webhooks import webhook_receiver
from prometheus_client.parser import text_string_to_metric_families
from upgestao_kernel.testing import wait_for

pytestmark = pytest.mark.e2e
pytest_plugins = ["e2e_messaging_fixtures"]

PROCESSES = ("privacy", "notifier", "integrations")
WAIT_S = 30  # the slowest cause: a checkpoint, signed every 10 s once records arrived


def scrape(url: str) -> list:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, f"{url}: {response.status_code}"
    return [sample for family in text_string_to_metric_families(response.text) for sample in family.samples]


def value(samples: list, name: str, **labels) -> float | None:
    """The sum of the samples of ``name`` with these labels; ``None`` when there is none."""
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(found) if found else None


def _ok(response, status: int = 200) -> dict:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    return response.json()


@pytest.fixture(scope="module")
def endpoints(platform) -> dict[str, str]:
    urls = {name: platform.metrics_url(name) for name in PROCESSES}
    assert all(urls.values()), urls
    return urls


def scrape_all(endpoints: dict[str, str]) -> dict[str, list]:
    return {name: scrape(url) for name, url in endpoints.items()}


def test_every_domain_series_is_exported(endpoints):
    scraped = scrape_all(endpoints)
    privacy = scraped["privacy"]
    for name in ("upgestao_privacy_requests_open", "upgestao_privacy_requests_overdue",
                 "upgestao_privacy_incidents_open", "upgestao_audit_records_ingested_total",
                 "upgestao_audit_ingest_lag_seconds_count", "upgestao_audit_tree_size"):
        assert value(privacy, name) is not None, name
    for state in ("queued", "sending", "soft_failed", "sent", "hard_failed", "suppressed"):
        assert value(scraped["notifier"], "upgestao_email_deliveries", state=state) is not None, state
    for outcome in ("sent", "soft_failed", "hard_failed"):
        assert value(scraped["notifier"], "upgestao_email_attempts_total", outcome=outcome) is not None, outcome
    for state in ("pending", "delivering", "failed", "succeeded", "aborted", "canceled"):
        assert value(scraped["integrations"], "upgestao_webhook_messages", state=state) is not None, state
    for outcome in ("succeeded", "failed", "aborted", "timeout", "refused", "error"):
        assert value(scraped["integrations"], "upgestao_webhook_attempts_total", outcome=outcome) is not None


def test_the_domain_series_move_when_their_cause_happens(endpoints, api, admin_token, dpo):
    with webhook_receiver() as receiver:
        path = f"/metrics/{uuid.uuid4().hex}"
        integration = _ok(api.post("/v1/integrations", admin_token, json={
            "name": f"Métricas {uuid.uuid4().hex[:6]}", "url": receiver.url(path), "events": ["customer.created"],
            "fields": ["email", "name"], "privacy_policy_url": "https://crm.example.com/privacidade"}), 201)
        try:
            _moves(endpoints, api, admin_token, dpo, receiver, path)
        finally:  # the platform is shared: no later module's customers go to this receiver
            _ok(api.patch(f"/v1/integrations/{integration['id']}", admin_token, json={"status": "disabled"}))


def _moves(endpoints, api, admin_token, dpo, receiver, path) -> None:
    before = scrape_all(endpoints)
    started = datetime.now(UTC)
    staff = staff_payload()
    _ok(api.post("/v1/users", admin_token, json=staff), 201)
    person = api.tokens(staff["email"], staff["password"])["access_token"]
    request = _ok(api.post("/v1/privacy/requests", person, json={"type": "access"}), 201)
    customer = _ok(api.post("/v1/customers", admin_token, json={
        "full_name": "Cliente Métricas", "email": f"metricas.{uuid.uuid4().hex[:8]}@example.com.br"}), 201)
    incident = _ok(api.post("/v1/privacy/incidents", dpo, json={
        "nature_of_data": ["E-mail addresses"], "categories": ["contact"],
        "affected": {"kind": "ids", "ids": [customer["id"]]}, "people_affected": "One customer",
        "technical_measures": "Encrypted at rest", "risks": "Phishing", "measures_taken": "Link revoked",
        "what_to_do": ["Ignore e-mails asking for codes"], "dpo_contact": "dpo@upgestao.example",
        "occurred_at": (started - timedelta(hours=2)).isoformat(),
        "detected_at": (started - timedelta(hours=1)).isoformat()}), 201)
    deadline = datetime.fromisoformat(incident["deadline"]["due_at"])

    # the read models move in the command's own transaction: seen at the next scrape
    privacy = scrape(endpoints["privacy"])
    opened = {n: value(privacy, n) for n in ("upgestao_privacy_requests_open", "upgestao_privacy_incidents_open")}
    # (an earlier module's request answered in the background meanwhile could only lower the requests' count)
    assert opened["upgestao_privacy_requests_open"] > value(before["privacy"], "upgestao_privacy_requests_open")
    assert opened["upgestao_privacy_incidents_open"] == value(before["privacy"], "upgestao_privacy_incidents_open") + 1
    due_in = value(privacy, "upgestao_privacy_request_nearest_due_seconds")
    assert due_in is not None and due_in <= 15 * 86400  # ours is due in 15 days; an older one may be nearer
    deadline_in = value(privacy, "upgestao_privacy_incident_nearest_deadline_seconds")
    assert deadline_in is not None and deadline_in <= (deadline - started).total_seconds()
    # answered: both leave the open counts; the confirmed incident's notice is an e-mail to the customer (a
    # password reset would do too, but the session's other tests may have spent this address's reset budget)
    _ok(api.post(f"/v1/privacy/requests/{request['id']}/cancel", person, json={}))
    _ok(api.post(f"/v1/privacy/incidents/{incident['id']}/confirm", dpo, json={}))
    privacy = scrape(endpoints["privacy"])
    assert value(privacy, "upgestao_privacy_requests_open") < opened["upgestao_privacy_requests_open"]
    assert value(privacy, "upgestao_privacy_incidents_open") == opened["upgestao_privacy_incidents_open"] - 1
    receiver.wait(path, lambda got: got, timeout=WAIT_S)

    def grew(process: str, name: str, **labels) -> bool:
        return (value(latest[process], name, **labels) or 0) > (value(before[process], name, **labels) or 0)

    checks = {
        "audit records ingested": lambda: grew("privacy", "upgestao_audit_records_ingested_total"),
        "their lag observed": lambda: grew("privacy", "upgestao_audit_ingest_lag_seconds_count"),
        "the tree grown": lambda: grew("privacy", "upgestao_audit_tree_size"),
        "a newer checkpoint": lambda: grew("privacy", "upgestao_audit_last_checkpoint_timestamp_seconds"),
        "the notice's e-mail attempt": lambda: grew("notifier", "upgestao_email_attempts_total", outcome="sent"),
        "its delivery": lambda: grew("notifier", "upgestao_email_deliveries", state="sent"),
        "the webhook's attempt": lambda: grew("integrations", "upgestao_webhook_attempts_total",
                                              outcome="succeeded"),
        "its message": lambda: grew("integrations", "upgestao_webhook_messages", state="succeeded"),
    }
    latest: dict[str, list] = {}

    def moved() -> bool:
        latest.update(scrape_all(endpoints))
        return all(check() for check in checks.values())

    try:
        wait_for(moved, timeout=WAIT_S, interval=0.5)
    except Exception:
        pytest.fail(f"did not move: {[what for what, check in checks.items() if not check()]}")
    assert value(latest["privacy"], "upgestao_audit_last_checkpoint_timestamp_seconds") >= started.timestamp() - 1
