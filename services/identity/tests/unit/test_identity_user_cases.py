"""Staff-user use cases on the fake unit of work: create, get, list, update (as admin and one's own
profile, with correction-required), deactivate, photo. Each checks events, audit records and answers."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image
from upgestao_identity.domain.roles import BUILT_IN_ROLES
from upgestao_identity.domain.users import User
from upgestao_identity.service_layer import roles, users
from upgestao_kernel.eventstore import ConcurrencyError


def _rules(fake) -> dict:
    return {"today": fake.today, "minimum_age": 18}


def png(size=(16, 8), colour=(10, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


# -- create ------------------------------------------------------------------------------------


def test_create_user_seals_the_profile_and_publishes_field_names_only(fake):
    mark = fake.mark()
    user_id = fake.add_user(1, role="supervisor")
    assert fake.events_since(mark) == ["identity.user_registered.v1"]
    (published,) = fake.published_since(mark, "identity.user_registered.v1")
    assert published["data"] == {"user_id": user_id, "role": "supervisor",
                                 "fields": ["address", "birth_date", "email", "full_name", "job_title", "phone"]}
    assert "ana1" not in json.dumps(fake.store.events[-1].data) + json.dumps(published)
    assert [(a["action"], a["resource_type"], a["fields"], a["purpose"]) for a in fake.audit_since(mark)] == [
        ("create", "user", ["address", "birth_date", "email", "full_name", "job_title", "phone"],
         "staff account registration"),
        ("create", "credential", ["password"], "staff account registration")]
    with fake.uow() as uow:
        user = uow.load(User, user_id)
    assert (user.role, user.active, user.version) == ("supervisor", True, 1)
    assert fake.row("credentials", user_id)["password_hash"].startswith("$2b$04$")
    shown = fake.run(users.get_as_creator, user_id)
    assert shown["email"] == "ana1@example.com.br" and shown["address"]["city"] == "São Paulo"
    assert shown["role"] == "supervisor" and shown["status"] == "active" and shown["has_photo"] is False


def test_create_user_refuses_a_duplicate_email_an_underage_person_and_an_unknown_role(fake):
    fake.add_user(1)
    mark = fake.mark()
    duplicate = fake.refused(lambda: fake.add_user(1, email="ANA1@example.com.br"))
    assert (duplicate.status, duplicate.slug, duplicate.extensions) == (409, "conflict", {"field": "email"})
    young = fake.refused(lambda: fake.add_user(2, birth_date=fake.today.replace(year=fake.today.year - 17)
                                               .isoformat()))
    assert young.status == 422 and young.extensions["errors"][0]["field"] == "birth_date"
    role = fake.refused(lambda: fake.add_user(3, role="pope"))
    assert role.status == 422 and role.extensions["errors"][0]["field"] == "role"
    missing = fake.refused(lambda: fake.add_user(4, phone=None, job_title=""))
    assert {e["field"] for e in missing.extensions["errors"]} == {"phone", "job_title"}
    assert fake.events_since(mark) == [] and fake.audit_since(mark) == []  # rolled back: nothing sealed


def test_create_user_needs_the_permission_and_the_refusal_is_audited(fake):
    attendant = fake.add_user(1)
    mark = fake.mark()
    answer = fake.refused(lambda: fake.run(users.register, fake.user_data(2), password_hash="x", actor=attendant,
                                           role="attendant", **_rules(fake)))
    assert (answer.status, answer.extensions) == (403, {"permission": "users.create"})
    (audit,) = fake.audit_since(mark)
    assert (audit["action"], audit["resource_type"], audit["outcome"]) == ("create", "user", "denied")
    assert fake.events_since(mark) == []


# -- get, me, list -------------------------------------------------------------------------------


def test_get_user_opens_the_profile_for_whoever_may_read_it(fake):
    ana, sup = fake.add_user(1), fake.add_user(2, role="supervisor")
    mark = fake.mark()
    shown = fake.run(users.get, ana, actor=sup, role="supervisor")
    assert (shown["id"], shown["full_name"], shown["phone"]) == (ana, "Ana Souza 1", "+5511912345678")
    (audit,) = fake.audit_since(mark)
    assert (audit["action"], audit["subject_id"], audit["purpose"], audit["actor_id"]) == (
        "read", ana, "staff profile shown to an authorised user", sup)
    assert audit["fields"] == ["address", "birth_date", "email", "full_name", "gender", "job_title", "phone"]
    me = fake.run(users.get, ana, actor=ana, role="attendant")  # me(): one's own, by profile.read
    assert me["email"] == "ana1@example.com.br" and fake.audit_since(mark)[-1]["purpose"] == "own profile"
    refused = fake.refused(lambda: fake.run(users.get, sup, actor=ana, role="attendant"))
    assert (refused.status, refused.extensions) == (403, {"permission": "users.read"})
    assert fake.audit_since(mark)[-1]["outcome"] == "denied"
    assert fake.refused(lambda: fake.run(users.get, "no-such-user")).status == 404


def test_me_needs_a_caller(fake):
    with fake.uow() as uow:
        assert fake.refused(lambda: users.get(uow, users.require_actor(uow))).status == 401


def test_list_users_pages_with_a_cursor_and_audits_each_row(fake):
    ids = [fake.add_user(n) for n in range(1, 4)]
    mark = fake.mark()
    first = fake.run(users.list_page, 2, None)
    second = fake.run(users.list_page, 2, first["next_cursor"])
    listed = [u["id"] for u in first["items"] + second["items"]]
    assert listed == [fake.admin_id, *ids] and second["next_cursor"] is None
    audits = fake.audit_since(mark)
    assert len(audits) == 4 and {(a["action"], a["purpose"]) for a in audits} == {("list", "staff directory")}
    bad = fake.refused(lambda: fake.run(users.list_page, 2, "not-a-cursor"))
    assert (bad.status, bad.extensions["errors"][0]["field"]) == (422, "cursor")
    assert fake.refused(lambda: fake.run(users.list_page, 2, None, actor=ids[0], role="attendant")).status == 403


# -- update --------------------------------------------------------------------------------------


def test_an_admin_changes_a_profile_and_a_role_which_revokes_the_sessions(fake):
    ana = fake.add_user(1)
    session = fake.login("ana1@example.com.br")["session_id"]
    mark = fake.mark()
    result = fake.run(users.update, ana, {"job_title": "Supervisora", "role": "supervisor"}, **_rules(fake))
    assert result["changed"] == ["job_title", "role"] and result["revoked_session_ids"] == [session]
    assert result["user"]["job_title"] == "Supervisora" and result["user"]["role"] == "supervisor"
    assert fake.events_since(mark) == ["identity.user_profile_changed.v1", "identity.user_role_changed.v1",
                                       "identity.session_revoked.v1"]
    assert fake.published_since(mark, "identity.user_role_changed.v1")[0]["data"] == {
        "user_id": ana, "role": "supervisor", "previous_role": "attendant"}
    assert fake.published_since(mark, "identity.session_revoked.v1")[0]["data"]["reason"] == "role_changed"
    assert [(a["action"], a["fields"], a["purpose"]) for a in fake.audit_since(mark)] == [
        ("update", ["job_title"], "staff profile administration"),
        ("update", ["role"], "role change: attendant to supervisor"),  # an update naming both roles, not a read
        ("read", ["address", "birth_date", "email", "full_name", "gender", "job_title", "phone"],
         "staff profile administration")]


def test_update_user_refuses_what_cannot_change(fake):
    ana, bia = fake.add_user(1), fake.add_user(2)
    taken = fake.refused(lambda: fake.run(users.update, ana, {"email": "ana2@example.com.br"}, **_rules(fake)))
    assert (taken.status, taken.extensions) == (409, {"field": "email"})
    removed = fake.refused(lambda: fake.run(users.update, ana, {"phone": None}, **_rules(fake)))
    assert removed.extensions["errors"] == [{"field": "phone", "message": "cannot be removed"}]
    photo = fake.refused(lambda: fake.run(users.update, ana, {"photo": "x"}, **_rules(fake)))
    assert photo.extensions["errors"][0]["field"] == "photo"
    assert fake.refused(lambda: fake.run(users.update, "nobody", {"gender": "f"}, **_rules(fake))).status == 404
    fake.run(users.deactivate, bia)
    gone = fake.refused(lambda: fake.run(users.update, bia, {"gender": "f"}, **_rules(fake)))
    assert (gone.status, gone.detail) == (409, "This user is deactivated.")
    answer = fake.refused(lambda: fake.run(users.update, bia, {}, actor=ana, role="attendant", **_rules(fake)))
    assert answer.extensions == {"permission": "users.update"}


def test_update_me_edits_the_roles_self_editable_fields_only(fake):
    ana = fake.add_user(1)
    mark = fake.mark()
    result = fake.run(users.update_own, {"phone": "(11) 98765-4321"}, actor=ana, role="attendant", **_rules(fake))
    assert result["changed"] == ["phone"] and result["user"]["phone"] == "+5511987654321"
    assert fake.events_since(mark) == ["identity.user_profile_changed.v1"]
    assert fake.audit_since(mark)[0]["purpose"] == "own profile edit"
    mark = fake.mark()
    answer = fake.refused(lambda: fake.run(users.update_own, {"full_name": "Outra", "phone": "11 91111-2222"},
                                           actor=ana, role="attendant", **_rules(fake)))
    assert (answer.status, answer.slug) == (403, "correction-required")
    assert answer.extensions == {"fields": ["full_name"], "editable_fields": ["address", "gender", "phone", "photo"]}
    (audit,) = fake.audit_since(mark)
    assert (audit["outcome"], audit["fields"], audit["purpose"]) == (
        "denied", ["full_name"], "own profile edit outside the role's self-editable fields")
    assert fake.events_since(mark) == []


def test_two_admins_editing_the_same_user_conflict_on_the_stream(fake):
    ana = fake.add_user(1)
    with fake.uow(fake.admin_id, "admin") as first:
        stale = first.load(User, ana)
    fake.run(users.update, ana, {"gender": "feminino"}, **_rules(fake))
    stale.change_profile({"job_title": "sealed"})
    with pytest.raises(ConcurrencyError), fake.uow(fake.admin_id, "admin") as second:
        second.save(stale)


# -- deactivate ----------------------------------------------------------------------------------


def test_deactivate_user_revokes_every_session_once(fake):
    ana = fake.add_user(1)
    sessions = {fake.login("ana1@example.com.br")["session_id"] for _ in range(2)}
    mark = fake.mark()
    result = fake.run(users.deactivate, ana)
    assert result["status"] == "deactivated" and set(result["revoked_session_ids"]) == sessions
    assert fake.events_since(mark) == ["identity.user_deactivated.v1"] + ["identity.session_revoked.v1"] * 2
    (audit,) = fake.audit_since(mark)
    assert (audit["fields"], audit["purpose"]) == (["status"], "staff account deactivation")
    mark = fake.mark()
    assert fake.run(users.deactivate, ana)["revoked_session_ids"] == []  # again: nothing new
    assert fake.events_since(mark) == [] and fake.audit_since(mark) == []
    own = fake.refused(lambda: fake.run(users.deactivate, fake.admin_id))
    assert (own.status, own.detail) == (409, "You cannot deactivate your own account.")
    assert fake.refused(lambda: fake.run(users.deactivate, "nobody")).status == 404


# -- photo ---------------------------------------------------------------------------------------


def test_set_photo_keeps_one_sealed_photo_and_get_photo_opens_it(fake):
    ana = fake.add_user(1)
    mark = fake.mark()
    first = fake.run(users.set_photo, ana, png(), actor=ana, role="attendant")
    assert (first["content_type"], first["width"], first["height"]) == ("image/png", 16, 8)
    assert fake.events_since(mark) == ["identity.user_photo_changed.v1"]
    assert fake.published_since(mark, "identity.user_photo_changed.v1")[0]["data"] == {"user_id": ana,
                                                                                      "fields": ["photo"]}
    fake.run(users.set_photo, ana, png(colour=(0, 0, 0)))  # the admin replaces it
    (kept,) = fake.store.rows("photos")
    assert kept["subject_id"] == ana and kept["id"] == fake.row("users", ana)["photo_id"]
    shown = fake.run(users.get_photo, ana, actor=ana, role="attendant")
    assert shown["content_type"] == "image/png"
    assert Image.open(io.BytesIO(base64.b64decode(shown["content_b64"]))).getpixel((0, 0)) == (0, 0, 0)
    assert [(a["action"], a["purpose"]) for a in fake.audit_since(mark)] == [
        ("update", "profile photo upload"), ("update", "profile photo upload"), ("read", "profile photo shown")]


def test_photo_refusals(fake):
    ana, bia = fake.add_user(1), fake.add_user(2)
    bad = fake.refused(lambda: fake.run(users.set_photo, ana, b"not an image"))
    assert bad.status == 422 and bad.extensions["errors"][0]["field"] == "photo"
    assert fake.refused(lambda: fake.run(users.get_photo, ana)).status == 404  # none yet
    other = fake.refused(lambda: fake.run(users.set_photo, bia, png(), actor=ana, role="attendant"))
    assert other.extensions == {"permission": "users.update"}
    fake.run(roles.update_role, "attendant", list(BUILT_IN_ROLES["attendant"]["permissions"]), ["phone"])
    mark = fake.mark()
    own = fake.refused(lambda: fake.run(users.set_photo, ana, png(), actor=ana, role="attendant"))
    assert (own.status, own.slug, own.extensions) == (403, "correction-required", {"fields": ["photo"]})
    assert fake.audit_since(mark)[0]["fields"] == ["photo"]
