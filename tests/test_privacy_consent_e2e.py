"""Corrections, policy versions and cookie consents end to end (issue 14, R5.1, R7.1, R11.1), through the
gateway of a running platform, mail read from the SMTP sink:

* a PATCH /v1/me touching a field the role may not edit files a correction (202; the editable fields of the
  same PATCH are applied); the DPO approves it (identity applies it as the DPO) or denies it with a reason;
  the requester is e-mailed either way; nobody approves their own, a non-reviewer approves nothing;
* a new policy version is e-mailed and must be accepted: /v1/me says so at sign-in until it is;
* cookie consents with their history and withdrawal, for a signed-in user and an anonymous visitor; a visitor
  id of another shape is refused, and nobody reads another's consents.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from e2e_identity import create_dpo
from e2e_mail import MAIL_TIMEOUT_S, mail_to, text_and_html
from upgestao_kernel.leaks import LeakScanner, log_texts, table_texts

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def desk(platform):
    api = Api(platform.url)
    admin = api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    dpo, dpo_tokens = create_dpo(platform, api, admin)
    return api, admin, dpo, dpo_tokens["access_token"]


def _table_texts(url: str, table: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(url)
    try:
        if not sa.inspect(engine).has_table(table):
            return []
        return [(f"{url.rsplit('/', 1)[-1]}.{where}", text) for where, text in table_texts(engine, table)]
    finally:
        engine.dispose()


def mail_holding(platform, address: str, *needles: str) -> str:
    """The text of the first e-mail to ``address`` holding every one of ``needles`` (polled until the deadline)."""
    deadline = time.monotonic() + MAIL_TIMEOUT_S
    while True:
        for _, message in mail_to(platform, address):
            text, _ = text_and_html(message)
            if all(n in text for n in needles):
                return text
        assert time.monotonic() < deadline, f"no e-mail holding {needles} within {MAIL_TIMEOUT_S}s"
        time.sleep(0.1)


def test_a_correction_approved_and_one_denied_each_mailed(platform, desk):
    api, admin, dpo, dpo_token = desk
    user, tokens = api.create_staff(admin, "attendant")
    token = tokens["access_token"]

    # an attendant may edit their phone, not their name: the phone is applied, the name filed
    answer = api.patch("/v1/me", token, json={"full_name": "Rosângela Corrigida", "phone": "+55 11 97777-1234"})
    assert answer.status_code == 202, answer.text
    filed = answer.json()
    assert filed["fields"] == ["full_name"] and filed["status"] == "pending" and filed["applied"] == ["phone"]
    me = api.get("/v1/me", token).json()
    assert me["full_name"] == user["full_name"] and me["phone"] != user["phone"]

    # attacks: the requester (no privacy.review) approves nothing; a dpo never approves their own
    assert api.post(f"/v1/privacy/corrections/{filed['id']}/approve", token).status_code == 403
    own = api.post("/v1/privacy/corrections", dpo_token, json={"changes": {"job_title": "Encarregada"}})
    assert own.status_code == 201, own.text
    refused = api.post(f"/v1/privacy/corrections/{own.json()['id']}/approve", dpo_token)
    assert refused.status_code == 403, refused.text
    assert api.get(f"/v1/privacy/corrections/{own.json()['id']}", token).status_code == 404  # not theirs

    # the requester sees theirs; the dpo approves: identity applies it; the requester is told
    assert [c["id"] for c in api.get("/v1/privacy/corrections", token).json()["items"]] == [filed["id"]]
    approved = api.post(f"/v1/privacy/corrections/{filed['id']}/approve", dpo_token)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert api.get("/v1/me", token).json()["full_name"] == "Rosângela Corrigida"
    mail_holding(platform, user["email"], filed["id"], "aprovado")

    # another, filed directly, denied: a reason is required, and it is mailed
    new_email = f"novo-{uuid.uuid4().hex[:8]}@example.com"
    second = api.post("/v1/privacy/corrections", token, json={"changes": {"email": new_email},
                                                              "reason": "Troquei de e-mail"})
    assert second.status_code == 201, second.text
    second_id = second.json()["id"]
    no_reason = api.post(f"/v1/privacy/corrections/{second_id}/deny", dpo_token, json={})
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
    denied = api.post(f"/v1/privacy/corrections/{second_id}/deny", dpo_token,
                      json={"reason": "O novo endereço não foi confirmado."})
    assert denied.status_code == 200 and denied.json()["status"] == "denied"
    assert api.post(f"/v1/privacy/corrections/{second_id}/approve", dpo_token).status_code == 409
    mail_holding(platform, user["email"], second_id, "O novo endereço não foi confirmado.")
    assert api.get("/v1/me", token).json()["email"] == user["email"]

    # the values, the requester's reason and the reviewer's are nowhere in clear: no event, outbox row, read
    # model, stored audit record or log line of any service holds them (the mail is where they belong)
    scanner = LeakScanner(["Rosângela Corrigida", new_email, "Troquei de e-mail", "O novo endereço não foi confirmado"])
    sources = [pair for url in platform.database_urls.values()
               for table in ("events", "outbox", "privacy_corrections", "audit_records")
               for pair in _table_texts(url, table)]
    assert len(sources) > 20
    scanner.assert_clean(sources)
    scanner.assert_clean(list(log_texts(platform.log_dir)))


def test_a_new_policy_version_must_be_accepted_at_sign_in(platform, desk):
    api, admin, dpo, dpo_token = desk
    user, tokens = api.create_staff(admin, "attendant")
    token = tokens["access_token"]
    current = api.get("/v1/privacy/policies/current")  # public
    assert current.status_code == 200 and current.json()["text"]
    first = current.json()["version"]
    assert api.get("/v1/me", token).json()["policy_acceptance_required"] == {"version": first}
    assert api.post(f"/v1/privacy/policies/{first}/accept", token).status_code == 200
    assert api.get("/v1/me", token).json()["policy_acceptance_required"] is None

    version = f"e2e-{uuid.uuid4().hex[:10]}"
    body = {"version": version, "effective_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
            "text": "Nova versão da política de privacidade.", "summary": f"Mudança {version}"}
    assert api.post("/v1/privacy/policies", token, json=body).status_code == 403  # not the dpo's permission
    published = api.post("/v1/privacy/policies", dpo_token, json=body)
    assert published.status_code == 201, published.text
    assert api.post("/v1/privacy/policies", dpo_token, json=body).status_code == 409
    assert api.get("/v1/privacy/policies/current").json()["version"] == version
    mail_holding(platform, user["email"], f"Mudança {version}")

    # at the next sign-in, /v1/me says the new version is due until it is accepted; the history is kept
    again = api.tokens(user["email"])["access_token"]
    assert api.get("/v1/me", again).json()["policy_acceptance_required"] == {"version": version}
    accepted = api.post(f"/v1/privacy/policies/{version}/accept", again)
    assert accepted.status_code == 200 and accepted.json()["recorded"] is True
    assert api.get("/v1/me", again).json()["policy_acceptance_required"] is None
    history = api.get("/v1/privacy/policy-acceptances", again).json()["items"]
    assert [h["version"] for h in history] == [version, first]
    assert api.post("/v1/privacy/policies/no-such-version/accept", again).status_code == 404


def test_cookie_consents_with_history_and_withdrawal(platform, desk):
    api, admin, _, _ = desk
    version = api.get("/v1/privacy/policies/current").json()["version"]
    _, tokens = api.create_staff(admin, "attendant")
    token = tokens["access_token"]
    _, other_tokens = api.create_staff(admin, "attendant")

    refused = api.put("/v1/privacy/consents", token, json={"purposes": {"essential": False}, "policy_version": version})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "purposes.essential"
    given = api.put("/v1/privacy/consents", token, json={"purposes": {"analytics": True, "personalisation": True},
                                                          "policy_version": version})
    assert given.status_code == 200, given.text
    withdrawn = api.put("/v1/privacy/consents", token, json={"purposes": {"analytics": False},
                                                              "policy_version": version})
    assert withdrawn.json()["purposes"] == {"essential": True, "analytics": False, "personalisation": True}
    mine = api.get("/v1/privacy/consents", token).json()
    assert [h["purposes"]["analytics"] for h in mine["history"]] == [False, True]  # newest first
    # someone else reads only their own (none): there is no way to name another person
    assert api.get("/v1/privacy/consents", other_tokens["access_token"]).json()["history"] == []
    assert api.get("/v1/privacy/consents").status_code == 401

    # an anonymous visitor: an id is issued, kept by the client, presented to change or read the choice
    issued = api.put("/v1/privacy/consents/visitor", json={"purposes": {"analytics": True},
                                                            "policy_version": version})
    assert issued.status_code == 200, issued.text
    visitor = issued.json()["visitor_id"]
    back = api.put("/v1/privacy/consents/visitor", json={"purposes": {"analytics": False}, "policy_version": version,
                                                          "visitor_id": visitor})
    assert back.status_code == 200 and back.json()["purposes"]["analytics"] is False
    history = api.get("/v1/privacy/consents/visitor", headers={"Visitor-Id": visitor}).json()["history"]
    assert [h["purposes"]["analytics"] for h in history] == [False, True]
    assert api.get("/v1/privacy/consents/visitor", headers={"Visitor-Id": str(uuid.uuid4())}).json()["history"] == []
    for bad in (visitor.upper(), "visitor-1", visitor + "0"):
        answer = api.get("/v1/privacy/consents/visitor", headers={"Visitor-Id": bad})
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "Visitor-Id"
        put = api.put("/v1/privacy/consents/visitor", json={"purposes": {"analytics": True},
                                                             "policy_version": version, "visitor_id": bad})
        assert put.status_code == 422 and put.json()["errors"][0]["field"] == "visitor_id"
    assert api.get("/v1/privacy/consents/visitor").status_code == 422


def test_a_consent_revocation_request_withdraws_every_optional_consent(platform, desk):
    api, admin, _, dpo_token = desk
    version = api.get("/v1/privacy/policies/current").json()["version"]
    _, tokens = api.create_staff(admin, "attendant")
    token = tokens["access_token"]
    api.put("/v1/privacy/consents", token, json={"purposes": {"analytics": True, "personalisation": True},
                                                  "policy_version": version})
    filed = api.post("/v1/privacy/requests", token, json={"type": "consent_revocation"})
    assert filed.status_code == 201, filed.text
    request_id = filed.json()["id"]
    started = api.post(f"/v1/privacy/requests/{request_id}/start", dpo_token)
    assert started.status_code == 200, started.text

    deadline = time.monotonic() + 30
    while (state := api.get(f"/v1/privacy/requests/{request_id}", token).json())["state"] != "completed":
        assert time.monotonic() < deadline, f"the request stayed {state['state']}"
        time.sleep(0.1)
    assert state["answer"]["consents_withdrawn"] == ["analytics", "personalisation"]
    mine = api.get("/v1/privacy/consents", token).json()
    assert mine["purposes"] == {"essential": True, "analytics": False, "personalisation": False}
    assert mine["history"][0]["source"] == "revocation_request" and mine["history"][0]["request_id"] == request_id
