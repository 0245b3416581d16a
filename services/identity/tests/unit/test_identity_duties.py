"""Separation of duties (issue 11, finding 6) in the domain and in the use cases on the fakes: audit.read only
for compliance roles, nobody changes their own role or its permissions, a compliance role given or taken
only by a compliance role holder (the system excepted), role changes audited as updates naming both roles,
and an e-mail change told to the old address through a notice only the notifier may fetch."""

from __future__ import annotations

import pytest
from upgestao_identity.domain import duties
from upgestao_identity.domain.errors import CompliancePermissions, ComplianceRoleAssignment, OwnRoleChange
from upgestao_identity.domain.roles import BUILT_IN_ROLES, Role, effective_permissions, is_compliance
from upgestao_identity.service_layer import notices, roles, users


def rules(fake) -> dict:
    return {"today": fake.today, "minimum_age": 18}


# -- the domain ---------------------------------------------------------------------------------


def test_only_a_compliance_role_may_hold_audit_read():
    assert is_compliance("dpo") and not any(is_compliance(r) for r in ("admin", "supervisor", "attendant", None))
    with pytest.raises(CompliancePermissions) as refused:
        Role.define("supervisor", [*BUILT_IN_ROLES["supervisor"]["permissions"], "audit.read"], [])
    assert refused.value.names == ("audit.read",)
    assert "audit.read" in Role.define("dpo", BUILT_IN_ROLES["dpo"]["permissions"], []).permissions
    # a grant stored before the rule grants nothing
    assert effective_permissions("admin", ["audit.read", "users.list"]) == {"users.list"}
    assert effective_permissions("dpo", ["audit.read"]) == {"audit.read"}


@pytest.mark.parametrize(("actor", "actor_role", "user", "previous", "new", "refusal"), [
    ("a", "admin", "a", "admin", "supervisor", OwnRoleChange),  # one's own role, even downwards
    ("a", "admin", "a", "admin", "dpo", OwnRoleChange),
    ("a", "admin", "b", "attendant", "dpo", ComplianceRoleAssignment),  # an accomplice made dpo
    ("a", "admin", "b", "dpo", "attendant", ComplianceRoleAssignment),  # the watching dpo demoted
    ("a", "admin", None, None, "dpo", ComplianceRoleAssignment),  # a new account created dpo
    ("a", "dpo", "b", "attendant", "dpo", None),
    ("a", "admin", "b", "attendant", "supervisor", None),
    ("a", "admin", "a", "admin", "admin", None),  # no change at all
])
def test_who_may_give_which_role(actor, actor_role, user, previous, new, refusal):
    def decide():
        duties.check_role_assignment(actor_id=actor, actor_role=actor_role, user_id=user, previous_role=previous,
                                     new_role=new, system=False)

    if refusal is None:
        decide()
    else:
        with pytest.raises(refusal):
            decide()
    duties.check_role_assignment(actor_id="system", actor_role="system", user_id=user, previous_role=previous,
                                 new_role=new, system=True)  # the system always may


def test_nobody_changes_the_permissions_of_the_role_they_hold():
    with pytest.raises(OwnRoleChange):
        duties.check_role_edit(actor_role="admin", role="admin", system=False)
    duties.check_role_edit(actor_role="admin", role="supervisor", system=False)
    duties.check_role_edit(actor_role="system", role="admin", system=True)


# -- the use cases --------------------------------------------------------------------------------


def test_an_admin_cannot_grant_their_own_role_audit_read_nor_give_it_to_another(fake):
    admin_permissions = list(BUILT_IN_ROLES["admin"]["permissions"])
    mark = fake.mark()
    own = fake.refused(lambda: fake.run(roles.update_role, "admin", [*admin_permissions, "audit.read"], []))
    assert (own.status, own.slug) == (403, "forbidden")
    (denied,) = fake.audit_since(mark)
    assert (denied["outcome"], denied["resource_type"], denied["resource_id"]) == ("denied", "role", "admin")
    other = fake.refused(lambda: fake.run(roles.update_role, "supervisor",
                                          [*BUILT_IN_ROLES["supervisor"]["permissions"], "audit.read"], []))
    assert (other.status, other.extensions["errors"][0]["field"]) == (422, "permissions")
    assert fake.events_since(mark) == []


def test_a_role_change_is_audited_as_an_update_naming_the_permissions(fake):
    mark = fake.mark()
    granted = [*BUILT_IN_ROLES["attendant"]["permissions"], "users.list"]
    fake.run(roles.update_role, "attendant", granted, ["phone"])
    (audit,) = fake.audit_since(mark)
    assert (audit["action"], audit["resource_type"], audit["resource_id"], audit["purpose"]) == (
        "update", "role", "attendant", "role attendant changed: added [users.list], removed []")


def test_an_admin_cannot_make_anyone_dpo_but_a_dpo_can(fake):
    ana, bia = fake.add_user(1), fake.add_user(2)
    mark = fake.mark()
    self_dpo = fake.refused(lambda: fake.run(users.update, fake.admin_id, {"role": "dpo"}, **rules(fake)))
    accomplice = fake.refused(lambda: fake.run(users.update, ana, {"role": "dpo"}, **rules(fake)))
    created = fake.refused(lambda: fake.add_user(3, role="dpo"))
    assert [r.status for r in (self_dpo, accomplice, created)] == [403, 403, 403]
    assert fake.events_since(mark) == []
    assert [(a["outcome"], a["fields"]) for a in fake.audit_since(mark)] == [("denied", ["role"])] * 3
    # the first dpo is the operator's act, as the system (the assign-role command)
    with fake.system() as uow:
        users.assign_role(uow, ana, "dpo")
    # a dpo whose role has been given users.update (by an admin: not their own role) may make another dpo
    fake.run(roles.update_role, "dpo", [*BUILT_IN_ROLES["dpo"]["permissions"], "users.update"], [])
    made = fake.run(users.update, bia, {"role": "dpo"}, actor=ana, role="dpo", **rules(fake))
    assert made["user"]["role"] == "dpo"
    own = fake.refused(lambda: fake.run(users.update, ana, {"role": "attendant"}, actor=ana, role="dpo",
                                        **rules(fake)))
    assert own.status == 403  # not even a dpo changes their own role
    demoted = fake.refused(lambda: fake.run(users.update, bia, {"role": "attendant"}, **rules(fake)))
    assert demoted.status == 403  # nor does an admin take the role back


def test_an_email_change_is_told_to_the_old_address(fake):
    ana = fake.add_user(1)
    mark = fake.mark()
    fake.run(users.update, ana, {"email": "ana.nova@example.com.br"}, **rules(fake))  # an admin repoints it
    assert fake.events_since(mark) == ["identity.user_profile_changed.v1", "identity.user_email_changed.v1"]
    (event,) = fake.published_since(mark, "identity.user_email_changed.v1")
    assert event["data"] == {"user_id": ana}  # ids only
    with fake.uow(context=fake.notifier_context()) as uow:
        notice = notices.fetch(uow, event["event_id"], fake.now())
    (recipient,) = notice["recipients"]
    assert (notice["kind"], recipient["to"], recipient["id"]) == ("email_changed", "ana1@example.com.br", ana)
    assert recipient["vars"] == {} and set(notice["data"]) == {"occurred_at"}  # no token
    refused = fake.refused(lambda: fake.run(notices.fetch, event["event_id"], fake.now()))  # the admin: no
    assert refused.status == 403
