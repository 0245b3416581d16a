"""Data-subject requests end to end (issue 14, LGPD art. 18/19), through the gateway, with e-mail read from
the platform's SMTP sink: every request type filed by a signed-in person, the DPO's queue and actions
(privacy's own answers, a denial with its reason, an extension), the contact channel (a wrong code, too
many attempts, a known and an unknown address), and the attacks: another person's request is a 404, a
non-reviewer cannot list everyone's, see the overdue queue, start or deny. An expired code and an overdue
request need the clock moved: the service tests do that with an injected clock
(services/privacy/tests/test_requests_service.py); here the overdue queue's order and days left are shown
and an extension into the past is refused."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, E2E_IDENTITY_ENV, Api, staff_payload
from e2e_identity import create_dpo
from e2e_mail import mail_to, text_and_html, wait_for_mail
from upgestao_kernel.leaks import LeakScanner, table_texts
from upgestao_kernel.testing import wait_for

pytestmark = pytest.mark.e2e

TYPES = ("confirmation", "access", "correction", "anonymisation", "blocking", "deletion", "portability",
         "sharing_info", "consent_info", "consent_revocation")
_CODE = re.compile(r"^\s*([0-9]{6})\s*$", re.MULTILINE)


@pytest.fixture(scope="module")
def people(platform):
    """(api, the admin's token, a DPO's token, two attendants: (user, tokens) each)."""
    api = Api(platform.url)
    admin = api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    tag = uuid.uuid4().hex[:8]
    _, dpo = create_dpo(platform, api, admin, email=f"dpo-{tag}@example.com")
    ana = api.create_staff(admin, "attendant", email=f"ana-{tag}@example.com")
    bruno = api.create_staff(admin, "attendant", email=f"bruno-{tag}@example.com")
    return api, admin, dpo["access_token"], ana, bruno


def _ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def _code_in(platform, address: str, already: int = 0) -> str:
    """The code of the newest verification e-mail to ``address`` among those after the first ``already``."""
    codes: list[str] = []

    def arrived() -> bool:
        found = wait_for_mail(platform, address)[already:]
        codes[:] = [m.group(1) for _, message in found if (m := _CODE.search(text_and_html(message)[0]))]
        return bool(codes)

    wait_for(arrived, timeout=30, interval=0.2)
    return codes[-1]


def _wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


def test_every_type_is_filed_and_the_dpo_answers_denies_and_extends(platform, people):
    api, _, dpo, (ana, ana_tokens), _ = people
    token = ana_tokens["access_token"]
    filed = {t: _ok(api.post("/v1/privacy/requests", token, json={"type": t}), 201) for t in TYPES}
    for type_, request in filed.items():
        assert (request["type"], request["state"], request["subject_id"]) == (type_, "pending", ana["id"])
        assert request["days_left"] == 15 and not request["overdue"]
    mine = _ok(api.get("/v1/privacy/requests", token, params={"limit": "100"}))["items"]
    assert {r["id"] for r in mine} >= {r["id"] for r in filed.values()}

    # what privacy answers itself, at once
    for type_ in ("confirmation", "sharing_info", "consent_info"):
        done = _ok(api.post(f"/v1/privacy/requests/{filed[type_]['id']}/start", dpo))
        assert done["state"] == "completed" and done["answer"]["kind"] == type_
        assert [h["to"] for h in done["history"]] == ["pending", "in_progress", "completed"]
    assert _ok(api.get(f"/v1/privacy/requests/{filed['confirmation']['id']}", token))["answer"]["holds_data"]
    # a correction is answered by hand; a deletion denied with its reason; the rest withdrawn by Ana
    _ok(api.post(f"/v1/privacy/requests/{filed['correction']['id']}/start", dpo))
    corrected = _ok(api.post(f"/v1/privacy/requests/{filed['correction']['id']}/complete", dpo,
                             json={"note": "Nome corrigido no cadastro"}))
    assert corrected["state"] == "completed"
    no_reason = api.post(f"/v1/privacy/requests/{filed['deletion']['id']}/deny", dpo, json={})
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
    denied = _ok(api.post(f"/v1/privacy/requests/{filed['deletion']['id']}/deny", dpo,
                          json={"reason": "Guarda obrigatória de documentos fiscais por 5 anos"}))
    assert denied["state"] == "denied" and denied["history"][-1]["reason"].startswith("Guarda obrigatória")
    again = api.post(f"/v1/privacy/requests/{filed['deletion']['id']}/start", dpo)
    assert again.status_code == 409, again.text
    for type_ in ("access", "anonymisation", "blocking", "portability", "consent_revocation"):
        assert _ok(api.post(f"/v1/privacy/requests/{filed[type_]['id']}/cancel", token, json={}))["state"] == \
            "canceled"
    # the requester is written to for each answer and the denial (with its reason)
    mails: list = []

    def five_mails() -> bool:
        mails[:] = wait_for_mail(platform, ana["email"])
        return len(mails) >= 5

    wait_for(five_mails, timeout=30, interval=0.2)
    texts = [text_and_html(m)[0] for _, m in mails]
    assert any("Guarda obrigatória" in t for t in texts)
    # the reasons and the note are nowhere in clear in privacy's events, outbox or audit records
    engine = sa.create_engine(platform.database_urls["privacy"])
    try:
        sources = [text for table in ("events", "outbox", "audit_records") for text in table_texts(engine, table)]
    finally:
        engine.dispose()
    LeakScanner(["Guarda obrigatória de documentos fiscais", "Nome corrigido no cadastro"]).assert_clean(sources)


def test_the_overdue_queue_and_extensions(platform, people):
    api, _, dpo, (ana, ana_tokens), _ = people
    request = _ok(api.post("/v1/privacy/requests", ana_tokens["access_token"], json={"type": "portability"}), 201)
    queue = _ok(api.get("/v1/privacy/requests/overdue", dpo, params={"limit": "100"}))
    ids = [i["id"] for i in queue["items"]]
    assert request["id"] in ids
    dues = [i["due_at"] for i in queue["items"]]
    assert dues == sorted(dues) and queue["overdue_count"] >= sum(1 for i in queue["items"] if i["overdue"])
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    refused = api.post(f"/v1/privacy/requests/{request['id']}/extend", dpo, json={"due_at": past, "reason": "atraso"})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "due_at"
    later = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    extended = _ok(api.post(f"/v1/privacy/requests/{request['id']}/extend", dpo,
                            json={"due_at": later.isoformat(), "reason": "Volume de dados"}))
    assert extended["days_left"] == 30 and extended["history"][-1]["event"] == "extended"
    assert extended["history"][-1]["reason"] == "Volume de dados"


def test_attacks_another_persons_request_and_the_dpos_routes(platform, people):
    api, _, dpo, (ana, ana_tokens), (bruno, bruno_tokens) = people
    anas = _ok(api.post("/v1/privacy/requests", ana_tokens["access_token"], json={"type": "access"}), 201)
    bruno_token = bruno_tokens["access_token"]
    assert api.get(f"/v1/privacy/requests/{anas['id']}", bruno_token).status_code == 404
    assert api.post(f"/v1/privacy/requests/{anas['id']}/cancel", bruno_token, json={}).status_code == 404
    listed = _ok(api.get("/v1/privacy/requests", bruno_token, params={"limit": "100"}))["items"]
    assert all(i["subject_id"] == bruno["id"] for i in listed)  # never everyone's without privacy.review
    for method, path, body in (("GET", "/v1/privacy/requests/overdue", None),
                               ("POST", f"/v1/privacy/requests/{anas['id']}/start", {}),
                               ("POST", f"/v1/privacy/requests/{anas['id']}/deny", {"reason": "não"})):
        response = api.request(method, path, bruno_token, json=body)
        assert response.status_code == 403 and response.json()["permission"] == "privacy.review", response.text
    assert _ok(api.get(f"/v1/privacy/requests/{anas['id']}", dpo))["state"] == "pending"  # nothing moved
    everyone = {i["subject_id"] for i in _ok(api.get("/v1/privacy/requests", dpo, params={"limit": "100"}))["items"]}
    assert ana["id"] in everyone


def test_the_contact_channel(platform, people):
    api, _, dpo, (ana, _), _ = people
    # an address nobody has: accepted as any other, the code e-mailed, a wrong code, then the right one
    stranger = f"stranger-{uuid.uuid4().hex[:8]}@example.com"
    accepted = _ok(api.post("/v1/privacy/contact", json={"email": stranger, "type": "confirmation",
                                                         "message": "Vocês têm dados meus?"}), 202)
    assert set(accepted) == {"id", "status"}
    code = _code_in(platform, stranger)
    wrong = api.post(f"/v1/privacy/contact/{accepted['id']}/verify", json={"code": _wrong(code)})
    assert wrong.status_code == 422 and wrong.json()["attempts_left"] == 2, wrong.text
    verified = _ok(api.post(f"/v1/privacy/contact/{accepted['id']}/verify", json={"code": code}))
    assert verified["state"] == "pending"
    used = api.post(f"/v1/privacy/contact/{accepted['id']}/verify", json={"code": code})
    assert used.status_code == 409, used.text
    routed = _ok(api.get(f"/v1/privacy/requests/{accepted['id']}", dpo))
    assert (routed["state"], routed["subject_id"], routed["channel"]) == ("pending", None, "contact")
    assert routed["contact"] == {"email": stranger, "message": "Vocês têm dados meus?"}  # for the DPO to answer
    done = _ok(api.post(f"/v1/privacy/requests/{accepted['id']}/start", dpo))
    assert done["answer"] == {"kind": "confirmation", "holds_data": False, "services": []}
    wait_for(lambda: len(wait_for_mail(platform, stranger)) >= 2, timeout=30, interval=0.2)  # the answer

    # a known address: the request is about that person
    known = _ok(api.post("/v1/privacy/contact", json={"email": ana["email"], "type": "access"}), 202)
    before = len(mail_to(platform, ana["email"]))
    _ok(api.post(f"/v1/privacy/contact/{known['id']}/verify",
                 json={"code": _code_in(platform, ana["email"], already=before)}))
    assert _ok(api.get(f"/v1/privacy/requests/{known['id']}", dpo))["subject_id"] == ana["id"]

    # too many attempts: the third wrong code kills it, and then even the right one is refused
    third = f"third-{uuid.uuid4().hex[:8]}@example.com"
    doomed = _ok(api.post("/v1/privacy/contact", json={"email": third, "type": "deletion"}), 202)
    code = _code_in(platform, third)
    answers = [api.post(f"/v1/privacy/contact/{doomed['id']}/verify", json={"code": _wrong(code)})
               for _ in range(3)]
    assert [(a.status_code, a.json().get("attempts_left")) for a in answers] == [(422, 2), (422, 1), (403, 0)]
    dead = api.post(f"/v1/privacy/contact/{doomed['id']}/verify", json={"code": code})
    assert dead.status_code == 403 and dead.json()["type"].endswith("code-exhausted"), dead.text
    # an id nobody was given, a malformed code
    assert api.post(f"/v1/privacy/contact/{uuid.uuid4()}/verify", json={"code": code}).status_code == 404
    assert api.post(f"/v1/privacy/contact/{doomed['id']}/verify", json={"code": "12"}).status_code == 422
    # the address and the message never in clear in privacy's events, outbox or audit records
    engine = sa.create_engine(platform.database_urls["privacy"])
    try:
        sources = [text for table in ("events", "outbox", "audit_records") for text in table_texts(engine, table)]
    finally:
        engine.dispose()
    LeakScanner([stranger, third, "Vocês têm dados meus?"]).assert_clean(sources)


def test_an_expired_code_is_refused_and_the_request_must_be_filed_again(platform, people):
    """The platform's codes live PRIVACY_CONTACT_CODE_TTL_S (25 s in this session, e2e_api): the right code,
    given back after that, is a 410 and verifies nothing; the request stays unverified, out of the DPO's queue."""
    api, _, dpo, _, _ = people
    late = f"late-{uuid.uuid4().hex[:8]}@example.com"
    ttl_s = float(E2E_IDENTITY_ENV["PRIVACY_CONTACT_CODE_TTL_S"])
    filed_before = time.monotonic()
    accepted = _ok(api.post("/v1/privacy/contact", json={"email": late, "type": "access", "message": "Tarde"}), 202)
    code = _code_in(platform, late)
    # (time itself is the condition: the code's life, counted from before the request was filed, is over)
    wait_for(lambda: time.monotonic() > filed_before + ttl_s + 1, timeout=ttl_s + 5, interval=0.5)
    expired = api.post(f"/v1/privacy/contact/{accepted['id']}/verify", json={"code": code})
    assert expired.status_code == 410, expired.text
    assert expired.headers["Content-Type"].startswith("application/problem+json")
    assert expired.json()["type"].endswith("/code-expired")
    request = _ok(api.get(f"/v1/privacy/requests/{accepted['id']}", dpo))
    assert request["state"] == "identity_unverified"


