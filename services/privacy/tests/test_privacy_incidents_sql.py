"""The incidents' read model on PostgreSQL, as the runtime role: the use cases on the kernel's real unit of
work and the SQL repository (migration 0008), and an incident that cannot be deleted (no DELETE, no TRUNCATE
granted: LGPD art. 48, kept at least 5 years)."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from upgestao_kernel.context import RequestContext
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.unit_of_work import UnitOfWork
from upgestao_kernel.vault import MasterKeyring, Vault
from upgestao_privacy.adapters.incident_repository import sql_incident_repositories
from upgestao_privacy.service_layer.incidents import IncidentCases, IncidentDeps, build_breach_notice

pytestmark = pytest.mark.infra

DPO = RequestContext(request_id="r1", actor_id=str(uuid.uuid4()), actor_role="dpo")
NOTIFIER = RequestContext(request_id="r2", caller_service="notifier")
SECRET = "The account of João Pereira was opened"


class Directory:
    def __init__(self, ids):
        self.ids = ids

    def subject_ids(self, criterion, limit, cursor):
        start = int(cursor or 0)
        return {"items": self.ids[start:start + limit], "next": str(start + limit) if start + limit < len(self.ids)
                else None}

    def contacts(self, ids):
        return {"items": {i: {"to": f"p{n}@example.com", "name": None, "locale": "pt-BR"} for n, i in enumerate(ids)}}


def test_record_confirm_and_notice_on_postgres_and_no_delete(runtime_database, monkeypatch):
    monkeypatch.setattr("upgestao_privacy.service_layer.incidents.RESOLVE_PAGE", 7)
    _, runtime_url = runtime_database
    engine = sa.create_engine(runtime_url)
    vault = Vault(MasterKeyring(b"\x11" * 32), b"\x22" * 32)
    people = [str(uuid.uuid4()) for _ in range(25)]
    directory = Directory(people)

    def uow(context=DPO):
        return UnitOfWork(engine, "privacy", context, vault=vault, repositories=sql_incident_repositories)

    now = datetime.now(UTC)
    cases = IncidentCases(IncidentDeps(unit_of_work=uow, permissions_of=lambda r: frozenset({"privacy.incidents"}),
                                       now=lambda: now, identity=directory, messaging=None, notifier=None))
    incident = cases.record({
        "nature_of_data": ["E-mail addresses"], "categories": ["contact"], "affected": {"kind": "every_user"},
        "people_affected": "Every user", "technical_measures": "Encryption at rest", "risks": SECRET,
        "measures_taken": "Keys rotated", "what_to_do": ["Beware of phishing"], "dpo_contact": "dpo@example.com",
        "occurred_at": (now - timedelta(hours=3)).isoformat(), "detected_at": (now - timedelta(hours=1)).isoformat()})
    confirmed = cases.confirm(incident["id"])
    assert confirmed["affected_count"] == 25 and confirmed["state"] == "confirmed"
    assert [i["id"] for i in cases.list(limit=5)["items"]][0] == incident["id"]

    seen, cursor = [], None
    envelope = type("E", (), {"event_id": confirmed["notice_id"]})()
    while True:
        with uow(NOTIFIER) as notifier_uow:
            page = build_breach_notice(notifier_uow, envelope, None, cursor, type("D", (), {"identity": directory}))
        seen += [r["id"] for r in page["recipients"]]
        if not (cursor := page["next"]):
            break
    assert seen == people and page["data"]["risks"] == SECRET
    deps = type("D", (), {"identity": directory})
    with uow(NOTIFIER) as notifier_uow:  # a retry to one recipient
        assert [r["id"] for r in build_breach_notice(notifier_uow, envelope, people[3], None, deps)["recipients"]] \
            == [people[3]]
    with pytest.raises(ServiceError) as stranger, uow(NOTIFIER) as notifier_uow:
        build_breach_notice(notifier_uow, envelope, str(uuid.uuid4()), None, deps)
    assert stranger.value.status == 404

    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT sealed FROM privacy_incidents")).scalar_one()
        assert SECRET not in json.dumps(stored)
    for statement in ("DELETE FROM privacy_incidents", "DELETE FROM privacy_incident_people",
                      "TRUNCATE privacy_incidents"):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), engine.begin() as conn:
            conn.execute(sa.text(statement))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM privacy_incident_people")).scalar_one() == 25
    engine.dispose()


def test_two_confirmations_at_once_request_one_notice(runtime_database):
    _, runtime_url = runtime_database
    engine = sa.create_engine(runtime_url)
    vault = Vault(MasterKeyring(b"\x11" * 32), b"\x22" * 32)
    both_resolving = threading.Barrier(2, timeout=10)

    class SlowDirectory(Directory):
        def subject_ids(self, criterion, limit, cursor):
            both_resolving.wait()  # each confirmation has read the draft before either appends
            return super().subject_ids(criterion, limit, cursor)

    now = datetime.now(UTC)
    cases = IncidentCases(IncidentDeps(
        unit_of_work=lambda: UnitOfWork(engine, "privacy", DPO, vault=vault, repositories=sql_incident_repositories),
        permissions_of=lambda r: frozenset({"privacy.incidents"}), now=lambda: now,
        identity=SlowDirectory([str(uuid.uuid4()) for _ in range(3)]), messaging=None, notifier=None))
    incident = cases.record({
        "nature_of_data": ["Names"], "categories": ["identification"], "affected": {"kind": "every_customer"},
        "people_affected": "Customers", "technical_measures": "Encryption", "risks": "Phishing",
        "measures_taken": "Rotated", "what_to_do": ["Nothing"], "dpo_contact": "dpo@example.com",
        "occurred_at": now.isoformat(), "detected_at": now.isoformat()})
    outcomes: list = []

    def confirm() -> None:
        try:
            outcomes.append(cases.confirm(incident["id"])["affected_count"])
        except ServiceError as exc:
            outcomes.append(exc.status)

    threads = [threading.Thread(target=confirm) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(outcomes) == [3, 409]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM events WHERE type = 'privacy.breach_notice_requested.v1'")
                            ).scalar_one() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM privacy_incident_people")).scalar_one() == 3
    engine.dispose()


def test_the_projection_applied_by_the_unit_of_work_or_rebuilt_gives_the_same_rows(runtime_database):
    from upgestao_kernel.projections import rebuild, snapshot
    from upgestao_privacy.adapters.incident_repository import projection

    owner_url, runtime_url = runtime_database
    engine = sa.create_engine(runtime_url)
    vault = Vault(MasterKeyring(b"\x11" * 32), b"\x22" * 32)
    now = datetime.now(UTC)
    cases = IncidentCases(IncidentDeps(  # the unit of work applies the projection (named as the service would)
        unit_of_work=lambda: UnitOfWork(engine, "privacy", DPO, projections=[projection], vault=vault,
                                        repositories=sql_incident_repositories),
        permissions_of=lambda r: frozenset({"privacy.incidents"}), now=lambda: now,
        identity=Directory([str(uuid.uuid4()) for _ in range(4)]), messaging=None, notifier=None))
    incident = cases.record({
        "nature_of_data": ["Names"], "categories": ["identification"], "affected": {"kind": "every_user"},
        "people_affected": "Users", "technical_measures": "Encryption", "risks": "Phishing",
        "measures_taken": "Rotated", "what_to_do": ["Nothing"], "dpo_contact": "dpo@example.com",
        "occurred_at": now.isoformat(), "detected_at": now.isoformat()})
    assert cases.confirm(incident["id"])["affected_count"] == 4  # projected once: no duplicate key
    with engine.connect() as conn:
        live = snapshot(conn, [projection])
    owner = sa.create_engine(owner_url)  # (rebuild empties the tables: the owner's act, never the runtime's)
    rebuild(owner, [projection])
    with engine.connect() as conn:
        assert snapshot(conn, [projection]) == live
    owner.dispose()
    engine.dispose()
