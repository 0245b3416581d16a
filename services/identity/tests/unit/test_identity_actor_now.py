"""Identity re-reads the actor of every call (issue 11, "a proven principal"): the role and status that count
are the ones identity holds now, not the ones a still-valid access token was issued with. A user
deactivated or demoted since they logged in loses what they lost at once, not when their token expires;
a token naming a user identity does not hold proves nothing (a leaked signing key, a deleted database)."""

from __future__ import annotations

import uuid

from upgestao_identity.domain.roles import BUILT_IN_ROLES
from upgestao_identity.service_layer import customers, roles, sessions, users
from upgestao_identity.service_layer.authorization import current_role, require, require_actor


def test_require_and_require_actor_take_the_actor_as_identity_holds_them_now(fake):
    ana, bia = fake.add_user(1), fake.add_user(2)
    fake.run(users.deactivate, bia)
    stranger = str(uuid.uuid4())
    # (actor, the role their token claims) -> the role that counts (None: no active user, no role at all)
    cases = {(ana, "admin"): "attendant", (fake.admin_id, "attendant"): "admin", (bia, "attendant"): None,
             (stranger, "admin"): None}
    for (actor, claimed), now in cases.items():
        with fake.uow(actor, claimed) as uow:
            assert current_role(uow) == now, (actor, claimed)
            if now is None:
                answer = fake.refused(lambda uow=uow: require_actor(uow))
                assert (answer.status, answer.slug) == (401, "unauthenticated")
                answer = fake.refused(lambda uow=uow: require(uow, "profile.read", action="read",
                                                              resource_type="user"))
                assert (answer.status, answer.slug) == (403, "forbidden")
            else:
                assert require_actor(uow) == actor
                require(uow, "profile.read", action="read", resource_type="user")
            granted = now == "admin"
            answer = None if granted else fake.refused(
                lambda uow=uow: require(uow, "users.list", action="list", resource_type="user"))
            assert granted or (answer.status, answer.extensions) == (403, {"permission": "users.list"})
    with fake.system() as uow:  # the system is no user: its calls are not re-read
        require(uow, "users.list", action="list", resource_type="user")


def test_the_actor_is_read_once_per_unit_of_work(fake):
    ana = fake.add_user(1)
    with fake.uow(ana, "attendant") as uow:
        reads = []
        get = uow.users.get
        uow.users.get = lambda user_id: reads.append(user_id) or get(user_id)
        require_actor(uow)
        require(uow, "profile.read", action="read", resource_type="user")
        require(uow, "sessions.read", action="list", resource_type="session")
        assert reads == [ana]


def test_a_token_claiming_a_role_the_user_does_not_hold_grants_nothing_of_it(fake):
    ana = fake.add_user(1)  # an attendant
    mark = fake.mark()
    answer = fake.refused(lambda: fake.run(users.list_page, 10, None, actor=ana, role="admin"))
    assert (answer.status, answer.slug, answer.extensions) == (403, "forbidden", {"permission": "users.list"})
    (audit,) = fake.audit_since(mark)
    assert (audit["outcome"], audit["action"], audit["actor_id"]) == ("denied", "list", ana)


def test_a_demoted_admins_token_loses_the_admins_permissions_at_once(fake):
    bia = fake.add_user(2, role="admin")
    assert fake.run(users.list_page, 10, None, actor=bia, role="admin")["items"]
    fake.run(users.update, bia, {"role": "attendant"}, today=fake.today, minimum_age=18)  # by the first admin
    answer = fake.refused(lambda: fake.run(users.list_page, 10, None, actor=bia, role="admin"))
    assert (answer.status, answer.extensions) == (403, {"permission": "users.list"})
    # the token still names her, and what an attendant may do she still may
    assert fake.run(customers.search, email=None, phone=None, limit=5, cursor=None, actor=bia,
                    role="admin")["items"] == []


def test_a_promotion_counts_at_once_too(fake):
    ana = fake.add_user(1)
    assert fake.refused(lambda: fake.run(users.list_page, 10, None, actor=ana, role="attendant")).status == 403
    fake.run(users.update, ana, {"role": "supervisor"}, today=fake.today, minimum_age=18)
    listed = fake.run(users.list_page, 10, None, actor=ana, role="attendant")["items"]
    assert ana in {u["id"] for u in listed}


