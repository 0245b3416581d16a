"""Roles, the data map and the start-up tasks (built-in roles, the first admin) on the fake unit of work."""

from __future__ import annotations

import pytest
from upgestao_identity.domain.datamap import DATA_MAP, data_map_document
from upgestao_identity.domain.errors import CompliancePermissions
from upgestao_identity.domain.roles import BUILT_IN_ROLES, COMPLIANCE_PERMISSIONS, PERMISSIONS, Role
from upgestao_identity.domain.users import User
from upgestao_identity.service_layer import bootstrap, roles, users
from upgestao_kernel.events import NewEvent
from upgestao_kernel.eventstore import ConcurrencyError


def test_list_roles_and_the_permissions_the_gateway_caches(fake):
    listed = fake.run(roles.list_roles)
    assert [r["name"] for r in listed["items"]] == sorted(BUILT_IN_ROLES)
    assert [p["name"] for p in listed["permissions"]] == list(PERMISSIONS)
    by_role = fake.run(roles.permissions_by_role)["roles"]
    assert by_role == {name: sorted(spec["permissions"]) for name, spec in BUILT_IN_ROLES.items()}
    ana = fake.add_user(1)
    mark = fake.mark()
    assert fake.refused(lambda: fake.run(roles.list_roles, actor=ana, role="attendant")).extensions == {
        "permission": "roles.read"}
    assert fake.audit_since(mark)[0]["outcome"] == "denied"


def test_update_role_changes_what_its_holders_may_do(fake):
    ana = fake.add_user(1)
    mark = fake.mark()
    granted = sorted([*BUILT_IN_ROLES["attendant"]["permissions"], "users.list"])
    shown = fake.run(roles.update_role, "attendant", granted, ["phone"])
    assert (shown["permissions"], shown["self_editable_fields"]) == (granted, ["phone"])
    assert fake.events_since(mark) == ["identity.role_permissions_changed.v1"]
    assert fake.published_since(mark, "identity.role_permissions_changed.v1")[0]["data"] == {"role": "attendant"}
    assert fake.run(users.list_page, 10, None, actor=ana, role="attendant")["items"]  # at once
    mark = fake.mark()
    fake.run(roles.update_role, "attendant", granted, ["phone"])  # the same again: no event
    assert fake.events_since(mark) == []
    with fake.uow() as uow:
        assert uow.load(Role, "attendant").self_editable_fields == ("phone",)


def test_update_role_refusals(fake):
    with fake.system() as uow:  # the admin role is changed by no admin (separation of duties): the system here
        floor = fake.refused(lambda: roles.update_role(uow, "admin", ["users.list"], []))
    assert floor.status == 422 and floor.extensions["errors"][0]["field"] == "permissions"
    unknown = fake.refused(lambda: fake.run(roles.update_role, "dpo", ["fly"], []))
    assert unknown.extensions["errors"][0] == {"field": "permissions", "message": "unknown permissions: fly"}
    bad_field = fake.refused(lambda: fake.run(roles.update_role, "dpo", [], ["salary"]))
    assert bad_field.extensions["errors"][0]["field"] == "self_editable_fields"
    missing = fake.refused(lambda: fake.run(roles.update_role, "pope", [], []))
    assert (missing.status, missing.detail) == (404, "No such role: pope.")
    ana = fake.add_user(1, role="supervisor")
    assert fake.refused(lambda: fake.run(roles.update_role, "dpo", [], [], actor=ana, role="supervisor")
                        ).extensions == {"permission": "roles.update"}


def test_the_data_map_declares_every_field_the_read_models_seal(fake):
    document = data_map_document()
    assert {(e["resource"], e["field"]) for e in document} == {(r, f) for r, fs in DATA_MAP.items() for f in fs}
    ana = fake.add_user(1)
    (registered,) = [e for e in fake.store.events if e.stream_id == f"user-{ana}"]
    assert set(registered.data["fields"]) <= {e["field"] for e in document if e["resource"] == "user"}
    # what LGPD art. 37 asks of each record (privacy's platform map takes it from here, issue 14)
    assert all(e["purpose"] and e["legal_basis"].startswith(("performance", "legal", "legitimate", "consent"))
               and e["retention"] for e in document)


def test_the_start_up_tasks_define_the_roles_and_the_first_admin_once(fake):
    assert roles.ensure_built_in(fake.system) == []  # the fixture ran them already
    assert sum(t == "identity.role_defined.v1" for t in fake.store.event_types()) == 4
    with fake.uow() as uow:
        admin = uow.load(User, fake.admin_id)
    assert (admin.role, admin.active) == ("admin", True)
    mark = fake.mark()
    again = bootstrap.create_admin(fake.system, fake.hasher, email="other@example.com", password=fake.password,
                                   full_name="Other", birth_date="1980-01-01", today=fake.today, minimum_age=18,
                                   only_if_none=True)
    assert again is None and fake.events_since(mark) == []
    another = bootstrap.create_admin(fake.system, fake.hasher, email="other@example.com", password=fake.password,
                                     full_name="Other", birth_date="1980-01-01", today=fake.today, minimum_age=18,
                                     only_if_none=False)
    assert fake.events_since(mark) == ["identity.user_registered.v1"]
    assert fake.audit_since(mark)[0]["actor_id"] == "system" and another


