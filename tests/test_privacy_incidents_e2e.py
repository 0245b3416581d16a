"""The breach procedure and the data map end to end, every service running as a process (issue 14, R6.1, R1.1).

* A DPO records an incident with every LGPD art. 48 §1 item and confirms it: each of 100 customers (created
  through the API) receives one individual e-mail in the SMTP sink, in plain language, and the incident shows
  the notice's progress per recipient from the notifier's delivery records; a second confirmation sends
  nothing again.
* Attacks: nobody but the DPO records, reads, lists or confirms an incident (403, audited as denied); there is
  no way to delete one; a bad body is a 422 naming the field.
* ``GET /v1/privacy/data-map`` covers every field identity, messaging and privacy declare, each with its
  category, purpose, legal basis, retention and whether it may be shared.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, Api, wait_for_audit
from e2e_identity import create_dpo
from e2e_mail import MAIL_TIMEOUT_S, mail_dir, read_mail, recipients_of, text_and_html
from upgestao_kernel.testing import wait_for

pytestmark = pytest.mark.e2e

PEOPLE = 100
RISK = "Someone outside the company may have read your name and e-mail address."


@pytest.fixture(scope="module")
def api(platform):
    return Api(platform.url)


@pytest.fixture(scope="module")
def admin(api):
    return api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]


@pytest.fixture(scope="module")
def dpo(platform, api, admin):
    return create_dpo(platform, api, admin)[1]["access_token"]


def incident_body(**over) -> dict:
    now = datetime.now(UTC)
    body = {
        "nature_of_data": ["Full names", "E-mail addresses"],
        "categories": ["identification", "contact"],
        "affected": {"kind": "every_user"},
        "people_affected": "Customers who wrote to us through the website form in November.",
        "technical_measures": "Every personal field is encrypted with a key of its own per person.",
        "risks": RISK,
        "delay_reasons": None,
        "measures_taken": "We closed the exposed export and rotated every credential it used.",
        "what_to_do": ["Be wary of e-mails asking for your password", "Never share the codes we send you"],
        "dpo_contact": "dpo@upgestao.example",
        "occurred_at": (now - timedelta(days=1)).isoformat(),
        "detected_at": (now - timedelta(hours=1)).isoformat(),
    }
    body.update(over)
    return body


def create_customers(api: Api, token: str, count: int) -> dict[str, str]:
    """``count`` customers with distinct addresses of this test's own, made in parallel: id -> address."""
    tag = uuid.uuid4().hex[:8]

    def create(n: int) -> tuple[str, str]:
        address = f"brecha.{tag}.{n}@example.com.br"
        response = api.post("/v1/customers", token, json={"full_name": f"Cliente Brecha {n}", "email": address})
        assert response.status_code == 201, response.text
        return response.json()["id"], address

    with ThreadPoolExecutor(max_workers=16) as pool:
        return dict(pool.map(create, range(count)))


class Sink:
    """The sink's messages for a set of addresses, each file read once however often it is polled."""

    def __init__(self, platform, addresses) -> None:
        self.folder = mail_dir(platform)
        self.wanted = {a.lower() for a in addresses}
        self.seen: dict = {}
        self.by_address: dict[str, list] = {}

    def poll(self) -> dict[str, list]:
        if self.folder.is_dir():
            for path in sorted(self.folder.glob("*.eml")):
                if path in self.seen:
                    continue
                try:
                    message = read_mail(path)
                    to = recipients_of(message)
                except (OSError, ValueError, LookupError):
                    continue  # still being written
                self.seen[path] = True
                for address in to & self.wanted:
                    self.by_address.setdefault(address, []).append(message)
        return self.by_address

    def wait_for_all(self, timeout: float) -> dict[str, list]:
        deadline = time.monotonic() + timeout
        while len(self.poll()) < len(self.wanted):
            if time.monotonic() >= deadline:
                raise AssertionError(f"{len(self.by_address)} of {len(self.wanted)} people got the notice "
                                     f"within {timeout}s")
            time.sleep(0.2)
        return self.by_address


