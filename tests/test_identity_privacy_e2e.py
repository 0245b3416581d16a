"""What the platform writes, publishes and logs, read straight from every
service's database, the broker and the log files (R1.2, R3.1, R5.3, D3): no
personal value of a scenario driven through the gateway in clear (in any form:
JSON-escaped, case-folded, reformatted, see ``upgestao_kernel.leaks``) in any
event, outbox row, stored audit record, broker message or log line, and an
audit record for every personal-data access.

The scenario covers identity's routes and privacy's (issue 14): a contact-channel
request's address and message (verified with the e-mailed code), a correction's new
value and reason (approved: identity applies it), an incident whose texts name a
person (confirmed: the breach notice mailed), a consent, a request denied with a
reason naming someone."""

from __future__ import annotations

import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, Api, staff_payload, wait_for_audit
from e2e_identity import create_dpo
from e2e_mail import mail_to, text_and_html
from kombu import Connection, Exchange, Queue
from PIL import Image
from upgestao_kernel.leaks import LeakScanner, log_texts, table_texts
from upgestao_kernel.testing import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def tap(platform):
    """A queue of our own bound to the audit exchange and identity's events exchange."""
    name = f"e2e-tap-{uuid.uuid4().hex[:8]}"
    with Connection(platform.amqp_uri) as conn:
        queue = Queue(name, exchange=Exchange("audit", type="topic", passive=True), routing_key="#",
                      durable=False, channel=conn.channel())
        queue.declare()
        queue.bind_to(exchange="identity.events", routing_key="#")
        queue.bind_to(exchange="privacy.events", routing_key="#")
        messages: list[dict] = []

        def drain() -> list[dict]:
            while True:
                message = queue.get(no_ack=True)
                if message is None:
                    return messages
                body = message.body.decode() if isinstance(message.body, bytes) else str(message.body)
                messages.append({"body": body, "headers": message.headers})

        yield drain
        queue.delete()


def _table_texts(url: str, table: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(url)
    try:
        if not sa.inspect(engine).has_table(table):
            return []
        return [(f"{url.rsplit('/', 1)[-1]}.{where}", text) for where, text in table_texts(engine, table)]
    finally:
        engine.dispose()


def _audit_rows(url: str) -> list[dict]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT body FROM outbox WHERE exchange = 'audit'")).all()
    finally:
        engine.dispose()
    return [r.body if isinstance(r.body, dict) else json.loads(r.body) for r in rows]


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 20, 30)).save(out, "PNG")
    return out.getvalue()


CODE = re.compile(r"^\s*([0-9]{6})\s*$", re.MULTILINE)