def test_the_first_admin_is_created_once_when_two_processes_race(make_fake):
    fresh = make_fake(None, admin=False)
    with fresh.system() as late:  # a start-up that saw no admin yet...
        assert not late.users.active_admin_exists()
        version = late.stream_version(bootstrap.FIRST_ADMIN_STREAM)
        # ...while another process creates the admin and commits first
        created = bootstrap.create_admin(fresh.system, fresh.hasher, email="a@example.com", password=fresh.password,
                                         full_name="A", birth_date="1980-01-01", today=fresh.today, minimum_age=18,
                                         only_if_none=True)
        with pytest.raises(ConcurrencyError):
            late.record(bootstrap.FIRST_ADMIN_STREAM, version,
                        [NewEvent("identity.admin_bootstrapped.v1", {}, published=False)])
    assert created and [r["id"] for r in fresh.store.rows("users")] == [created]
    assert bootstrap.create_admin(fresh.system, fresh.hasher, email="b@example.com", password=fresh.password,
                                  full_name="B", birth_date="1980-01-01", today=fresh.today, minimum_age=18,
                                  only_if_none=True) is None


def test_a_weak_admin_password_or_a_minor_is_refused(fake):
    weak = fake.refused(lambda: bootstrap.create_admin(
        fake.system, fake.hasher, email="x@example.com", password="short", full_name="X", birth_date="1980-01-01",
        today=fake.today, minimum_age=18, only_if_none=False))
    assert weak.status == 422 and weak.extensions["errors"][0]["field"] == "password"
    minor = fake.refused(lambda: bootstrap.create_admin(
        fake.system, fake.hasher, email="y@example.com", password=fake.password, full_name="Y",
        birth_date=fake.today.replace(year=fake.today.year - 10).isoformat(), today=fake.today, minimum_age=18,
        only_if_none=False))
    assert minor.extensions["errors"][0]["field"] == "birth_date"


def test_notifications_read_belongs_to_the_admin_and_the_dpo(fake):
    assert PERMISSIONS["notifications.read"] == "Read e-mail delivery records (no message contents)"
    by_role = fake.run(roles.permissions_by_role)["roles"]
    assert {name for name, held in by_role.items() if "notifications.read" in held} == {"admin", "dpo"}
    assert roles.grant_introduced(fake.system) == {}  # a database defined with it has nothing to be given


def test_the_help_desk_permissions_follow_the_visibility_tiers(fake):
    """Messaging (issue 13): everyone at the help desk reads and writes conversations; supervisors see their
    teams', admins all of them and manage teams; staff chat is every staff role's, the dpo's included."""
    by_role = fake.run(roles.permissions_by_role)["roles"]

    def holders(permission: str) -> set[str]:
        return {name for name, held in by_role.items() if permission in held}

    desk = {"admin", "supervisor", "attendant"}
    for permission in ("conversations.read", "conversations.write", "conversations.record_incoming"):
        assert holders(permission) == desk
    assert holders("conversations.read_team") == {"admin", "supervisor"}
    assert holders("conversations.read_all") == holders("teams.manage") == holders("messages.moderate") == {"admin"}
    assert holders("chats.use") == desk | {"dpo"}


def test_the_privacy_permissions_are_everyones_own_rights_and_the_dpos_review(fake):
    """Privacy rights (issue 14): every built-in role exercises its own rights; reviewing requests, publishing
    policies and recording incidents are compliance permissions: the dpo's, never an admin's."""
    by_role = fake.run(roles.permissions_by_role)["roles"]

    def holders(permission: str) -> set[str]:
        return {name for name, held in by_role.items() if permission in held}

    assert holders("privacy.self") == {"admin", "supervisor", "attendant", "dpo"}
    for permission in ("privacy.review", "privacy.policies", "privacy.incidents"):
        assert holders(permission) == {"dpo"}
        assert permission in COMPLIANCE_PERMISSIONS
        with pytest.raises(CompliancePermissions):
            Role.define("admin", [*BUILT_IN_ROLES["admin"]["permissions"], permission], [])


def test_a_database_defined_before_a_permission_existed_gets_it_once(make_fake):
    from upgestao_identity.adapters.memory_repositories import memory_units
    from upgestao_identity.domain.roles import INTRODUCED_PERMISSIONS

    fake = make_fake(None, admin=False)
    fake.store, fake._make = memory_units()  # an empty database: its roles defined as an older release did
    for name, spec in BUILT_IN_ROLES.items():
        with fake.system() as uow:
            uow.save(Role.define(name, set(spec["permissions"]) - set(INTRODUCED_PERMISSIONS),
                                 spec["self_editable_fields"]))
    mark = fake.mark()
    expected = {role: sorted(p for p, holders in INTRODUCED_PERMISSIONS.items() if role in holders)
                for role in sorted({r for holders in INTRODUCED_PERMISSIONS.values() for r in holders})}
    assert expected["dpo"] == ["chats.use", "notifications.read", "privacy.incidents", "privacy.policies",
                               "privacy.review", "privacy.self"]
    assert "conversations.read_team" in expected["supervisor"]
    assert roles.grant_introduced(fake.system) == expected
    assert fake.events_since(mark) == ["identity.role_permissions_changed.v1"] * len(expected)
    audits = fake.audit_since(mark)
    assert [(a["resource_id"], a["actor_role"], a["fields"]) for a in audits] == [
        (role, "system", ["permissions"]) for role in expected]
    assert "notifications.read" in next(a["purpose"] for a in audits if a["resource_id"] == "admin")
    with fake.system() as uow:
        by_role = roles.permissions_by_role(uow)["roles"]
    assert "notifications.read" in by_role["admin"] and "notifications.read" in by_role["dpo"]
    assert "notifications.read" not in by_role["attendant"]
    # taken away by an admin later: not given back at the next start
    with fake.system() as uow:
        dpo = uow.load(Role, "dpo")
        dpo.change(set(dpo.permissions) - {"notifications.read"}, dpo.self_editable_fields)
        uow.save(dpo)
    mark = fake.mark()
    assert roles.grant_introduced(fake.system) == {} and fake.events_since(mark) == []
