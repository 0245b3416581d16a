"""The use cases of corrections, policy versions and consents on the fake unit of work (no broker, no
database): permissions and refusals (audited as denied), what is sealed, published and audited, the notices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from upgestao_kernel.context import RequestContext
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.fakes import FakeUnitOfWork, FakeVault, MemoryStore
from upgestao_privacy.service_layer import consents, corrections, policies
from upgestao_privacy.service_layer.corrections import AreaDeps
from upgestao_privacy.service_layer.notices import NoticeDeps

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
REQUESTER = "11111111-1111-4111-8111-111111111111"
DPO = "22222222-2222-4222-8222-222222222222"
OTHER = "33333333-3333-4333-8333-333333333333"
PERMISSIONS = {"dpo": frozenset({"privacy.self", "privacy.review", "privacy.policies"}),
               "attendant": frozenset({"privacy.self"})}


class FakeIdentity:
    def __init__(self, users: list[str] | None = None) -> None:
        self.applied: list[tuple] = []
        self.users = users or []

    def apply_correction(self, subject_id, changes, correction_id):
        self.applied.append((subject_id, changes, correction_id))
        return {"changed": sorted(changes)}

    def contacts(self, ids):
        return {"items": {i: {"to": f"{i[:4]}@example.com", "name": "Nome", "locale": "pt-BR"}
                          for i in ids if i in self.users or i == REQUESTER}}

    def subject_ids(self, criterion, limit, cursor):
        start = int(cursor or 0)
        page = self.users[start:start + limit]
        return {"items": page, "next": str(start + limit) if start + limit < len(self.users) else None}


@pytest.fixture
def world():
    store = MemoryStore(service="privacy")
    vault = FakeVault()
    identity = FakeIdentity()

    def deps(actor: str | None, role: str = "attendant", source_ip: str | None = None) -> AreaDeps:
        context = RequestContext(request_id="req-1", actor_id=actor, actor_role=role if actor else None,
                                 source_ip=source_ip)
        return AreaDeps(unit_of_work=lambda: FakeUnitOfWork(store, context, vault=vault),
                        permissions_of=lambda r: PERMISSIONS.get(r or "", frozenset()), identity=identity,
                        now=lambda: NOW)

    return store, deps, identity


def status_of(exc: pytest.ExceptionInfo) -> int:
    return exc.value.status


def test_a_correction_is_sealed_reviewed_by_another_and_applied_as_them(world):
    store, deps, identity = world
    filed = corrections.file(deps(REQUESTER), {"full_name": "Ana Nova"}, "typo")
    assert filed["status"] == "pending" and filed["fields"] == ["full_name"]
    [event] = store.stream(f"correction-{filed['id']}")
    assert "Ana Nova" not in str(event.data) and "typo" not in str(event.data)
    assert store.published("privacy.correction_filed.v1")[0]["data"]["fields"] == ["full_name"]
    assert store.audit_records(action="create", resource_type="correction", subject_id=REQUESTER)

    with pytest.raises(ServiceError) as caught:
        corrections.approve(deps(OTHER), filed["id"])  # no privacy.review
    assert status_of(caught) == 403
    with pytest.raises(ServiceError) as caught:
        corrections.approve(deps(REQUESTER, "dpo"), filed["id"])  # a dpo's own correction
    assert status_of(caught) == 403
    assert identity.applied == []
    assert len(store.audit_records(outcome="denied", resource_type="correction")) == 2

    approved = corrections.approve(deps(DPO, "dpo"), filed["id"])
    assert approved["status"] == "approved"
    assert identity.applied == [(REQUESTER, {"full_name": "Ana Nova"}, filed["id"])]
    assert store.audit_records(action="read", purpose=f"correction {filed['id']}")
    assert store.audit_records(action="update", resource_type="correction", purpose="correction approved")
    with pytest.raises(ServiceError) as caught:
        corrections.deny(deps(DPO, "dpo"), filed["id"], "late")
    assert status_of(caught) == 409


def test_visibility_and_the_denial_notice(world):
    store, deps, identity = world
    filed = corrections.file(deps(REQUESTER), {"email": "novo@example.com"})
    assert corrections.list_page(deps(OTHER))["items"] == []
    with pytest.raises(ServiceError) as caught:
        corrections.get(deps(OTHER), filed["id"])
    assert status_of(caught) == 404
    assert corrections.get(deps(REQUESTER), filed["id"])["changes"] == {"email": "novo@example.com"}
    assert [c["id"] for c in corrections.list_page(deps(DPO, "dpo"), status="pending")["items"]] == [filed["id"]]
    with pytest.raises(ServiceError) as caught:
        corrections.deny(deps(DPO, "dpo"), filed["id"], None)
    assert status_of(caught) == 422 and caught.value.extensions["errors"][0]["field"] == "reason"
    corrections.deny(deps(DPO, "dpo"), filed["id"], "Não confirmado")
    [decided] = [e for e in store.events if e.type == "privacy.correction_decided.v1"]
    assert "Não confirmado" not in str(store.published("privacy.correction_decided.v1"))

    uow = deps(None).unit_of_work()
    with uow:
        notice = corrections.decision_notice(uow, decided, None, None, NoticeDeps(NOW, identity))
        with pytest.raises(ServiceError):
            corrections.decision_notice(uow, decided, OTHER, None, NoticeDeps(NOW, identity))
    assert notice["kind"] == "correction_decided" and notice["campaign_id"] is None and notice["next"] is None
    assert notice["data"] == {"correction_id": filed["id"], "fields": ["email"], "decision": "denied",
                              "reason": "Não confirmado"}
    assert [r["id"] for r in notice["recipients"]] == [REQUESTER]


def test_policy_seed_publication_campaign_and_acceptance(world):
    store, deps, identity = world
    assert policies.current(deps(None))["version"] == "2023-09-05"
    assert policies.status(deps(REQUESTER))["policy_acceptance_required"] == {"version": "2023-09-05"}
    with pytest.raises(ServiceError) as caught:
        policies.publish(deps(REQUESTER), {"version": "v2", "effective_at": NOW.isoformat(), "text": "t",
                                           "summary": "s"})
    assert status_of(caught) == 403
    published = policies.publish(deps(DPO, "dpo"), {"version": "v2", "effective_at": (NOW - timedelta(hours=1))
                                                    .isoformat(), "text": "Texto", "summary": "Resumo"})
    assert published["announced"] is True
    assert policies.status(deps(REQUESTER))["policy_acceptance_required"] == {"version": "v2"}
    assert policies.accept(deps(REQUESTER), "v2")["recorded"] is True
    assert policies.status(deps(REQUESTER))["policy_acceptance_required"] is None
    assert store.audit_records(action="update", resource_type="policy_acceptance", subject_id=REQUESTER)

    identity.users = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(250)]
    [event] = [e for e in store.events if e.type == "privacy.policy_published.v1" and e.data["announced"]]
    seen, cursor = [], None
    with deps(None).unit_of_work() as uow:
        while True:
            notice = policies.published_notice(uow, event, None, cursor, NoticeDeps(NOW, identity))
            assert notice["campaign_id"] == published["campaign_id"] and notice["data"]["version"] == "v2"
            seen += [r["id"] for r in notice["recipients"]]
            cursor = notice["next"]
            if cursor is None:
                break
    assert seen == identity.users
    [seed] = [e for e in store.events if e.type == "privacy.policy_published.v1" and not e.data["announced"]]
    with deps(None).unit_of_work() as uow, pytest.raises(ServiceError):
        policies.published_notice(uow, seed, None, None, NoticeDeps(NOW, identity))  # the seed is announced to nobody


def test_consents_throttle_visitors_and_a_revocation_withdraws_everything(world, monkeypatch):
    store, deps, _ = world
    from upgestao_privacy.domain.contact import Budget

    monkeypatch.setattr(consents, "VISITOR_BUDGET", Budget(limit=1, window_s=60))
    first = consents.choose(deps(None, source_ip="203.0.113.7"), {"purposes": {"analytics": True},
                                                                    "policy_version": "2023-09-05"})
    with pytest.raises(ServiceError) as caught:
        consents.choose(deps(None, source_ip="203.0.113.7"), {"purposes": {"analytics": False},
                                                                "policy_version": "2023-09-05",
                                                                "visitor_id": first["visitor_id"]})
    assert status_of(caught) == 429
    consents.choose(deps(None, source_ip="198.51.100.1"), {"purposes": {"analytics": False},
                                                             "policy_version": "2023-09-05",
                                                             "visitor_id": first["visitor_id"]})
    assert [h["purposes"]["analytics"] for h in consents.history(deps(None), first["visitor_id"])["history"]] == [
        False, True]

    consents.choose(deps(REQUESTER), {"purposes": {"analytics": True, "personalisation": True},
                                      "policy_version": "2023-09-05"})
    with deps(None).unit_of_work() as uow:
        assert consents.revoke_for_request(uow, "req-9", REQUESTER) == ["analytics", "personalisation"]
    with deps(None).unit_of_work() as uow:
        assert consents.revoke_for_request(uow, "req-9", REQUESTER) == []  # nothing left to withdraw
    mine = consents.history(deps(REQUESTER))
    assert mine["purposes"] == {"essential": True, "analytics": False, "personalisation": False}
    assert mine["history"][0]["source"] == "revocation_request" and mine["history"][0]["request_id"] == "req-9"
    assert first["visitor_id"] not in str(store.events) and first["visitor_id"] not in str(store.outbox)