def _privacy_scenario(platform, api: Api, admin: str, token: str, user_id: str, customer_id: str) -> tuple[
        list[str], list[tuple[str, dict]], str]:
    """Privacy's routes driven with personal values: (the values, [(request id, the record it must leave)],
    the dpo's token)."""
    _, dpo_tokens = create_dpo(platform, api, admin)
    dpo = dpo_tokens["access_token"]
    dpo_id = api.get("/v1/me", dpo).json()["id"]
    tag = uuid.uuid4().hex[:6]
    contact_email = f"leocadia.figueiredo.{tag}@example.net"
    contact_message = f"Sou Leocádia Figueiredo Bastos ({tag}) e quero saber o que guardam de mim"
    new_title = f"Coordenadora de Ouvidoria Zenaide {tag}"
    correction_reason = f"Fui promovida pela diretora Gumercinda Paranhos ({tag})"
    people_affected = f"A cliente Wanderléia Bittencourt Sampaio ({tag}) e sua família"
    risks = f"Golpes por telefone contra Wanderléia Bittencourt ({tag})"
    deny_reason = f"Pedido duplicado: já atendido pelo colega Anastácio Vilela ({tag})"
    values = [contact_email, contact_message, new_title, correction_reason, people_affected, risks, deny_reason]
    expected: list[tuple[str, dict]] = []

    def call(method: str, path: str, who: str | None, status: int, record: dict | None, **kwargs):
        rid = f"e2e-privacy-{uuid.uuid4().hex[:12]}"
        response = api.request(method, path, who, headers={"X-Request-ID": rid}, **kwargs)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        if record is not None:
            expected.append((rid, {"service": "privacy", "outcome": "success", **record}))
        return response.json()

    # the contact channel: no account; the code e-mailed to the address, given back
    accepted = call("POST", "/v1/privacy/contact", None, 202,
                    {"action": "create", "resource_type": "privacy_request", "fields": ["type", "email", "message"]},
                    json={"email": contact_email, "type": "confirmation", "message": contact_message})
    codes = wait_for(lambda: [m.group(1) for _, message in mail_to(platform, contact_email)
                              if (m := CODE.search(text_and_html(message)[0]))], timeout=30)
    call("POST", f"/v1/privacy/contact/{accepted['id']}/verify", None, 200,
         {"action": "update", "resource_type": "privacy_request", "fields": ["state"]}, json={"code": codes[-1]})
    # a correction of a field the attendant may not edit, approved by the dpo (identity applies it)
    filed = call("POST", "/v1/privacy/corrections", token, 201,
                 {"action": "create", "resource_type": "correction", "subject_id": user_id, "actor_id": user_id,
                  "fields": ["job_title"]},
                 json={"changes": {"job_title": new_title}, "reason": correction_reason})
    call("POST", f"/v1/privacy/corrections/{filed['id']}/approve", dpo, 200,
         {"action": "update", "resource_type": "correction", "subject_id": user_id, "actor_id": dpo_id,
          "fields": ["job_title"]})
    expected.append((expected[-1][0], {"service": "identity", "action": "update", "resource_type": "user",
                                       "subject_id": user_id, "actor_id": dpo_id, "fields": ["job_title"],
                                       "outcome": "success"}))  # identity applied it as the dpo
    # a consent, and a request denied with a reason naming someone
    version = api.get("/v1/privacy/policies/current").json()["version"]
    call("PUT", "/v1/privacy/consents", token, 200,
         {"action": "update", "resource_type": "consent", "subject_id": user_id, "fields": ["analytics"]},
         json={"purposes": {"analytics": True, "personalisation": False}, "policy_version": version})
    request = call("POST", "/v1/privacy/requests", token, 201, None, json={"type": "sharing_info"})
    call("POST", f"/v1/privacy/requests/{request['id']}/deny", dpo, 200,
         {"action": "update", "resource_type": "privacy_request", "subject_id": user_id, "actor_id": dpo_id,
          "fields": ["state", "reason"]}, json={"reason": deny_reason})
    # an incident whose texts name a person, confirmed: the breach notice goes to the customer
    now = datetime.now(UTC)
    incident = call("POST", "/v1/privacy/incidents", dpo, 201,
                    {"action": "create", "resource_type": "incident", "actor_id": dpo_id,
                     "fields": ["people_affected", "risks"]},
                    json={"nature_of_data": ["Telefones"], "categories": ["contact"],
                          "affected": {"kind": "ids", "ids": [customer_id]}, "people_affected": people_affected,
                          "technical_measures": "Cifrado em repouso", "risks": risks,
                          "measures_taken": "Acesso revogado", "what_to_do": ["Desconfie de ligações"],
                          "dpo_contact": "dpo@upgestao.example", "occurred_at": (now - timedelta(hours=2)).isoformat(),
                          "detected_at": (now - timedelta(hours=1)).isoformat()})
    call("POST", f"/v1/privacy/incidents/{incident['id']}/confirm", dpo, 200,
         {"action": "update", "resource_type": "incident", "fields": ["state"]}, json={})
    return values, expected, dpo


