"""Service tests of corrections, policy versions and cookie consents: privacy on real RabbitMQ and PostgreSQL
(as its runtime role, so the grants of migration 0007's tables are exercised), a stand-in identity that
grants the privacy permissions and records what privacy asks of it."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from nameko.rpc import rpc
from nameko.standalone.rpc import ServiceRpcProxy
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.testing_tokens import acting_as

pytestmark = pytest.mark.infra

APPLIED: list[dict] = []


class ConsentIdentity:
    """What privacy asks of identity here: role permissions, and applying a correction."""

    name = "identity"

    @rpc
    def role_permissions(self) -> dict:
        return {"roles": {"dpo": ["audit.read", "privacy.self", "privacy.review", "privacy.policies",
                                  "privacy.incidents"],
                          "attendant": ["privacy.self"], "guest": []}}

    @rpc
    def apply_correction(self, subject_id: str, changes: dict, correction_id: str) -> dict:
        APPLIED.append({"subject_id": subject_id, "changes": changes, "correction_id": correction_id})
        return {"fields": sorted(changes)}


@pytest.fixture
def fake_identity(run_service, tmp_path):  # (overrides the conftest's: this area needs more of identity)
    APPLIED.clear()
    return run_service(ConsentIdentity, None, database_url=f"sqlite:///{tmp_path / 'identity.sqlite3'}")


@pytest.fixture
def call(privacy):
    """``call(actor_id, role)``: a proxy acting with a signed token for that user (``None``: anonymous)."""
    opened = []

    def make(actor_id: str | None = None, role: str = "attendant"):
        data = acting_as(actor_id, role) if actor_id else {}
        ctx = ServiceRpcProxy("privacy", privacy.config, context_data=data, timeout=15)
        opened.append(ctx)
        return ctx.start()

    yield make
    for ctx in opened:
        ctx.stop()


def uid() -> str:
    return str(uuid.uuid4())



def test_correction_filed_approved_by_another_reviewer_and_never_by_oneself(privacy, call):
    requester, dpo, other_dpo = uid(), uid(), uid()
    filed = call(requester).file_correction({"full_name": "Ana Nova", "email": "ana.nova@example.com"}, "typo")
    assert filed["fields"] == ["email", "full_name"] and filed["status"] == "pending"
    assert filed["changes"] is None  # not echoed back: GET shows them (opened, audited)
    # the values are sealed in the events and the read model
    with privacy.engine.connect() as conn:
        stored = " ".join(str(r) for r in conn.execute(sa.text("SELECT data FROM events")).all())
        stored += " ".join(str(r) for r in conn.execute(sa.text("SELECT * FROM privacy_corrections")).all())
    assert "Ana Nova" not in stored and "ana.nova@example.com" not in stored

    # the requester sees their own; another user sees nothing and cannot read it
    assert [c["id"] for c in call(requester).corrections()["items"]] == [filed["id"]]
    assert call(uid()).corrections()["items"] == []
    with pytest.raises(ServiceError) as caught:
        call(uid()).correction(filed["id"])
    assert caught.value.status == 404

    # a non-reviewer cannot approve; a dpo who files cannot approve their own
    with pytest.raises(ServiceError) as caught:
        call(uid()).approve_correction(filed["id"])
    assert caught.value.status == 403
    own = call(dpo, "dpo").file_correction({"phone": "+5511999990000"})
    with pytest.raises(ServiceError) as caught:
        call(dpo, "dpo").approve_correction(own["id"])
    assert caught.value.status == 403
    with pytest.raises(ServiceError) as caught:
        call(dpo, "dpo").deny_correction(own["id"], "no")
    assert caught.value.status == 403
    assert APPLIED == []

    # the reviewer sees every pending one, values opened; approves: identity applies it
    pending = call(other_dpo, "dpo").corrections(status="pending")["items"]
    assert {filed["id"], own["id"]} <= {c["id"] for c in pending}
    approved = call(other_dpo, "dpo").approve_correction(filed["id"])
    assert approved["status"] == "approved" and approved["reviewer_id"] == other_dpo
    assert APPLIED == [{"subject_id": requester, "changes": {"email": "ana.nova@example.com", "full_name": "Ana Nova"},
                        "correction_id": filed["id"]}]
    with pytest.raises(ServiceError) as caught:
        call(other_dpo, "dpo").deny_correction(filed["id"], "late")
    assert caught.value.status == 409

    # a denial needs a reason
    with pytest.raises(ServiceError) as caught:
        call(other_dpo, "dpo").deny_correction(own["id"], "  ")
    assert caught.value.status == 422 and caught.value.extensions["errors"][0]["field"] == "reason"
    denied = call(other_dpo, "dpo").deny_correction(own["id"], "O número não é seu.")
    assert denied["status"] == "denied" and denied["decision_reason"] == "O número não é seu."
    # listed afterwards (every correction, as the queue shows them): the denial's reason opens beside the
    # requester's own (both sealed as "reason": a 500 in the route-by-role test when they were mixed up)
    [listed] = [c for c in call(other_dpo, "dpo").corrections()["items"] if c["id"] == own["id"]]
    assert listed["decision_reason"] == "O número não é seu." and listed["status"] == "denied"
    assert listed["changes"] == {"phone": "+5511999990000"} and listed["reason"] is None
    with privacy.engine.connect() as conn:
        types = [r[0] for r in conn.execute(sa.text(
            "SELECT type FROM events WHERE stream_id = :s ORDER BY version"), {"s": f"correction-{own['id']}"})]
        published = [r[0] for r in conn.execute(sa.text("SELECT body FROM outbox WHERE body::text LIKE :t"),
                                                {"t": "%correction_decided%"})]
    assert types == ["privacy.correction_filed.v1", "privacy.correction_decided.v1"]
    assert published and all("O número" not in str(body) for body in published)


def test_bad_correction_input_is_named(privacy, call):
    with pytest.raises(ServiceError) as caught:
        call(uid()).file_correction({"role": "admin"})
    assert caught.value.status == 422 and caught.value.extensions["errors"][0]["field"] == "changes.role"
    with pytest.raises(ServiceError) as caught:
        call(uid(), "guest").file_correction({"full_name": "X"})
    assert caught.value.status == 403
    with pytest.raises(ServiceError) as caught:
        call().file_correction({"full_name": "X"})
    assert caught.value.status == 403


def test_policy_seeded_published_and_accepted(privacy, call):
    anonymous = call()
    current = anonymous.current_policy()
    assert current["version"] == "2023-09-05" and current["text"].startswith("Política de Privacidade do UpGestão")
    user, dpo = uid(), uid()
    assert call(user).policy_status()["policy_acceptance_required"] == {"version": "2023-09-05"}
    assert call(user).accept_policy("2023-09-05")["recorded"] is True
    assert call(user).accept_policy("2023-09-05")["recorded"] is False
    assert call(user).policy_status()["policy_acceptance_required"] is None

    with pytest.raises(ServiceError) as caught:
        call(user).publish_policy({"version": "2026-12-01", "effective_at": "2026-01-01T00:00:00-03:00",
                                   "text": "Nova", "summary": "Resumo"})
    assert caught.value.status == 403
    published = call(dpo, "dpo").publish_policy({"version": "2026-12-01", "effective_at": "2026-01-01T00:00:00-03:00",
                                                 "text": "Nova política", "summary": "O que mudou"})
    assert published["version"] == "2026-12-01" and published["announced"] is True
    with pytest.raises(ServiceError) as caught:
        call(dpo, "dpo").publish_policy({"version": "2026-12-01", "effective_at": "2026-01-01T00:00:00-03:00",
                                         "text": "Outra", "summary": "x"})
    assert caught.value.status == 409
    with pytest.raises(ServiceError) as caught:
        call(dpo, "dpo").publish_policy({"version": "2099-01-01", "effective_at": "2099-01-01",
                                         "text": "x", "summary": "x"})
    assert caught.value.status == 422 and caught.value.extensions["errors"][0]["field"] == "effective_at"
    future = call(dpo, "dpo").publish_policy({"version": "2099-01-01", "effective_at": "2099-01-01T00:00:00+00:00",
                                              "text": "Futura", "summary": "Futura"})
    assert future["version"] == "2099-01-01"

    assert anonymous.current_policy()["version"] == "2026-12-01"  # the future one is not in effect yet
    assert [(v["version"], v["current"]) for v in anonymous.policy_versions()["items"]] == [
        ("2099-01-01", False), ("2026-12-01", True), ("2023-09-05", False)]
    assert call(user).policy_status()["policy_acceptance_required"] == {"version": "2026-12-01"}
    with pytest.raises(ServiceError) as caught:
        call(user).accept_policy("2099-01-01")
    assert caught.value.status == 409
    with pytest.raises(ServiceError) as caught:
        call(user).accept_policy("1999-01-01")
    assert caught.value.status == 404
    call(user).accept_policy("2026-12-01")
    assert call(user).policy_status()["policy_acceptance_required"] is None
    assert [a["version"] for a in call(user).policy_acceptances()["items"]] == ["2026-12-01", "2023-09-05"]
    with privacy.engine.connect() as conn:
        announced = conn.execute(sa.text("SELECT count(*) FROM outbox WHERE body::text LIKE :t"),
                                 {"t": "%privacy.policy_published.v1%"}).scalar()
    assert announced == 3  # the seed, and the two versions (the seed's says announced: false)


def test_consents_of_a_user_and_of_a_visitor(privacy, call):
    user = uid()
    with pytest.raises(ServiceError) as caught:
        call(user).put_consents({"purposes": {"essential": False}, "policy_version": "2023-09-05"})
    assert caught.value.extensions["errors"][0]["field"] == "purposes.essential"
    with pytest.raises(ServiceError) as caught:
        call(user).put_consents({"purposes": {"analytics": True}, "policy_version": "1999-01-01"})
    assert caught.value.extensions["errors"][0]["field"] == "policy_version"

    assert call(user).consents()["purposes"] == {"essential": True, "analytics": False, "personalisation": False}
    first = call(user).put_consents({"purposes": {"analytics": True, "personalisation": True},
                                     "policy_version": "2023-09-05"})
    assert first["recorded"] and first["purposes"] == {"essential": True, "analytics": True, "personalisation": True}
    assert not call(user).put_consents({"purposes": {"analytics": True}, "policy_version": "2023-09-05"})["recorded"]
    call(user).put_consents({"purposes": {"analytics": False}, "policy_version": "2023-09-05"})
    mine = call(user).consents()
    assert mine["purposes"] == {"essential": True, "analytics": False, "personalisation": True}
    assert [h["changed"] for h in mine["history"]] == [["analytics"], ["analytics", "personalisation"]]
    assert call(uid()).consents()["history"] == []  # another user sees only their own (nothing)

    visitor = call()
    issued = visitor.put_consents({"purposes": {"analytics": True}, "policy_version": "2023-09-05"})
    vid = issued["visitor_id"]
    assert issued["holder_kind"] == "visitor" and uuid.UUID(vid).version == 4
    visitor.put_consents({"purposes": {"analytics": False}, "policy_version": "2023-09-05", "visitor_id": vid})
    history = visitor.consents(vid)
    assert [h["purposes"]["analytics"] for h in history["history"]] == [False, True]
    assert visitor.consents(str(uuid.uuid4()))["history"] == []
    not_v4 = user[:14] + "1" + user[15:]  # the version digit (a random "-4" elsewhere made this flaky)
    for bad in ("not-an-id", vid.upper(), not_v4):
        with pytest.raises(ServiceError) as caught:
            visitor.consents(bad)
        assert caught.value.status == 422 and caught.value.extensions["errors"][0]["field"] == "visitor_id"
    with pytest.raises(ServiceError) as caught:
        visitor.consents()
    assert caught.value.status == 422
    with privacy.engine.connect() as conn:
        texts = " ".join(str(r) for r in conn.execute(sa.text("SELECT stream_id, data FROM events")).all())
        texts += " ".join(str(r) for r in conn.execute(sa.text("SELECT body FROM outbox")).all())
    assert vid not in texts  # a visitor id is the visitor's secret: never stored, never published


def test_anonymous_choices_are_throttled_per_client_address(privacy, call, monkeypatch):
    from upgestao_privacy.domain.contact import Budget
    from upgestao_privacy.service_layer import consents

    monkeypatch.setattr(consents, "VISITOR_BUDGET", Budget(limit=2, window_s=600))
    visitor = call()
    for _ in range(2):
        visitor.put_consents({"purposes": {"analytics": True}, "policy_version": "2023-09-05"})
    with pytest.raises(ServiceError) as caught:
        visitor.put_consents({"purposes": {"analytics": True}, "policy_version": "2023-09-05"})
    assert caught.value.status == 429 and caught.value.extensions["retry_after"] > 0
    # a signed-in user is not a visitor: not counted
    call(uid()).put_consents({"purposes": {"analytics": True}, "policy_version": "2023-09-05"})


def test_every_read_model_rebuilds_from_the_log_to_the_same_state(privacy, call):
    from upgestao_kernel.projections import rebuild, snapshot
    from upgestao_privacy.adapters.projections import projections

    requester, dpo = uid(), uid()
    approved = call(requester).file_correction({"full_name": "Bia"})
    call(dpo, "dpo").approve_correction(approved["id"])
    call(requester).file_correction({"phone": "+5511988887777"}, "mudei")
    call(dpo, "dpo").publish_policy({"version": "r2", "effective_at": "2026-01-01T00:00:00+00:00", "text": "T",
                                     "summary": "S"})
    call(requester).accept_policy("r2")
    # the other areas' read models too: a request taken through two transitions, an incident recorded
    filed = call(requester).file_request("confirmation")
    call(requester).cancel_request(filed["id"], "changed my mind")
    call(dpo, "dpo").incident_record({
        "nature_of_data": ["E-mail addresses"], "categories": ["contact"],
        "affected": {"kind": "ids", "ids": [requester]}, "people_affected": "One user",
        "technical_measures": "Encrypted at rest", "risks": "Phishing", "measures_taken": "Link revoked",
        "what_to_do": ["Ignore e-mails asking for codes"], "dpo_contact": "dpo@upgestao.example",
        "occurred_at": "2026-11-30T10:00:00+00:00", "detected_at": "2026-11-30T11:00:00+00:00"})
    every = projections()
    with privacy.engine.connect() as conn:
        before = snapshot(conn, every)
    assert len(before["privacy_corrections"]) == 2 and len(before["privacy_policy_versions"]) == 2
    assert len(before["privacy_requests"]) == 1 and len(before["privacy_incidents"]) == 1
    rebuild(privacy.engine, every)  # (as the owner: a rebuild empties the tables first)
    with privacy.engine.connect() as conn:
        assert snapshot(conn, every) == before
