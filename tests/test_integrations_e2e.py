"""Integrations end to end, every service running as a process (issue 15, R4.1, R4.2, R4.3, R9.1).

* Two integrations registered through the gateway: one with the fields e-mail, name and conversations and
  every event, one with no field and only ``message.created``. A customer with every kind of personal data
  writes in; staff answer and leave a private note. Each receiver gets its deliveries, each verified with the
  ``standardwebhooks`` package; the payloads carry exactly the allowed fields (never the phone, the birth
  date, the address; never a private note); a disallowed field cannot be registered (422 naming it).
* Every delivery that carried personal data is in the audit log as a share with the integration as recipient,
  and the person's sharing report lists the integration with its privacy-policy URL.
* The person asks for deletion through the contact channel; the DPO starts it; the integration that received
  the person's data gets ``subject.erased`` and the erasure completes only with the integrations service's
  confirmation.
"""

from __future__ import annotations

import re
import uuid

import pytest
from e2e_api import address, wait_for_audit
from e2e_mail import text_and_html, wait_for_mail
from e2e_messaging import Person
from e2e_webhooks import Receiver, webhook_receiver
from upgestao_kernel.testing import wait_for

pytest_plugins = ["e2e_messaging_fixtures"]

_CODE = re.compile(r"^\s*([0-9]{6})\s*$", re.MULTILINE)
POLICY_A = "https://crm.example.com/privacidade"
POLICY_B = "https://bi.example.com/privacy"
TIMEOUT = 30


@pytest.fixture(scope="module")
def receiver(api, admin_token):
    """The receiver; at the end every integration registered for it is disabled (the platform is shared: the
    modules after this one must not see their customers' data shared)."""
    with webhook_receiver() as running:
        yield running
        for item in _ok(api.get("/v1/integrations", admin_token, params={"limit": 100}))["items"]:
            if item["url"].startswith(running.url("/")) and item["status"] == "enabled":
                _ok(api.patch(f"/v1/integrations/{item['id']}", admin_token, json={"status": "disabled"}))


def _ok(response, status: int = 200) -> dict:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    return response.json()


def register(api, token: str, receiver: Receiver, path: str, **over) -> dict:
    body = {"name": f"Ferramenta {uuid.uuid4().hex[:6]}", "url": receiver.url(path), "events": ["*"],
            "fields": ["email", "name", "conversations"], "privacy_policy_url": POLICY_A, **over}
    created = _ok(api.post("/v1/integrations", token, json=body), 201)
    assert created["secret"].startswith("whsec_") and created["status"] == "enabled"
    assert "secret" not in _ok(api.get(f"/v1/integrations/{created['id']}", token))  # shown once
    return created


def customer_with_everything(api, token: str) -> tuple[str, dict]:
    tag = uuid.uuid4().hex[:8]
    person = {"full_name": f"Joana Prado {tag}", "email": f"joana.{tag}@example.com.br",
              "phone": f"+55119{int(tag, 16) % 10**8:08d}", "birth_date": "1979-03-08",
              "address": address(street=f"Rua das Acácias {tag}")}
    return _ok(api.post("/v1/customers", token, json=person), 201)["id"], person