def test_no_clear_personal_values_and_every_access_audited(platform, tap):
    api = Api(platform.url)
    admin = api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    payload = staff_payload("attendant", full_name="Heloísa Quintanilha Prado", gender="mulher cis")
    secret_values = [payload["full_name"], payload["email"], payload["phone"], payload["address"]["street"],
                     payload["address"]["postal_code"], payload["birth_date"], "mulher cis", PASSWORD]
    rid = {name: f"e2e-{name}-{uuid.uuid4().hex[:12]}" for name in (
        "create", "login", "login_failed", "me", "edit", "admin_read", "admin_list", "denied", "customer",
        "customer_read", "customer_search", "customer_edit", "photo_put", "photo_get")}

    def h(name: str) -> dict:
        return {"X-Request-ID": rid[name]}

    created = api.post("/v1/users", admin, json=payload, headers=h("create"))
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    secret_values.append(created.json()["phone"])
    assert api.post("/v1/auth/login", json={"email": payload["email"], "password": "wrong password 42"},
                    headers=h("login_failed")).status_code == 401
    login = api.post("/v1/auth/login", json={"email": payload["email"], "password": PASSWORD}, headers=h("login"))
    token = login.json()["access_token"]
    assert api.get("/v1/me", token, headers=h("me")).status_code == 200
    assert api.patch("/v1/me", token, json={"phone": "+55 31 98888-1234"}, headers=h("edit")).status_code == 200
    secret_values.append("+55 31 98888-1234")
    assert api.get(f"/v1/users/{user_id}", admin, headers=h("admin_read")).status_code == 200
    assert api.get("/v1/users?limit=100", admin, headers=h("admin_list")).status_code == 200
    assert api.get("/v1/users", token, headers=h("denied")).status_code == 403
    customer_email = f"ximena.{uuid.uuid4().hex[:6]}@example.org"
    customer = api.post("/v1/customers", token, headers=h("customer"),
                        json={"full_name": "Ximena Albuquerque Tavares", "email": customer_email,
                              "phone": "+55 48 99123-4567"})
    assert customer.status_code == 201, customer.text
    customer_id = customer.json()["id"]
    secret_values += ["Ximena Albuquerque Tavares", customer_email, "+55 48 99123-4567", "não declarado"]
    assert api.get(f"/v1/customers/{customer_id}", token, headers=h("customer_read")).status_code == 200
    found = api.post("/v1/customers/search", token, json={"email": customer_email}, headers=h("customer_search"))
    assert [c["id"] for c in found.json()["items"]] == [customer_id]
    assert api.patch(f"/v1/customers/{customer_id}", token, json={"gender": "não declarado"},
                     headers=h("customer_edit")).status_code == 200
    assert api.put(f"/v1/users/{user_id}/photo", token, data=_png(), headers={**h("photo_put"),
                                                                          "Content-Type": "image/png"}
                   ).status_code == 200
    assert api.get(f"/v1/users/{user_id}/photo", token, headers=h("photo_get")).status_code == 200
    # the notifier's share: a password reset mailed (the token and the address opened for it, and the
    # new-login alert of the login above) must leave nothing in its tables, events, outbox or log
    assert api.post("/v1/auth/password-reset", json={"email": payload["email"]}).status_code == 202
    mails = wait_for(lambda: [m for _, m in mail_to(platform, payload["email"])
                              if "token=" in text_and_html(m)[0]], timeout=30)
    secret_values.append(re.search(r"token=([A-Za-z0-9_-]{20,})", text_and_html(mails[0])[0]).group(1))

    privacy_values, privacy_records, dpo = _privacy_scenario(platform, api, admin, token, user_id, customer_id)
    secret_values += privacy_values

    identity_url = platform.database_urls["identity"]
    gateway_url = platform.database_urls["gateway"]
    scanner = LeakScanner(secret_values)

    # 2. an audit record for every access, with actor, subject, fields and request id (D3)
    def audits() -> dict[str, list[dict]]:
        by_request: dict[str, list[dict]] = {}
        for record in _audit_rows(identity_url) + _audit_rows(gateway_url):
            by_request.setdefault(record.get("request_id"), []).append(record)
        return by_request

    def has(name: str, action: str, subject: str | None, outcome: str = "success", fields: set | None = None,
            records=None) -> bool:
        for r in (records or audits()).get(rid[name], []):
            if r["action"] == action and r["outcome"] == outcome and (subject is None or r["subject_id"] == subject):
                if fields is None or fields <= set(r["fields"]):
                    return True
        return False

    wait_for(lambda: has("denied", "list", None, outcome="denied"), timeout=10)
    records = audits()
    expected = [
        ("create", "create", user_id, "success", {"full_name", "email", "phone", "birth_date", "address"}),
        ("login_failed", "login", user_id, "failure", None),
        ("login", "login", user_id, "success", None),
        ("me", "read", user_id, "success", {"full_name", "email", "phone"}),
        ("edit", "update", user_id, "success", {"phone"}),
        ("admin_read", "read", user_id, "success", {"email"}),
        ("admin_list", "list", user_id, "success", {"email"}),
        ("denied", "list", None, "denied", None),
        ("customer", "create", customer_id, "success", {"full_name", "email", "phone"}),
        ("customer_read", "read", customer_id, "success", {"email"}),
        ("customer_search", "list", customer_id, "success", {"email"}),
        ("customer_edit", "update", customer_id, "success", {"gender"}),
        ("photo_put", "update", user_id, "success", {"photo"}),
        ("photo_get", "read", user_id, "success", {"photo"}),
    ]
    for name, action, subject, outcome, fields in expected:
        assert has(name, action, subject, outcome, fields, records), (name, records.get(rid[name]))
    for name in ("me", "edit", "photo_get", "denied"):
        assert all(r["actor_id"] == user_id for r in records[rid[name]]), records[rid[name]]
    for privacy_rid, record in privacy_records:  # privacy's own records, read through the audit API
        wait_for_audit(api, dpo, record, what=f"{privacy_rid}: {record}", request_id=privacy_rid)

    # 3. what reached the broker: the same records, and the events
    wait_for(lambda: any(rid["photo_get"] in m["body"] for m in tap()), timeout=15)
    # privacy's events too (the breach notice is the scenario's last)
    wait_for(lambda: any("privacy.breach_notice_requested.v1" in m["body"] for m in tap()), timeout=15)
    messages = tap()
    assert any("privacy.correction_decided.v1" in m["body"] for m in messages)
    assert any(rid["me"] in m["body"] for m in messages)
    assert any("identity.user_registered.v1" in m["body"] and user_id in m["body"] for m in messages)
    privacy_url = platform.database_urls["privacy"]
    wait_for(lambda: any(rid["photo_get"] in text for _, text in _table_texts(privacy_url, "audit_records")),
             timeout=20)

    # 4. nothing personal in clear, in any form, anywhere it must not be (R3.1, R1.2, R5.3): every
    # service's event log and outbox, privacy's stored audit records, the broker, the log files
    sources = {
        "tables": [pair for url in platform.database_urls.values()
                   for table in ("events", "outbox", "deliveries", "suppressions", "processed_events")
                   for pair in _table_texts(url, table)],
        "audit_records": _table_texts(privacy_url, "audit_records"),
        "broker": [(f"broker message {i}", m["body"]) for i, m in enumerate(messages)]
        + [(f"broker headers {i}", m["headers"]) for i, m in enumerate(messages)],
        "logs": list(log_texts(platform.log_dir)),
    }
    for kind, pairs in sources.items():
        assert len(pairs) >= 5, f"too little to scan in {kind}: {len(pairs)}"
        scanner.assert_clean(pairs)
    assert any(rid["photo_get"] in text for _, text in sources["logs"])  # the logs cover the scenario