def test_the_contact_channel_needs_no_account_but_a_valid_body(platform, people):
    api = people[0]
    bad = api.post("/v1/privacy/contact", json={"email": "not-an-address", "type": "access"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "email"
    assert "not-an-address" not in bad.text
    staff = staff_payload()
    assert api.post("/v1/privacy/contact", json={"email": staff["email"], "type": "erase-all"}).status_code == 422


def test_the_audit_completeness_scenarios_of_these_routes_hold(platform, people):
    """What ``tests/e2e_privacy_requests.py`` tells the audit-completeness test, proven here: each personal
    route's successful call leaves exactly the one record its scenario names (and the OpenAPI document marks
    these routes personal)."""
    from e2e_api import new_request_id
    from e2e_privacy_requests import PRIVACY_REQUEST_SCENARIOS
    from test_audit_completeness_e2e import World, operations, wait_for_record

    api, admin, dpo, (ana, ana_tokens), _ = people
    document = _ok(api.get("/v1/openapi.json"))
    personal = {route for route, op in operations(document).items() if op.get("x-personal-data") is True}
    assert set(PRIVACY_REQUEST_SCENARIOS) <= personal  # (other areas add routes under /v1/privacy/requests too)
    world = World(api=api, amqp_uri=platform.amqp_uri, platform=platform, admin=admin,
                  admin_id=_ok(api.get("/v1/me", admin))["id"], dpo=dpo, user=ana,
                  token=ana_tokens["access_token"], customer={})
    for route, scenario in PRIVACY_REQUEST_SCENARIOS.items():
        rid = new_request_id(f"{route[0]}-{route[1]}")
        expected = scenario(world, rid)
        wait_for_record(world, rid, {**expected, "outcome": "success"}, f"{route[0]} {route[1]}")


def test_only_the_notifiers_broker_user_gets_a_notice(platform, people):
    """The code's notice is handed out to the notifier's broker user (RabbitMQ vouches for it), to no other
    service and to nobody claiming to be the notifier in a header."""
    import upgestao_kernel.nameko_ext  # noqa: F401  (publishes carry the broker user; reply queues per service)
    from nameko.standalone.rpc import ServiceRpcProxy
    from upgestao_kernel.errors import ServiceError

    api = people[0]
    address = f"notice-{uuid.uuid4().hex[:8]}@example.com"
    accepted = _ok(api.post("/v1/privacy/contact", json={"email": address, "type": "access"}), 202)
    engine = sa.create_engine(platform.database_urls["privacy"])
    try:
        with engine.connect() as conn:
            notice_id = conn.execute(sa.text(
                "SELECT event_id FROM events WHERE stream_id = :s AND type = :t"),
                {"s": f"request-{accepted['id']}", "t": "privacy.request_verification_requested.v1"}).scalar_one()
    finally:
        engine.dispose()
    for service in ("identity", "messaging"):
        with ServiceRpcProxy("privacy", {"AMQP_URI": platform.broker_uris[service]},
                             context_data={"caller_service": "notifier"}, timeout=20) as privacy:
            with pytest.raises(ServiceError) as refused:
                privacy.notice(notice_id)
        assert refused.value.status == 403
    with ServiceRpcProxy("privacy", {"AMQP_URI": platform.broker_uris["notifier"]}, timeout=20) as privacy:
        notice = privacy.notice(notice_id)
    assert notice["kind"] == "privacy_request_verification" and notice["recipients"][0]["to"] == address
    assert notice["data"]["code"] == _code_in(platform, address)
