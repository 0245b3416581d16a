"""The breach procedure's use cases on the fake unit of work: record, list, show with progress, confirm, the
notice; every refusal (403 audited as denied, precise 422s, 409 on a second confirmation)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from upgestao_kernel.context import RequestContext
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.fakes import FakeUnitOfWork, FakeVault, MemoryStore
from upgestao_privacy.adapters.incident_repository import memory_incident_repositories
from upgestao_privacy.domain.incidents import SEALED_FIELDS
from upgestao_privacy.service_layer.incidents import IncidentCases, IncidentDeps, build_breach_notice
from upgestao_privacy.service_layer.notices import BUILDERS

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # a Wednesday
DPO = RequestContext(request_id="r1", actor_id="dpo-1", actor_role="dpo")
AGENT = RequestContext(request_id="r2", actor_id="agent-1", actor_role="agent")
NOTIFIER = RequestContext(request_id="r3", caller_service="notifier")
PERMS = {"dpo": frozenset({"privacy.incidents", "notifications.read"}), "agent": frozenset({"privacy.self"})}
NAMED = "Maria da Silva's account was used"


class FakeIdentity:
    def __init__(self, users: list[str], customers: list[str]) -> None:
        self.users, self.customers = users, customers
        self.calls: list = []

    def subject_ids(self, criterion, limit, cursor):
        self.calls.append(("subject_ids", criterion["kind"], cursor))
        ids = self.users if criterion["kind"] == "every_user" else self.customers
        start = int(cursor or 0)
        page = ids[start:start + limit]
        return {"items": page, "next": str(start + limit) if start + limit < len(ids) else None}

    def contacts(self, ids):
        self.calls.append(("contacts", len(ids)))
        return {"items": {i: {"to": f"{i[:8]}@example.com", "name": None, "locale": "en"} for i in ids
                          if not i.startswith("0")}}


class FakeMessaging:
    def customer_ids(self, channel, limit, cursor):
        return {"items": [str(uuid.UUID(int=7))], "next": None}


class FakeNotifier:
    def __init__(self) -> None:
        self.deliveries_of: dict[str, list[dict]] = {}

    def campaign(self, campaign_id):
        items = self.deliveries_of.get(campaign_id)
        if not items:
            raise ServiceError("not-found", "no campaign", 404)
        counts: dict[str, int] = {}
        for d in items:
            counts[d["status"]] = counts.get(d["status"], 0) + 1
        return {"campaign_id": campaign_id, "total": len(items), "counts": counts}

    def deliveries(self, filters, limit, cursor):
        return {"items": self.deliveries_of.get(filters["campaign_id"], [])[:limit], "next_cursor": None}


@pytest.fixture
def world():
    store = MemoryStore(service="privacy")
    vault = FakeVault()
    clock = {"now": NOW}
    users = [str(uuid.uuid4()) for _ in range(5)]
    identity = FakeIdentity(users, [str(uuid.uuid4()) for _ in range(3)])
    notifier = FakeNotifier()

    def cases(context: RequestContext) -> IncidentCases:
        return IncidentCases(IncidentDeps(
            unit_of_work=lambda: FakeUnitOfWork(store, context, vault=vault,
                                                repositories=memory_incident_repositories),
            permissions_of=lambda role: PERMS.get(role, frozenset()), now=lambda: clock["now"], identity=identity,
            messaging=FakeMessaging(), notifier=notifier))

    return {"store": store, "vault": vault, "clock": clock, "cases": cases, "identity": identity,
            "notifier": notifier, "users": users}


def body(**overrides):
    base = {
        "nature_of_data": ["Names and e-mail addresses"], "categories": ["identification", "contact"],
        "affected": {"kind": "every_user"}, "people_affected": "Every user of the platform",
        "technical_measures": "Data encrypted at rest with per-person keys", "risks": NAMED,
        "delay_reasons": None, "measures_taken": "Credentials rotated", "what_to_do": ["Change your password"],
        "dpo_contact": "dpo@upgestao.example", "occurred_at": (NOW - timedelta(days=1)).isoformat(),
        "detected_at": (NOW - timedelta(hours=2)).isoformat(),
    }
    base.update(overrides)
    return base


def test_record_seals_every_text_and_publishes_no_text(world):
    incident = world["cases"](DPO).record(body())
    assert incident["state"] == "draft" and incident["risks"] == NAMED
    assert incident["deadline"]["status"] == "on_time"
    assert incident["deadline"]["due_at"] == "2026-12-08T03:00:00+00:00"  # Thu, Fri, Mon: close of Monday BRT
    recorded = datetime.fromisoformat(incident["recorded_at"])  # the event's own time, not the fake clock
    assert incident["keep_until"] == recorded.replace(year=recorded.year + 5).isoformat()
    stored = world["store"].events[0].data
    assert NAMED not in json.dumps(stored) and set(stored["sealed"]) == set(SEALED_FIELDS)
    published = world["store"].published("privacy.incident_recorded.v1")
    assert NAMED not in json.dumps(published)
    assert published[0]["data"]["sealed"] == sorted(SEALED_FIELDS)
    [audit] = world["store"].audit_records(action="create", resource_type="incident")
    assert audit["subject_id"] == incident["id"] and NAMED not in json.dumps(audit)


def test_only_the_dpo_records_lists_reads_and_confirms(world):
    dpo = world["cases"](DPO)
    incident = dpo.record(body())
    agent = world["cases"](AGENT)
    for call in (lambda: agent.record(body()), lambda: agent.list(), lambda: agent.get(incident["id"]),
                 lambda: agent.confirm(incident["id"])):
        with pytest.raises(ServiceError) as refused:
            call()
        assert refused.value.status == 403
    assert len(world["store"].audit_records(outcome="denied", actor_id="agent-1")) == 4
    assert not world["store"].published("privacy.breach_notice_requested.v1")


@pytest.mark.parametrize(("change", "field"), [
    ({"categories": ["gossip"]}, "categories.0"),
    ({"affected": {"kind": "everyone"}}, "affected.kind"),
    ({"affected": {"kind": "ids", "ids": ["nope"]}}, "affected.ids.0"),
    ({"affected": {"kind": "channel_customers"}}, "affected.channel"),
    ({"risks": " "}, "risks"),
    ({"what_to_do": []}, "what_to_do"),
    ({"detected_at": (NOW + timedelta(hours=1)).isoformat()}, "detected_at"),
    ({"occurred_at": NOW.isoformat(), "detected_at": (NOW - timedelta(hours=1)).isoformat()}, "occurred_at"),
    ({"occurred_at": "2026-12-01T10:00:00"}, "occurred_at"),
    ({"occurred_at": "0001-01-01T00:00:00+00:00", "detected_at": "0001-01-02T00:00:00+00:00"}, "occurred_at"),
    ({"password": "x"}, "password"),
])
def test_bad_input_is_a_422_naming_the_field(world, change, field):
    with pytest.raises(ServiceError) as refused:
        world["cases"](DPO).record(body(**change))
    assert refused.value.status == 422
    assert refused.value.extensions["errors"][0]["field"] == field


def test_confirm_resolves_every_page_and_requests_one_notice(world, monkeypatch):
    monkeypatch.setattr("upgestao_privacy.service_layer.incidents.RESOLVE_PAGE", 2)
    dpo = world["cases"](DPO)
    incident = dpo.record(body())
    confirmed = dpo.confirm(incident["id"])
    assert confirmed["state"] == "confirmed" and confirmed["affected_count"] == 5
    assert confirmed["deadline"]["status"] == "met"
    [notice] = world["store"].published("privacy.breach_notice_requested.v1")
    assert notice["data"] == {"incident_id": incident["id"], "campaign_id": confirmed["campaign_id"],
                              "recipients": 5}
    with pytest.raises(ServiceError) as again:
        dpo.confirm(incident["id"])
    assert again.value.status == 409
    assert len(world["store"].published("privacy.breach_notice_requested.v1")) == 1
    assert [e for e in world["store"].published() if world["users"][0] in json.dumps(e)] == []  # ids stay inside


def test_explicit_ids_and_a_channel(world):
    dpo = world["cases"](DPO)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    one = dpo.record(body(affected={"kind": "ids", "ids": [a, b, a]}))
    assert dpo.confirm(one["id"])["affected_count"] == 2
    two = dpo.record(body(affected={"kind": "channel_customers", "channel": "whatsapp"}))
    assert dpo.confirm(two["id"])["affected_count"] == 1


def test_late_confirmation_needs_the_reasons_of_the_delay(world):
    dpo = world["cases"](DPO)
    incident = dpo.record(body())
    world["clock"]["now"] = NOW + timedelta(days=10)
    with pytest.raises(ServiceError) as refused:
        dpo.confirm(incident["id"])
    assert refused.value.status == 422 and refused.value.extensions["errors"][0]["field"] == "delay_reasons"
    confirmed = dpo.confirm(incident["id"], "The forensic analysis took a week")
    assert confirmed["deadline"]["status"] == "missed"
    assert dpo.get(incident["id"])["delay_reasons"] == "The forensic analysis took a week"


def test_the_deadline_flags_a_draft_at_risk_then_late(world):
    dpo = world["cases"](DPO)
    incident = dpo.record(body())
    world["clock"]["now"] = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert dpo.get(incident["id"])["deadline"]["status"] == "at_risk"
    world["clock"]["now"] = datetime(2026, 12, 8, 3, 1, tzinfo=UTC)
    assert dpo.list()["items"][0]["deadline"]["status"] == "late"


def test_the_notice_pages_recipients_for_the_notifier_only(world, monkeypatch):
    monkeypatch.setattr("upgestao_privacy.service_layer.incidents.NOTICE_PAGE", 2)
    dpo = world["cases"](DPO)
    incident = dpo.record(body())
    confirmed = dpo.confirm(incident["id"])
    notice_id = confirmed["notice_id"]
    envelope = next(e for e in world["store"].events if e.event_id == notice_id)
    assert BUILDERS["privacy.breach_notice_requested.v1"] is build_breach_notice

    class Deps:
        identity = world["identity"]

    def fetch(context, **kwargs):
        with FakeUnitOfWork(world["store"], context, vault=world["vault"]) as uow:
            return build_breach_notice(uow, envelope, deps=Deps(), **kwargs)

    with pytest.raises(ServiceError) as refused:
        fetch(DPO)
    assert refused.value.status == 403
    seen, cursor = [], None
    while True:
        page = fetch(NOTIFIER, cursor=cursor)
        assert page["kind"] == "breach_notice" and page["campaign_id"] == confirmed["campaign_id"]
        assert page["data"]["risks"] == NAMED and page["data"]["nature_of_data"] == ["Names and e-mail addresses"]
        assert page["data"]["delay_reasons"] is None and page["data"]["dpo_contact"] == "dpo@upgestao.example"
        seen += [r["id"] for r in page["recipients"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(u for u in world["users"] if not u.startswith("0"))
    one = fetch(NOTIFIER, recipient_id=world["users"][1])
    assert [r["id"] for r in one["recipients"]] in ([world["users"][1]], [])
    with pytest.raises(ServiceError) as stranger:
        fetch(NOTIFIER, recipient_id=str(uuid.uuid4()))
    assert stranger.value.status == 404
    assert world["store"].audit_records(action="read", resource_type="notice", purpose="notification")


def test_progress_per_recipient_from_the_notifier(world):
    dpo = world["cases"](DPO)
    incident = dpo.record(body())
    shown = dpo.get(incident["id"])
    assert shown["progress"]["campaign_id"] is None and shown["progress"]["not_yet_queued"] == 0
    confirmed = dpo.confirm(incident["id"])
    assert dpo.get(incident["id"])["progress"]["deliveries_total"] == 0  # the notifier has queued nothing yet
    world["notifier"].deliveries_of[confirmed["campaign_id"]] = [
        {"recipient_id": u, "status": "sent" if i else "soft_failed", "attempts": 1, "last_code": 250,
         "sent_at": None, "updated_at": None} for i, u in enumerate(world["users"])]
    progress = dpo.get(incident["id"])["progress"]
    assert progress["counts"]["sent"] == 4 and progress["counts"]["soft_failed"] == 1
    assert progress["recipients_total"] == 5 and progress["not_yet_queued"] == 0
    assert {r["recipient_id"] for r in progress["recipients"]} == set(world["users"])


def test_unknown_incident_is_404(world):
    dpo = world["cases"](DPO)
    for call in (lambda: dpo.get(str(uuid.uuid4())), lambda: dpo.confirm("not-an-id")):
        with pytest.raises(ServiceError) as missing:
            call()
        assert missing.value.status == 404


def test_the_runtime_role_may_never_delete_an_incident():
    from upgestao_privacy.adapters.database_roles import RUNTIME_PRIVILEGES

    for table in ("privacy_incidents", "privacy_incident_people"):
        assert "SELECT" in RUNTIME_PRIVILEGES[table] and "INSERT" in RUNTIME_PRIVILEGES[table]
        assert not {"DELETE", "TRUNCATE"} & set(RUNTIME_PRIVILEGES[table])


def test_the_read_model_is_the_log_replayed(world):
    """Replaying every incident event into an empty read model gives the rows the use cases left."""
    dpo = world["cases"](DPO)
    dpo.confirm(dpo.record(body())["id"])
    dpo.record(body(affected={"kind": "ids", "ids": [str(uuid.uuid4())]}))
    store = world["store"]
    live = {name: store.rows(name) for name in ("privacy_incidents", "privacy_incident_people")}
    replayed = MemoryStore(service="privacy")
    with FakeUnitOfWork(replayed, DPO, repositories=memory_incident_repositories) as uow:
        uow.incidents.project([e for e in store.events if e.stream_id.startswith("incident-")])
    assert {name: replayed.rows(name) for name in live} == live
