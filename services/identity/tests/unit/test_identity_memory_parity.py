"""The fakes are the real thing, for what a use case can tell.

* The in-memory read models are the SQL ones: the events of a busy day, folded by the memory
  projections (as the use cases ran on the fake) and replayed through ``adapters/projections.py``
  on SQLite, give the same rows in every read model.
* The same busy day on the real unit of work with the SQL repositories (SQLite) records the same
  events, the same audit records and the same published views as on the fake.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from upgestao_identity.adapters.projections import projections
from upgestao_identity.adapters.tables import READ_MODELS, metadata
from upgestao_identity.domain.roles import BUILT_IN_ROLES
from upgestao_identity.service_layer import api_keys, customers, roles, subjects, users
from upgestao_kernel.db import create_engine


def busy_day(fake) -> None:
    ana, bia = fake.add_user(1), fake.add_user(2, role="supervisor")
    fake.login("ana1@example.com.br")
    fake.auth(source_ip="2001:db8:1234::9").login("ana1@example.com.br", fake.password)  # a new network: told
    fake.add_user(3, locale="en")
    fake.run(users.update_own, {"locale": "en"}, actor=bia, role="supervisor", today=fake.today, minimum_age=18)
    tokens = fake.login("ana2@example.com.br")
    fake.auth().refresh(tokens["refresh_token"])
    fake.run(users.update, ana, {"phone": "11 98888-7777", "email": "ana.new@example.com.br", "role": "supervisor"},
             today=fake.today, minimum_age=18)
    fake.auth().request_reset("ana2@example.com.br")
    fake.auth(bia, "supervisor").change_password(fake.password, fake.new_password, None)
    fake.run(users.deactivate, ana)
    carla = fake.run(customers.register, {"full_name": "Carla", "email": "carla@example.com"}, today=fake.today)
    fake.run(customers.update, carla["id"], {"phone": "21 99876-5432", "email": None}, today=fake.today)
    fake.run(roles.update_role, "attendant", list(BUILT_IN_ROLES["attendant"]["permissions"]), ["phone"])
    # and what is refused: a wrong password (counted), a denial, a correction request, a search page
    fake.refused(lambda: fake.login("ana2@example.com.br", "not the password"))
    fake.refused(lambda: fake.run(roles.list_roles, actor=bia, role="supervisor"))
    fake.refused(lambda: fake.run(users.update_own, {"full_name": "B"}, actor=bia, role="supervisor",
                                  today=fake.today, minimum_age=18))
    fake.run(customers.search, email="carla@example.com", phone=None, limit=5, cursor=None)
    fake.run(users.list_page, 2, fake.run(users.list_page, 2, None)["next_cursor"])
    # data subjects' requests (issue 14): each outcome, asked by privacy
    gone, anonymous, blocked = fake.add_user(4), fake.add_user(5), fake.add_user(6)
    fake.login("ana4@example.com.br")
    fake.login("ana6@example.com.br")
    dora = fake.run(customers.register, {"full_name": "Dora", "phone": "21 99876-1111"}, today=fake.today)
    for subject, mode in ((gone, "deletion"), (anonymous, "anonymisation"), (blocked, "blocking"),
                          (dora["id"], "anonymisation"), (gone, "deletion")):
        fake.as_service("privacy", subjects.erase, subject, mode, f"request-{mode}")
    dpo = fake.add_user(7)
    with fake.system() as uow:
        users.assign_role(uow, dpo, "dpo")
    fake.as_service("privacy", subjects.unblock, blocked, actor=dpo, role="dpo")
    fake.as_service("privacy", subjects.erase, blocked, "blocking", "request-again")
    eve = fake.run(customers.register, {"full_name": "Eve", "email": "eve@example.com"}, today=fake.today)
    fake.as_service("privacy", subjects.erase, eve["id"], "blocking", "request-eve")
    fake.as_service("privacy", subjects.unblock, eve["id"], actor=dpo, role="dpo")
    # API keys (issue 15): one issued and revoked, one issued to expire
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    crm = fake.run(api_keys.create, {"name": "CRM", "scopes": ["customers.read"]}, now=now)
    fake.run(api_keys.create, {"name": "Phone", "scopes": ["conversations.record_incoming"],
                               "expires_at": "2026-06-01T00:00:00+00:00"}, now=now)
    fake.run(api_keys.revoke, crm["id"])


def test_memory_and_sql_projections_agree_row_for_row(fake, tmp_path):
    busy_day(fake)
    engine = create_engine(f"sqlite:///{tmp_path / 'identity.sqlite3'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        for event in fake.store.events:
            for projection in projections():
                projection.apply(conn, event)
    with engine.connect() as conn:
        for table in READ_MODELS:
            key = table.primary_key.columns.values()[0].name
            sql = sorted((dict(r._mapping) for r in conn.execute(sa.select(table))), key=lambda r: r[key])
            memory = sorted(fake.store.rows(table.name), key=lambda r: r[key])
            assert memory == sql, table.name
            assert sql, f"the day left nothing in {table.name}: the comparison proves nothing"
    engine.dispose()


def test_the_same_day_on_the_real_unit_of_work_and_sql_repositories_observes_the_same(fake, sqlite_identity,
                                                                                    observe):
    busy_day(fake)
    busy_day(sqlite_identity)
    real = observe(sqlite_identity)
    assert observe(fake) == real
    assert len(real["events"]) > 20 and len(real["audit"]) > 20
    assert {a[4] for a in real["audit"]} == {"success", "failure", "denied"}