def test_deliveries_carry_only_the_allowed_fields_signed_and_audited_as_shares(api, admin_token, dpo, receiver):
    a_path, b_path = f"/a/{uuid.uuid4().hex}", f"/b/{uuid.uuid4().hex}"
    # a field the policy never lets go, named in the refusal; nothing registered
    refused = api.post("/v1/integrations", admin_token, json={
        "name": "Intrusa", "url": receiver.url("/never"), "events": ["*"], "fields": ["email", "birth_date"],
        "privacy_policy_url": POLICY_A})
    assert refused.status_code == 422, refused.text
    assert "birth_date" in refused.text and any(e.get("field", "").startswith("fields")
                                               for e in refused.json().get("errors", []))
    a = register(api, admin_token, receiver, a_path)
    b = register(api, admin_token, receiver, b_path, events=["message.created"], fields=[],
                 privacy_policy_url=POLICY_B)

    customer_id, person = customer_with_everything(api, admin_token)
    admin = Person("", "admin", admin_token)
    conversation = _ok(api.post("/v1/conversations", admin.token, json={"customer_id": customer_id,
                                                                        "channel": "whatsapp"}), 201)
    said = f"Meu pedido {uuid.uuid4().hex[:6]} chegou quebrado"
    note = f"Nota interna {uuid.uuid4().hex[:6]}: cliente difícil"
    incoming = _ok(api.post(f"/v1/conversations/{conversation['id']}/messages", admin.token,
                            json={"body": said, "direction": "incoming"}), 201)
    _ok(api.post(f"/v1/conversations/{conversation['id']}/messages", admin.token,
                 json={"body": note, "direction": "outgoing", "private": True}), 201)

    got_a = receiver.wait(a_path, lambda ds: ds if {"conversation.created", "message.created"}
                          <= {d.type for d in ds} else None, TIMEOUT)
    got_b = receiver.wait(b_path, lambda ds: ds if any(d.type == "message.created" for d in ds) else None, TIMEOUT)
    for delivery in got_a:
        assert delivery.verifies_with(a["secret"]), delivery.headers
        assert not delivery.verifies_with(b["secret"])
    for delivery in got_b:
        assert delivery.verifies_with(b["secret"])
    message_a = next(d for d in got_a if d.type == "message.created")
    assert message_a.data["message_id"] == incoming["id"] and message_a.data["body"] == said
    assert message_a.data["customer"]["email"] == person["email"]
    assert message_a.data["customer"]["name"] == person["full_name"]
    assert {d.type for d in got_b} == {"message.created"}  # subscribed to that only
    message_b = got_b[0]
    assert message_b.data["message_id"] == incoming["id"] and message_b.data["customer_id"] == customer_id
    # what was not allowed is nowhere in any byte either receiver got; a private note never leaves
    for delivery in [*got_a, *got_b]:
        text = delivery.body.decode()
        for never in (person["phone"], person["birth_date"], person["address"]["street"], note):
            assert never not in text, (delivery.type, never)
        assert len(delivery.body) <= 20_000
    for value in (said, person["email"], person["full_name"]):
        assert value not in message_b.body.decode()

    # the attempts are listed: as succeeded once the dispatcher has recorded the receiver's answer, which it does
    # after the receiver has the delivery (the receiver may be read first, seen on a loaded machine)
    def succeeded() -> dict | None:
        listed = _ok(api.get(f"/v1/integrations/{a['id']}/messages", admin_token, params={"status": "succeeded"}))
        return listed if {m["event_type"] for m in listed["items"]} >= {"conversation.created",
                                                                         "message.created"} else None

    listed = wait_for(succeeded, timeout=TIMEOUT, interval=0.3)
    one = next(m for m in listed["items"] if m["event_type"] == "message.created")
    assert one["id"] == message_a.webhook_id and one["attempts"][-1]["status_code"] == 204, one

    # every delivery that carried personal data is a share with the integration as recipient
    recipient = f"integration:{a['id']}"
    wait_for_audit(api, dpo, {"action": "share", "subject_id": customer_id, "recipient": recipient},
                   what="the share of the customer's data with integration A")

    def reported() -> dict | None:
        summary = _ok(api.get(f"/v1/audit/subjects/{customer_id}/summary", dpo))
        shared = [e for e in summary["shared_with"] if e["recipient"] == recipient]
        return summary if any("body" in e["fields"] for e in shared) else None

    summary = wait_for(reported, timeout=TIMEOUT, interval=0.3)
    shares = [e for e in summary["shared_with"] if e["recipient"] == recipient]
    assert {e["privacy_policy_url"] for e in shares} == {POLICY_A}
    assert {f for e in shares for f in e["fields"]} >= {"email", "full_name", "body"}
    assert "phone" not in {f for e in shares for f in e["fields"]}


def test_an_erasure_reaches_every_integration_that_received_the_persons_data(platform, api, admin_token, dpo,
                                                                               receiver):
    path = f"/erasure/{uuid.uuid4().hex}"
    integration = register(api, admin_token, receiver, path, events=["message.created"])
    customer_id, person = customer_with_everything(api, admin_token)
    conversation = _ok(api.post("/v1/conversations", admin_token, json={"customer_id": customer_id,
                                                                       "channel": "email"}), 201)
    _ok(api.post(f"/v1/conversations/{conversation['id']}/messages", admin_token,
                 json={"body": "Quero apagar meus dados", "direction": "incoming"}), 201)
    receiver.wait(path, lambda ds: any(d.type == "message.created" for d in ds), TIMEOUT)

    # the person asks for deletion through the contact channel, proves the address, the DPO starts it
    filed = _ok(api.post("/v1/privacy/contact", json={"email": person["email"], "type": "deletion"}), 202)
    code: list[str] = []

    def arrived() -> bool:
        found = [m.group(1) for _, message in wait_for_mail(platform, person["email"])
                 if (m := _CODE.search(text_and_html(message)[0]))]
        code[:] = found
        return bool(found)

    wait_for(arrived, timeout=TIMEOUT, interval=0.2)
    _ok(api.post(f"/v1/privacy/contact/{filed['id']}/verify", json={"code": code[-1]}))
    _ok(api.post(f"/v1/privacy/requests/{filed['id']}/start", dpo))

    erased = receiver.wait(path, lambda ds: [d for d in ds if d.type == "subject.erased"] or None, TIMEOUT)
    assert erased[0].verifies_with(integration["secret"])
    assert erased[0].data["subject_id"] == customer_id
    assert person["email"] not in erased[0].body.decode()

    def done() -> dict | None:
        body = _ok(api.get(f"/v1/privacy/requests/{filed['id']}", dpo))
        assert body["state"] not in ("error", "denied", "canceled"), body
        return body if body["state"] == "completed" else None

    wait_for(done, timeout=TIMEOUT, interval=0.3)
    progress = _ok(api.get(f"/v1/privacy/requests/{filed['id']}/erasure", dpo))
    assert progress["participants"].get("integrations") == "confirmed", progress