def test_a_deactivated_users_token_is_refused_at_once(fake):
    ana = fake.add_user(1)
    assert fake.run(users.get, ana, actor=ana, role="attendant")["id"] == ana  # her profile, while active
    fake.run(users.deactivate, ana)
    for call in (lambda: fake.run(users.get, ana, actor=ana, role="attendant"),
                 lambda: fake.run(sessions.list_own, None, fake.now(), actor=ana, role="attendant"),
                 lambda: fake.run(users.update_own, {"phone": "11 98888-7777"}, actor=ana, role="attendant",
                                  today=fake.today, minimum_age=18)):
        answer = fake.refused(call)
        assert (answer.status, answer.slug) == (401, "unauthenticated")
    mark = fake.mark()
    answer = fake.refused(lambda: fake.run(customers.search, email=None, phone=None, limit=5, cursor=None,
                                           actor=ana, role="attendant"))
    assert (answer.status, answer.extensions) == (403, {"permission": "customers.list"})
    assert [a["outcome"] for a in fake.audit_since(mark)] == ["denied"]


def test_a_token_for_a_user_identity_does_not_hold_proves_nothing(fake):
    stranger = str(uuid.uuid4())
    answer = fake.refused(lambda: fake.run(users.get, stranger, actor=stranger, role="admin"))
    assert (answer.status, answer.slug) == (401, "unauthenticated")
    mark = fake.mark()
    for case, args in ((users.list_page, (10, None)), (customers.register, ({"full_name": "Carla"},))):
        kwargs = {"today": fake.today} if case is customers.register else {}
        answer = fake.refused(lambda case=case, args=args, kwargs=kwargs: fake.run(
            case, *args, actor=stranger, role="admin", **kwargs))
        assert (answer.status, answer.slug) == (403, "forbidden")
    assert [(a["outcome"], a["actor_id"]) for a in fake.audit_since(mark)] == [("denied", stranger)] * 2
    assert fake.events_since(mark) == []  # nothing registered


# -- what a role decides beyond a permission: the role held now too ----------------------------------------


def test_own_fields_editable_are_those_of_the_role_held_now(fake):
    ana = fake.add_user(1, role="admin")  # an admin edits every field of her own profile directly
    fake.run(roles.update_role, "attendant", list(BUILT_IN_ROLES["attendant"]["permissions"]), ["phone"])
    fake.run(users.update, ana, {"role": "attendant"}, today=fake.today, minimum_age=18)
    answer = fake.refused(lambda: fake.run(users.update_own, {"full_name": "Ana Outra"}, actor=ana, role="admin",
                                           today=fake.today, minimum_age=18))
    assert (answer.status, answer.slug, answer.extensions["fields"]) == (403, "correction-required", ["full_name"])
    answer = fake.refused(lambda: fake.run(users.may_set_photo, ana, actor=ana, role="admin"))
    assert (answer.status, answer.slug) == (403, "correction-required")
    assert fake.run(users.update_own, {"phone": "11 98888-7777"}, actor=ana, role="admin", today=fake.today,
                    minimum_age=18)["changed"] == ["phone"]  # what an attendant may edit, she still may


def test_nobody_edits_the_role_they_hold_now_whatever_their_token_says(fake):
    ana = fake.add_user(1)
    fake.run(users.update, ana, {"role": "admin"}, today=fake.today, minimum_age=18)  # promoted by the first admin
    permissions = [*BUILT_IN_ROLES["admin"]["permissions"]]
    answer = fake.refused(lambda: fake.run(roles.update_role, "admin", permissions, ["phone"], actor=ana,
                                           role="attendant"))
    assert (answer.status, answer.slug) == (403, "forbidden")
    assert fake.run(roles.update_role, "attendant", list(BUILT_IN_ROLES["attendant"]["permissions"]), ["phone"],
                    actor=ana, role="attendant")["name"] == "attendant"  # another role she may change


def test_a_compliance_role_is_given_only_by_who_holds_one_now(fake):
    carla, bia = fake.add_user(1), fake.add_user(2)
    with fake.system() as uow:  # the operator made her dpo, then admin (both the system's acts)
        users.assign_role(uow, carla, "dpo")
    with fake.system() as uow:
        users.assign_role(uow, carla, "admin")
    answer = fake.refused(lambda: fake.run(users.update, bia, {"role": "dpo"}, actor=carla, role="dpo",
                                           today=fake.today, minimum_age=18))
    assert (answer.status, answer.slug) == (403, "forbidden")
    assert fake.row("users", bia)["role"] == "attendant"
