"""Data-subject requests' use cases on real PostgreSQL, logged in as privacy's runtime role (its grants are
part of what is tested), with an injected clock and a stand-in identity: filing, the DPO's queue and
actions, the overdue list, the contact channel's codes (wrong, expired, exhausted, throttled), the notices,
and no personal value in events or audit records."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from upgestao_kernel.context import RequestContext
from upgestao_kernel.db import create_engine
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.events import new_id
from upgestao_kernel.unit_of_work import UnitOfWork
from upgestao_kernel.vault import MasterKeyring, Vault
from upgestao_privacy.domain.contact import Budget, CodeExhausted, CodeExpired, CodeUsed
from upgestao_privacy.domain.requests import InvalidTransition, InvalidValue
from upgestao_privacy.service_layer.requests import (
    RequestCases,
    RequestSettings,
    complete_request,
    fail_request,
    get_request,
)

START = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
PERMISSIONS = {"dpo": {"privacy.self", "privacy.review"}, "attendant": {"privacy.self"}, "guest": set()}
ANA_EMAIL = "ana.contato@example.com"
SECRET_MESSAGE = "Quero apagar tudo sobre a Ana Contato"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class FakeIdentity:
    """What privacy asks of identity: who an address belongs to, and where to write to a person."""

    def __init__(self) -> None:
        self.subjects: dict[str, str] = {}
        self.addresses: dict[str, str] = {}

    def find_subject(self, email: str) -> dict:
        sid = self.subjects.get(email)
        return {"subject_id": sid, "kind": "customer" if sid else None}

    def contacts(self, subject_ids: list[str]) -> dict:
        return {"items": {s: {"to": self.addresses[s], "name": "Pessoa", "locale": "pt-BR"}
                          for s in subject_ids if s in self.addresses}}


class World:
    def __init__(self, runtime_url: str, owner_url: str) -> None:
        self.engine = create_engine(runtime_url)
        self.owner = sa.create_engine(owner_url)
        self.vault = Vault(MasterKeyring(b"\x11" * 32), b"\x22" * 32)
        self.clock = Clock()
        self.identity = FakeIdentity()
        self.context = RequestContext(request_id=new_id())
        self.settings = RequestSettings(code_ttl_s=600, per_address=Budget(5, 3600), per_email=Budget(2, 3600))

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine, "privacy", self.context, vault=self.vault)

    def as_(self, actor_id: str | None, role: str | None, *, caller: str | None = "gateway",
            ip: str = "203.0.113.5") -> RequestCases:
        self.context = RequestContext(request_id=new_id(), actor_id=actor_id, actor_role=role, source_ip=ip,
                                      caller_service=caller)
        return RequestCases(self.uow, lambda role: PERMISSIONS.get(role or "", set()), identity=self.identity,
                            now=self.clock, settings=self.settings)

    def rows(self, sql: str) -> list:
        with self.owner.connect() as conn:
            return conn.execute(sa.text(sql)).all()

    def audit(self) -> list[dict]:
        bodies = [r[0] for r in self.rows("SELECT body FROM outbox WHERE exchange = 'audit' ORDER BY id")]
        return [rec for b in bodies for rec in (b.get("records") if "records" in b else [b])]

    def close(self) -> None:
        self.engine.dispose()
        self.owner.dispose()


@pytest.fixture
def world(runtime_database):
    owner_url, url = runtime_database
    w = World(url, owner_url)
    yield w
    w.close()


DPO = str(uuid.uuid4())
ANA = str(uuid.uuid4())
BRUNO = str(uuid.uuid4())


def test_a_person_files_reads_and_cancels_their_own_and_nobody_else_sees_it(world):
    mine = world.as_(ANA, "attendant").file("access")
    assert mine["state"] == "pending" and mine["subject_id"] == ANA and mine["days_left"] == 15
    assert world.as_(ANA, "attendant").get(mine["id"])["history"][0]["to"] == "pending"
    with pytest.raises(ServiceError) as other:
        world.as_(BRUNO, "attendant").get(mine["id"])
    assert other.value.status == 404
    with pytest.raises(ServiceError) as other_cancel:
        world.as_(BRUNO, "attendant").cancel(mine["id"])
    assert other_cancel.value.status == 404
    assert world.as_(BRUNO, "attendant").list()["items"] == []
    world.as_(BRUNO, "attendant").file("deletion")
    assert {i["subject_id"] for i in world.as_(DPO, "dpo").list()["items"]} == {ANA, BRUNO}
    assert [i["type"] for i in world.as_(DPO, "dpo").list({"type": "deletion"})["items"]] == ["deletion"]
    canceled = world.as_(ANA, "attendant").cancel(mine["id"], "mudei de ideia")
    assert canceled["state"] == "canceled" and canceled["history"][-1]["reason"] == "mudei de ideia"
    with pytest.raises(ServiceError) as bad_filter:
        world.as_(DPO, "dpo").list({"state": "lost"})
    assert bad_filter.value.status == 422 and bad_filter.value.extensions["errors"][0]["field"] == "state"
    with pytest.raises(ServiceError) as missing:
        world.as_(BRUNO, "attendant").get(str(uuid.uuid4()))
    assert missing.value.status == 404
    denied = [r for r in world.audit() if r["outcome"] == "denied"]
    assert {r["resource_id"] for r in denied} == {mine["id"]}  # both refusals audited; a missing one refuses nothing
    assert len(denied) == 2


def test_without_privacy_review_nobody_starts_denies_extends_or_sees_the_queue(world):
    request = world.as_(ANA, "attendant").file("deletion")
    for attempt in (lambda c: c.start(request["id"]), lambda c: c.deny(request["id"], "não"),
                    lambda c: c.extend(request["id"], (START + timedelta(days=40)).isoformat(), "prazo"),
                    lambda c: c.overdue(), lambda c: c.complete(request["id"])):
        with pytest.raises(ServiceError) as refused:
            attempt(world.as_(ANA, "attendant"))
        assert refused.value.status == 403
    with pytest.raises(ServiceError) as nobody:
        world.as_(None, None).file("access")
    assert nobody.value.status == 403
    assert world.as_(ANA, "attendant").list()["items"][0]["state"] == "pending"  # "all" is one's own


def test_the_dpo_starts_denies_and_extends_with_reasons_kept_sealed(world):
    dpo = world.as_(DPO, "dpo")
    first = world.as_(ANA, "attendant").file("deletion")
    with pytest.raises(InvalidValue):
        world.as_(DPO, "dpo").deny(first["id"], "  ")
    started = world.as_(DPO, "dpo").start(first["id"])
    assert started["state"] == "in_progress"
    denied = world.as_(DPO, "dpo").deny(first["id"], "Obrigação legal de guarda fiscal da Ana")
    assert denied["state"] == "denied" and denied["history"][-1]["reason"].startswith("Obrigação legal")
    with pytest.raises(InvalidTransition):
        dpo.start(first["id"])
    second = world.as_(ANA, "attendant").file("portability")
    with pytest.raises(InvalidValue) as past:
        world.as_(DPO, "dpo").extend(second["id"], (START - timedelta(days=1)).isoformat(), "atrasou")
    assert past.value.field == "due_at"
    with pytest.raises(InvalidValue) as no_reason:
        world.as_(DPO, "dpo").extend(second["id"], (START + timedelta(days=30)).isoformat(), None)
    assert no_reason.value.field == "reason"
    extended = world.as_(DPO, "dpo").extend(second["id"], (START + timedelta(days=30)).isoformat(),
                                            "Volume grande de dados da Ana")
    assert extended["due_at"] == (START + timedelta(days=30)).isoformat() and extended["days_left"] == 30
    assert extended["history"][-1]["event"] == "extended"
    # the reasons are nowhere in clear: not in the log, not published, not audited
    stored = json.dumps([list(map(str, r)) for r in world.rows("SELECT data FROM events")]
                        + [str(r[0]) for r in world.rows("SELECT body FROM outbox")], ensure_ascii=False)
    assert "Obrigação legal" not in stored and "Volume grande" not in stored
    transitions = [r for r in world.audit() if r["resource_type"] == "privacy_request" and r["action"] == "update"]
    assert {r["purpose"] for r in transitions} >= {"data subject request started", "data subject request denied",
                                                   "data subject request due date extended"}


def test_privacy_answers_confirmation_sharing_and_consent_info_itself(world):
    for type_, kind in (("confirmation", "confirmation"), ("sharing_info", "sharing_info"),
                        ("consent_info", "consent_info")):
        request = world.as_(ANA, "attendant").file(type_)
        done = world.as_(DPO, "dpo").start(request["id"])
        assert done["state"] == "completed" and done["answer"]["kind"] == kind
        assert [h["to"] for h in done["history"]] == ["pending", "in_progress", "completed"]
    assert "consentimento" in done["answer"]["text"]["pt-BR"]
    types = [r[0] for r in world.rows("SELECT type FROM events WHERE stream_id LIKE 'request-%' ORDER BY position")]
    assert types.count("privacy.request_started.v1") == 3 and types.count("privacy.request_completed.v1") == 3


def test_other_areas_complete_and_fail_requests(world):
    request = world.as_(ANA, "attendant").file("access")
    world.as_(DPO, "dpo").start(request["id"])
    world.as_("system", "system")
    with world.uow() as uow:
        failed = fail_request(uow, request["id"], "messaging export timed out", now=START)
    assert failed.state == "error"
    world.as_(DPO, "dpo").start(request["id"])
    world.as_("system", "system")
    world.identity.addresses[ANA] = ANA_EMAIL
    with world.uow() as uow:
        complete_request(uow, request["id"], download_url="https://example.test/b/xyz-secret", now=START)
        completed_id = uow.recorded[-1].event_id
    with world.uow() as uow:
        done = get_request(uow, request["id"])
        assert get_request(uow, str(uuid.uuid4())) is None
    assert (done.state, done.has_download, done.outcome) == ("completed", True, "completed")
    notice = _notice(world, completed_id)
    assert notice["data"]["download_url"] == "https://example.test/b/xyz-secret"
    assert notice["recipients"][0]["to"] == ANA_EMAIL
    # the link is a credential: only the notice holds it (sealed), never the log or the outbox
    stored = json.dumps([str(r[0]) for r in world.rows("SELECT data FROM events")]
                        + [str(r[0]) for r in world.rows("SELECT body FROM outbox")])
    assert "xyz-secret" not in stored
    world.clock.now = START + timedelta(days=8)  # once the link's time is over, there is nothing to send
    with pytest.raises(ServiceError) as gone:
        _notice(world, completed_id)
    assert gone.value.status == 404
    with pytest.raises(ServiceError) as unknown_event:
        _notice(world, str(uuid.uuid4()))
    assert unknown_event.value.status == 404
    filed_event = world.rows(f"SELECT event_id FROM events WHERE stream_id = 'request-{request['id']}' "
                             "AND type = 'privacy.request_filed.v1'")[0][0]
    with pytest.raises(ServiceError) as no_notice:  # an event of privacy that announces no notice
        _notice(world, filed_event)
    assert no_notice.value.status == 404


def test_overdue_requests_come_first(world):
    old = world.as_(ANA, "attendant").file("deletion")
    world.clock.now = START + timedelta(days=3)
    newer = world.as_(BRUNO, "attendant").file("access")
    closed = world.as_(BRUNO, "attendant").file("confirmation")
    world.as_(DPO, "dpo").start(closed["id"])
    world.clock.now = START + timedelta(days=16)
    queue = world.as_(DPO, "dpo").overdue()
    assert [i["id"] for i in queue["items"]] == [old["id"], newer["id"]]  # closed ones are not in the queue
    assert queue["items"][0]["overdue"] and queue["items"][0]["days_left"] == -1
    assert not queue["items"][1]["overdue"] and queue["overdue_count"] == 1
    world.as_(None, None).contact("unverified@example.com", "access")  # never verified: not the DPO's yet
    world.clock.now = START + timedelta(days=40)
    later = world.as_(DPO, "dpo").overdue(limit=1)
    assert [i["id"] for i in later["items"]] == [old["id"]] and later["overdue_count"] == 2  # in all
    assert [i["id"] for i in world.as_(DPO, "dpo").overdue(cursor=later["next_cursor"])["items"]] == [newer["id"]]


def _notice(world: World, notice_id: str) -> dict:
    return world.as_(None, None, caller="notifier").notice(notice_id)


def _verification_notice_id(world: World, request_id: str) -> str:
    return world.rows(f"SELECT event_id FROM events WHERE stream_id = 'request-{request_id}' "
                      "AND type = 'privacy.request_verification_requested.v1'")[0][0]


def test_the_contact_channel_verifies_with_the_code_sent_and_routes_to_the_dpo(world):
    world.identity.subjects[ANA_EMAIL] = ANA
    world.identity.addresses[ANA] = ANA_EMAIL
    accepted = world.as_(None, None).contact(ANA_EMAIL, "deletion", SECRET_MESSAGE)
    assert accepted["status"] == "accepted"
    notice_id = _verification_notice_id(world, accepted["id"])
    with pytest.raises(ServiceError) as not_notifier:
        world.as_(DPO, "dpo", caller="identity").notice(notice_id)
    assert not_notifier.value.status == 403
    notice = _notice(world, notice_id)
    code = notice["data"]["code"]
    assert notice["kind"] == "privacy_request_verification" and len(code) == 6
    assert notice["recipients"][0]["to"] == ANA_EMAIL and notice["data"]["request_type"] == "deletion"
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(ServiceError) as bad:
        world.as_(None, None).verify_contact(accepted["id"], wrong)
    assert bad.value.status == 422 and bad.value.extensions["attempts_left"] == 2
    verified = world.as_(None, None).verify_contact(accepted["id"], code)
    assert verified["state"] == "pending"
    with pytest.raises(ServiceError) as gone:  # the code's copy did not outlive its use
        _notice(world, notice_id)
    assert gone.value.status == 404
    with pytest.raises(CodeUsed):
        world.as_(None, None).verify_contact(accepted["id"], code)
    seen_by_dpo = world.as_(DPO, "dpo").get(accepted["id"])
    assert seen_by_dpo["contact"] == {"email": ANA_EMAIL, "message": SECRET_MESSAGE}
    assert "contact" not in world.as_(ANA, "attendant").get(accepted["id"])  # the person: their request only
    queued = world.as_(DPO, "dpo").list({"state": "pending"})["items"]
    assert [(i["id"], i["subject_id"], i["channel"]) for i in queued] == [(accepted["id"], ANA, "contact")]
    # completed: written to the person's address from identity
    world.as_(DPO, "dpo").start(accepted["id"])
    world.as_(DPO, "dpo").complete(accepted["id"], "Dados apagados")
    completed_id = world.rows(f"SELECT event_id FROM events WHERE stream_id = 'request-{accepted['id']}' "
                              "AND type = 'privacy.request_completed.v1'")[0][0]
    answer = _notice(world, completed_id)
    assert answer["kind"] == "privacy_request_completed" and answer["recipients"][0]["id"] == ANA
    assert answer["data"]["outcome"] == "completed" and answer["data"]["reason"] == "Dados apagados"
    stored = json.dumps([str(r[0]) for r in world.rows("SELECT data FROM events")]
                        + [str(r[0]) for r in world.rows("SELECT body FROM outbox")], ensure_ascii=False)
    assert ANA_EMAIL not in stored and SECRET_MESSAGE not in stored and code not in stored.replace(
        notice_id, "")  # (an id may hold the digits by chance; the code itself is nowhere)


def test_an_unknown_address_gets_the_same_answer_and_its_request_stays_about_nobody(world):
    accepted = world.as_(None, None).contact("ninguem@example.com", "confirmation", None)
    notice = _notice(world, _verification_notice_id(world, accepted["id"]))
    world.as_(None, None).verify_contact(accepted["id"], notice["data"]["code"])
    done = world.as_(DPO, "dpo").start(accepted["id"])
    assert done["subject_id"] is None and done["answer"] == {"kind": "confirmation", "holds_data": False,
                                                             "services": []}
    completed_id = world.rows(f"SELECT event_id FROM events WHERE stream_id = 'request-{accepted['id']}' "
                              "AND type = 'privacy.request_completed.v1'")[0][0]
    assert _notice(world, completed_id)["recipients"][0]["to"] == "ninguem@example.com"


def test_an_expired_code_is_refused_and_its_notice_goes(world):
    accepted = world.as_(None, None).contact("ana@example.com", "access")
    notice_id = _verification_notice_id(world, accepted["id"])
    code = _notice(world, notice_id)["data"]["code"]
    world.clock.now = START + timedelta(seconds=600)
    with pytest.raises(CodeExpired):
        world.as_(None, None).verify_contact(accepted["id"], code)
    with pytest.raises(ServiceError) as gone:
        _notice(world, notice_id)
    assert gone.value.status == 404
    assert world.rows("SELECT count(*) FROM privacy_request_notices")[0][0] == 0


def test_three_wrong_codes_kill_it(world):
    accepted = world.as_(None, None).contact("ana@example.com", "access")
    code = _notice(world, _verification_notice_id(world, accepted["id"]))["data"]["code"]
    wrong = "000000" if code != "000000" else "111111"
    statuses = []
    for _ in range(3):
        with pytest.raises(ServiceError) as bad:
            world.as_(None, None).verify_contact(accepted["id"], wrong)
        statuses.append((bad.value.status, bad.value.extensions.get("attempts_left")))
    assert statuses == [(422, 2), (422, 1), (403, 0)]
    purposes = [(r["outcome"], r["purpose"]) for r in world.audit()
                if r["resource_id"] == accepted["id"] and r["resource_type"] == "privacy_request"]
    assert purposes.count(("denied", "data subject request verification (wrong code)")) == 3
    assert ("success", "data subject request canceled (code exhausted)") in purposes
    assert ("success", "data subject request filed (contact)") in purposes
    with pytest.raises(CodeExhausted):
        world.as_(None, None).verify_contact(accepted["id"], code)
    with pytest.raises(ServiceError) as malformed:
        world.as_(None, None).verify_contact(accepted["id"], "12ab")
    assert malformed.value.status == 422 and malformed.value.extensions["errors"][0]["field"] == "code"
    with pytest.raises(ServiceError) as unknown:
        world.as_(None, None).verify_contact(str(uuid.uuid4()), code)
    assert unknown.value.status == 404


def test_the_contact_channel_is_rate_limited_per_client_and_per_address(world):
    ids = [world.as_(None, None, ip="198.51.100.7").contact("same@example.com", "access")["id"] for _ in range(3)]
    stored = {r[0] for r in world.rows("SELECT id FROM privacy_requests")}
    assert ids[0] in stored and ids[1] in stored and ids[2] not in stored  # the third: accepted, nothing sent
    for n in range(2):
        world.as_(None, None, ip="198.51.100.7").contact(f"other{n}@example.com", "access")
    with pytest.raises(ServiceError) as throttled:
        world.as_(None, None, ip="198.51.100.7").contact("more@example.com", "access")
    assert throttled.value.status == 429 and throttled.value.extensions["retry_after"] > 0
    world.as_(None, None, ip="198.51.100.8").contact("more@example.com", "access")  # another client: fine
    world.clock.now = START + timedelta(hours=1)
    world.as_(None, None, ip="198.51.100.7").contact("more2@example.com", "access")  # a new window
    with pytest.raises(ServiceError) as bad:
        world.as_(None, None).contact("not-an-address", "access")
    assert bad.value.extensions["errors"][0]["field"] == "email"


def test_the_read_model_is_rebuilt_identical_from_the_log(world):
    from upgestao_kernel.projections import rebuild, snapshot
    from upgestao_privacy.adapters.request_tables import projection

    first = world.as_(ANA, "attendant").file("deletion")
    confirmation = world.as_(ANA, "attendant").file("confirmation")
    world.as_(DPO, "dpo").start(confirmation["id"])
    world.as_(DPO, "dpo").extend(first["id"], (START + timedelta(days=20)).isoformat(), "volume")
    world.as_(None, None).contact("rebuild@example.com", "access")
    with world.owner.connect() as conn:
        before = snapshot(conn, [projection])
    assert len(before["privacy_requests"]) == 3
    rebuild(world.owner, [projection])
    with world.owner.connect() as conn:
        assert snapshot(conn, [projection]) == before
    # a unit of work that applies the projection itself: the use cases do not apply it a second time
    cases = world.as_(BRUNO, "attendant")
    cases._unit_of_work = lambda: UnitOfWork(world.engine, "privacy", world.context, vault=world.vault,
                                             projections=[projection])
    assert cases.file("access")["state"] == "pending"
    assert world.rows("SELECT count(*) FROM privacy_requests")[0][0] == 4


def test_sharing_info_names_each_recipient_with_its_privacy_policy(world, audit_record):
    from upgestao_privacy.adapters.audit_store import append
    from upgestao_privacy.service_layer.ingest import parse

    shared = parse(audit_record(service="integrations", action="share", resource_type="customer", subject_id=ANA,
                                fields=("email", "full_name"), purpose="crm sync", recipient="crm-parceiro"))
    with world.owner.begin() as conn:
        append(conn, [shared], START)
    world.settings = RequestSettings(third_party_policies={"crm-parceiro": "https://parceiro.example/privacidade"})
    request = world.as_(ANA, "attendant").file("sharing_info")
    answer = world.as_(DPO, "dpo").start(request["id"])["answer"]
    assert answer["kind"] == "sharing_info"
    [recipient] = answer["recipients"]
    assert (recipient["recipient"], recipient["service"], recipient["fields"], recipient["count"]) == (
        "crm-parceiro", "integrations", ["email", "full_name"], 1)
    assert recipient["privacy_policy_url"] == "https://parceiro.example/privacidade"
    confirmation = world.as_(ANA, "attendant").file("confirmation")
    assert world.as_(DPO, "dpo").start(confirmation["id"])["answer"]["holds_data"] is True
