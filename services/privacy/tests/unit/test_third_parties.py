"""The third parties read model's use cases (issue 15, R9.1) on a SQLite connection: an integrations event is
checked before it is kept, an older one never overwrites a newer one, and a summary's shares are named from the
table, else from the setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from upgestao_privacy.adapters.third_party_tables import third_parties
from upgestao_privacy.service_layer.third_parties import (
    MalformedIntegration,
    describe_shares,
    fallback_policies,
    record_integration,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def conn():
    engine = sa.create_engine("sqlite://")
    third_parties.create(engine)
    with engine.begin() as connection:
        yield connection
    engine.dispose()


def event(**over) -> dict:
    return {"integration_id": "int_acme", "name": "CRM Acme", "privacy_policy_url": "https://acme.example/p",
            "fields": ["email"], "events": ["*"], "status": "enabled", **over}


def test_an_integration_is_kept_and_only_a_later_change_replaces_it(conn):
    uow = SimpleNamespace(conn=conn)
    assert record_integration(uow, event(), T0) is True
    assert record_integration(uow, event(name="CRM Acme 2", status="disabled"), T0 + timedelta(minutes=2)) is True
    assert record_integration(uow, event(name="CRM Velho"), T0 + timedelta(minutes=1)) is False
    rows = conn.execute(sa.select(third_parties)).all()
    assert [(r.recipient, r.name, r.status) for r in rows] == [("integration:int_acme", "CRM Acme 2", "disabled")]


@pytest.mark.parametrize(("bad", "field"), [
    ({"integration_id": "int acme"}, "integration_id"), ({"integration_id": None}, "integration_id"),
    ({"name": ""}, "name"), ({"name": "x" * 201}, "name"),
    ({"privacy_policy_url": "ftp://acme.example/p"}, "privacy_policy_url"), ({"privacy_policy_url": None},
                                                                             "privacy_policy_url"),
    ({"status": "gone"}, "status"),
])
def test_a_malformed_integration_event_is_refused_naming_the_field(conn, bad, field):
    with pytest.raises(MalformedIntegration) as refused:
        record_integration(SimpleNamespace(conn=conn), event(**bad), T0)
    assert str(refused.value) == field
    assert conn.execute(sa.select(sa.func.count()).select_from(third_parties)).scalar() == 0


def test_shares_are_named_from_the_table_else_from_the_setting(conn):
    record_integration(SimpleNamespace(conn=conn), event(), T0)
    shares = [{"recipient": "integration:int_acme"}, {"recipient": "crm-legacy"}, {"recipient": None},
              {"recipient": "integration:int_unknown"}]
    describe_shares(conn, shares, {"crm-legacy": "https://legacy.example/p",
                                   "integration:int_acme": "https://ignored.example"})
    assert [(s["name"], s["privacy_policy_url"]) for s in shares] == [
        ("CRM Acme", "https://acme.example/p"), (None, "https://legacy.example/p"), (None, None), (None, None)]


def test_the_setting_read_leniently():
    assert fallback_policies({"PRIVACY_THIRD_PARTY_POLICIES": '{"crm": "https://crm/p"}'}) == {"crm": "https://crm/p"}
    assert fallback_policies({"PRIVACY_THIRD_PARTY_POLICIES": "not json"}) == {}
    assert fallback_policies({"PRIVACY_THIRD_PARTY_POLICIES": "[1]"}) == {}
    assert fallback_policies({}) == {}