def test_a_breach_notice_reaches_100_people_once_each_with_progress_per_recipient(platform, api, admin, dpo):
    customers = create_customers(api, admin, PEOPLE)
    sink = Sink(platform, customers.values())

    recorded = api.post("/v1/privacy/incidents", dpo,
                        json=incident_body(affected={"kind": "ids", "ids": list(customers)}))
    assert recorded.status_code == 201, recorded.text
    incident = recorded.json()
    assert incident["state"] == "draft" and incident["risks"] == RISK
    assert incident["deadline"]["status"] == "on_time" and incident["deadline"]["business_days_left"] >= 1
    assert incident["affected"] == {"kind": "ids", "channel": None, "ids_count": PEOPLE}
    listed = api.get("/v1/privacy/incidents", dpo, params={"limit": 200}).json()["items"]
    mine = [i for i in listed if i["id"] == incident["id"]]
    assert mine and "risks" not in mine[0]  # the list holds no text

    confirmed = api.post(f"/v1/privacy/incidents/{incident['id']}/confirm", dpo, json={})
    assert confirmed.status_code == 200, confirmed.text
    confirmed = confirmed.json()
    assert (confirmed["state"], confirmed["affected_count"]) == ("confirmed", PEOPLE)
    assert confirmed["deadline"]["status"] == "met" and confirmed["campaign_id"]

    mail = sink.wait_for_all(MAIL_TIMEOUT_S + 30)
    assert all(len(messages) == 1 for messages in mail.values()), "one individual e-mail per person"
    sample = next(iter(mail.values()))[0]
    assert len(recipients_of(sample)) == 1 and "List-Unsubscribe" not in sample  # security mail, one person
    text, html = text_and_html(sample)
    assert incident["id"] in text and RISK in text and "dpo@upgestao.example" in text
    assert "Be wary of e-mails asking for your password" in html

    def all_sent() -> dict | None:
        shown = api.get(f"/v1/privacy/incidents/{incident['id']}", dpo).json()
        return shown if shown["progress"]["counts"]["sent"] == PEOPLE else None

    shown = wait_for(all_sent, timeout=MAIL_TIMEOUT_S, interval=0.3)
    progress = shown["progress"]
    assert progress["campaign_id"] == confirmed["campaign_id"]
    assert (progress["recipients_total"], progress["deliveries_total"], progress["not_yet_queued"]) == (PEOPLE,
                                                                                                        PEOPLE, 0)
    assert {r["recipient_id"] for r in progress["recipients"]} == set(customers)
    assert all(r["status"] == "sent" and r["attempts"] == 1 for r in progress["recipients"])
    assert not any(address in str(progress) for address in customers.values()), "no address in the progress"

    # confirming twice sends nothing twice
    again = api.post(f"/v1/privacy/incidents/{incident['id']}/confirm", dpo, json={})
    assert again.status_code == 409, again.text
    after = api.get(f"/v1/privacy/incidents/{incident['id']}", dpo).json()["progress"]
    assert after["deliveries_total"] == PEOPLE
    assert all(len(messages) == 1 for messages in sink.poll().values())

    wait_for_audit(api, dpo, {"service": "privacy", "action": "update", "resource_type": "incident",
                              "resource_id": incident["id"], "fields": ["state"]}, what="the confirmation audited",
                   service="privacy", action="update", resource_type="incident")


def test_nobody_but_the_dpo_handles_incidents_and_none_is_ever_deleted(platform, api, admin, dpo):
    recorded = api.post("/v1/privacy/incidents", dpo, json=incident_body(
        affected={"kind": "ids", "ids": [str(uuid.uuid4())]}))
    assert recorded.status_code == 201, recorded.text
    incident_id = recorded.json()["id"]
    attendant = api.create_staff(admin, "attendant")[1]["access_token"]
    for method, path, body in (("post", "/v1/privacy/incidents", incident_body()),
                               ("get", "/v1/privacy/incidents", None),
                               ("get", f"/v1/privacy/incidents/{incident_id}", None),
                               ("post", f"/v1/privacy/incidents/{incident_id}/confirm", {})):
        kwargs = {"json": body} if body is not None else {}
        for token in (admin, attendant):  # an admin holds no compliance permission
            response = getattr(api, method)(path, token, **kwargs)
            assert response.status_code == 403, f"{method} {path}: {response.status_code} {response.text}"
        assert api.request(method.upper(), path, None, **kwargs).status_code == 401
    assert api.get(f"/v1/privacy/incidents/{incident_id}", dpo).json()["state"] == "draft"  # not confirmed

    deleted = api.delete(f"/v1/privacy/incidents/{incident_id}", dpo)
    assert deleted.status_code in (404, 405), deleted.text
    assert api.get(f"/v1/privacy/incidents/{incident_id}", dpo).status_code == 200

    missing = incident_body()
    del missing["risks"]
    bad = api.post("/v1/privacy/incidents", dpo, json=missing)
    assert bad.status_code == 422 and [e["field"] for e in bad.json()["errors"]] == ["risks"], bad.text
    future = api.post("/v1/privacy/incidents", dpo, json=incident_body(
        detected_at=(datetime.now(UTC) + timedelta(days=1)).isoformat()))
    assert future.status_code == 422 and future.json()["errors"][0]["field"] == "detected_at", future.text
    assert api.get(f"/v1/privacy/incidents/{uuid.uuid4()}", dpo).status_code == 404


def test_the_data_map_covers_every_declared_field(platform, api, admin, dpo):
    from upgestao_messaging.domain.datamap import data_map_document as messaging_map
    from upgestao_privacy.domain.datamap import own_items

    response = api.get("/v1/privacy/data-map", dpo)
    assert response.status_code == 200, response.text
    data_map = response.json()
    assert data_map["complete"] is True, data_map["services"]
    assert {s["service"]: s["status"] for s in data_map["services"]} == {
        "identity": "available", "messaging": "available", "privacy": "available"}
    got = {(i["service"], i["resource"], i["field"]) for i in data_map["items"]}
    identity_items = api.get("/v1/data-map", dpo).json()["items"]
    declared = {("identity", i["resource"], i["field"]) for i in identity_items}
    declared |= {("messaging", i["resource"], i["field"]) for i in messaging_map()}
    declared |= {("privacy", i["resource"], i["field"]) for i in own_items()}
    assert declared <= got, f"not in the map: {sorted(declared - got)}"
    for item in data_map["items"]:
        assert item["category"] and item["purpose"] and item["legal_basis"] and item["retention"], item
        assert isinstance(item["shareable_with_integrations"], bool)
    shareable = {(i["resource"], i["field"]) for i in identity_items if i["shareable_with_integrations"]}
    assert shareable == {(i["resource"], i["field"]) for i in data_map["items"]
                         if i["service"] == "identity" and i["shareable_with_integrations"]}
    assert not any(i["shareable_with_integrations"] for i in data_map["items"] if i["service"] == "privacy")
