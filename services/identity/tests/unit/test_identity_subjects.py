"""Data subjects' rights in identity (issue 14) on the fakes: the RPCs only privacy may call, the three
erasure outcomes (deletion, anonymisation, blocking) and what each leaves, corrections applied as the
reviewer, contacts and the breach criteria."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from upgestao_identity.domain.subjects import without_indexes
from upgestao_identity.service_layer import customers, subjects, users

REQUEST = "11111111-1111-4111-8111-111111111111"
ERASED = "identity.subject_erased.v1"


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


def privacy(fake, case, *args, **kwargs):
    return fake.as_service("privacy", case, *args, **kwargs)


def customer(fake, n: int = 1) -> dict:
    return fake.run(customers.register, {"full_name": f"Carla {n}", "email": f"carla{n}@example.com",
                                         "phone": f"+55 21 99876-54{n:02d}"}, today=fake.today)


def add_dpo(fake, n: int) -> str:
    """A dpo: made as an attendant, given the role by the system (an admin cannot give a compliance role)."""
    user_id = fake.add_user(n)
    with fake.system() as uow:
        users.assign_role(uow, user_id, "dpo")
    return user_id


def stream_text(fake, subject_id: str) -> str:
    return " ".join(repr(e.data) for e in fake.store.events if e.stream_id.endswith(subject_id))


CALLS = [
    (subjects.export, ("{id}",), {}),
    (subjects.erase, ("{id}", "deletion"), {}),
    (subjects.contacts, (["{id}"],), {}),
    (subjects.find_subject, ("ana1@example.com.br",), {}),
    (subjects.subject_ids, ({"kind": "every_user"},), {}),
]


@pytest.mark.parametrize(("case", "args", "kwargs"), CALLS, ids=[c[0].__name__ for c in CALLS])
@pytest.mark.parametrize("service", ["gateway", "messaging", "notifier", None])
def test_only_privacy_calls_the_data_subject_methods_and_a_refusal_is_audited(fake, case, args, kwargs, service):
    ana = fake.add_user(1)
    args = tuple([ana] if a == ["{id}"] else ana if a == "{id}" else a for a in args)
    mark = fake.mark()
    if service is None:  # a staff token (the admin's), no service behind it
        answer = fake.refused(lambda: fake.run(case, *args, **kwargs))
    else:
        answer = fake.refused(lambda: fake.as_service(service, case, *args, actor=fake.admin_id, role="admin"))
    assert (answer.status, answer.slug) == (403, "forbidden")
    (denied,) = fake.audit_since(mark, outcome="denied")
    assert (denied["resource_type"], denied["purpose"]) == ("data_subject", "authorization")
    assert fake.events_since(mark) == [] and fake.row("users", ana) is not None


def test_apply_correction_answers_privacy_alone_and_a_reviewer_only(fake):
    ana, dpo = fake.add_user(1), add_dpo(fake, 2)
    answer = fake.refused(lambda: fake.as_service("gateway", subjects.apply_correction, ana, {"job_title": "X"},
                                                  "c1", actor=dpo, role="dpo", today=fake.today, minimum_age=18))
    assert answer.status == 403
    # privacy, but the reviewer behind the call lacks privacy.review (an admin)
    answer = fake.refused(lambda: privacy(fake, subjects.apply_correction, ana, {"job_title": "X"}, "c1",
                                          actor=fake.admin_id, role="admin", today=fake.today, minimum_age=18))
    assert (answer.status, answer.extensions["permission"]) == (403, "privacy.review")
    # nobody applies a correction of their own data
    answer = fake.refused(lambda: privacy(fake, subjects.apply_correction, dpo, {"job_title": "X"}, "c1",
                                          actor=dpo, role="dpo", today=fake.today, minimum_age=18))
    assert answer.status == 403 and "own data" in answer.detail


def test_a_correction_is_applied_as_the_reviewer_and_audited_with_its_id(fake):
    ana, dpo = fake.add_user(1), add_dpo(fake, 2)
    mark = fake.mark()
    done = privacy(fake, subjects.apply_correction, ana, {"full_name": "Ana Maria Souza", "job_title": "Analista"},
                   "corr-7", actor=dpo, role="dpo", today=fake.today, minimum_age=18)
    assert done == {"subject_id": ana, "kind": "user", "changed": ["full_name", "job_title"]}
    update = next(a for a in fake.audit_since(mark, action="update") if a["resource_type"] == "user")
    assert (update["actor_id"], update["purpose"], sorted(update["fields"])) == (
        dpo, "correction corr-7", ["full_name", "job_title"])
    assert fake.run(users.get, ana)["full_name"] == "Ana Maria Souza"
    # a customer's, and what is not a field is named
    carla = customer(fake)
    done = privacy(fake, subjects.apply_correction, carla["id"], {"full_name": "Carla Dias"}, "corr-8",
                   actor=dpo, role="dpo", today=fake.today, minimum_age=18)
    assert done["changed"] == ["full_name"] and done["kind"] == "customer"
    bad = fake.refused(lambda: privacy(fake, subjects.apply_correction, ana, {"role": "admin"}, "corr-9",
                                       actor=dpo, role="dpo", today=fake.today, minimum_age=18))
    assert (bad.status, bad.extensions["errors"][0]["field"]) == (422, "role")
    nobody = fake.refused(lambda: privacy(fake, subjects.apply_correction, "33333333-3333-4333-8333-333333333333",
                                          {"full_name": "X"}, "corr-10", actor=dpo, role="dpo", today=fake.today,
                                          minimum_age=18))
    assert (nobody.status, nobody.detail) == (404, "No such data subject.")


def test_deletion_shreds_purges_the_rows_and_indexes_revokes_sessions_and_confirms_once(fake):
    ana, bia = fake.add_user(1), fake.add_user(2)
    fake.run(users.set_photo, ana, png(), actor=ana, role="attendant")
    tokens = fake.login("ana1@example.com.br")
    fake.auth().request_reset("ana1@example.com.br")
    index = fake.row("users", ana)["email_index"]
    assert index in stream_text(fake, ana)
    mark = fake.mark()

    done = privacy(fake, subjects.erase, ana, "deletion", REQUEST)
    assert (done["kind"], done["mode"], done["revoked_session_ids"]) == ("user", "deletion", [tokens["session_id"]])
    assert fake.row("users", ana) is None and fake.row("credentials", ana) is None
    assert not [r for r in fake.store.rows("photos") if r["subject_id"] == ana]
    assert not [r for r in fake.store.rows("notices") if r["user_id"] == ana]
    assert not [r for r in fake.store.rows("known_networks") if r["user_id"] == ana]
    assert not [r for r in fake.store.rows("sessions") if r["user_id"] == ana]
    assert not [r for r in fake.store.rows("login_budgets") if index in r["key"]]
    assert index not in stream_text(fake, ana)  # the blind index is gone from the event log too
    revoked = fake.published_since(mark, "identity.session_revoked.v1")
    assert [(r["data"]["session_id"], r["data"]["reason"]) for r in revoked] == [(tokens["session_id"], "erased")]
    (confirmed,) = fake.published_since(mark, ERASED)
    assert confirmed["data"] == {"request_id": REQUEST, "subject_id": ana, "mode": "deletion"}
    (shred,) = fake.audit_since(mark, action="erase")
    assert (shred["subject_id"], shred["fields"]) == (ana, [])

    # gone for everyone: no login, no profile, nobody's address
    assert fake.refused(lambda: fake.login("ana1@example.com.br")).status == 401
    assert fake.refused(lambda: fake.run(users.get, ana)).status == 404
    assert fake.refused(lambda: fake.run(users.update, ana, {"job_title": "X"}, today=fake.today,
                                         minimum_age=18)).status == 404
    assert privacy(fake, subjects.find_subject, "ana1@example.com.br") == {"subject_id": None, "kind": None}
    assert privacy(fake, subjects.export, ana) == {"service": "identity", "subject_id": ana, "kind": None}
    # the same request again (or another): confirmed again, nothing erased twice
    mark = fake.mark()
    privacy(fake, subjects.erase, ana, "deletion", REQUEST)
    privacy(fake, subjects.erase, ana, "blocking", "another")
    assert fake.events_since(mark) == ["identity.subject_erased.v1"] * 2
    assert fake.audit_since(mark, action="erase") == []
    # bia is untouched
    assert fake.run(users.get, bia)["email"] == "ana2@example.com.br"
    assert fake.login("ana2@example.com.br")["access_token"]


def test_anonymisation_keeps_a_row_without_any_personal_value(fake):
    ana = fake.add_user(1, role="supervisor")
    carla = customer(fake)
    privacy(fake, subjects.erase, ana, "anonymisation", REQUEST)
    privacy(fake, subjects.erase, carla["id"], "anonymisation", REQUEST)
    row = fake.row("users", ana)
    assert (row["status"], row["role"], row["email_index"]) == ("anonymised", "supervisor", None)
    assert all(row[f] is None for f in ("full_name", "email", "phone", "birth_date", "address", "job_title"))
    crow = fake.row("customers", carla["id"])
    assert (crow["status"], crow["email_index"], crow["phone_index"], crow["email"]) == ("anonymised", None, None,
                                                                                          None)
    shown = fake.run(users.get, ana)
    assert (shown["status"], shown["email"], shown["full_name"]) == ("anonymised", None, None)
    assert ana not in [u["id"] for u in fake.run(users.list_page, 100, None)["items"]]
    assert fake.run(customers.search, email="carla1@example.com", phone=None, limit=5, cursor=None)["items"] == []
    assert fake.refused(lambda: fake.login("ana1@example.com.br")).status == 401
    assert fake.refused(lambda: fake.run(customers.update, carla["id"], {"full_name": "X"},
                                         today=fake.today)).status == 404
    # then deletion: the row goes too
    privacy(fake, subjects.erase, ana, "deletion", "later")
    assert fake.row("users", ana) is None


def test_blocking_keeps_the_data_sealed_refuses_every_read_but_privacys_export_and_sign_in(fake):
    ana = fake.add_user(1)
    carla = customer(fake)
    sealed = fake.row("users", ana)["email"]
    mark = fake.mark()
    privacy(fake, subjects.erase, ana, "blocking", REQUEST)
    privacy(fake, subjects.erase, carla["id"], "blocking", REQUEST)
    assert fake.audit_since(mark, action="erase") == []  # nothing shredded
    assert (fake.row("users", ana)["status"], fake.row("users", ana)["email"]) == ("blocked", sealed)
    for call in (lambda: fake.run(users.get, ana), lambda: fake.run(customers.get, carla["id"]),
                 lambda: fake.run(users.update, ana, {"job_title": "X"}, today=fake.today, minimum_age=18),
                 lambda: fake.run(customers.update, carla["id"], {"full_name": "X"}, today=fake.today)):
        answer = fake.refused(call)
        assert (answer.status, answer.slug) == (403, "subject-blocked")
    denied = fake.audit_since(mark, outcome="denied")
    assert len(denied) == 4 and {d["subject_id"] for d in denied} == {ana, carla["id"]}
    assert ana not in [u["id"] for u in fake.run(users.list_page, 100, None)["items"]]
    assert fake.run(customers.search, email="carla1@example.com", phone=None, limit=5, cursor=None)["items"] == []
    assert fake.refused(lambda: fake.login("ana1@example.com.br")).status == 403
    exported = privacy(fake, subjects.export, ana)
    assert (exported["kind"], exported["status"], exported["profile"]["email"]) == ("user", "blocked",
                                                                                  "ana1@example.com.br")
    assert privacy(fake, subjects.export, carla["id"])["profile"]["full_name"] == "Carla 1"
    # deletion may follow
    privacy(fake, subjects.erase, ana, "deletion", "later")
    assert fake.row("users", ana) is None


def test_export_opens_the_profile_photo_sessions_and_role_audited_as_access(fake):
    ana = fake.add_user(1)
    fake.run(users.set_photo, ana, png(), actor=ana, role="attendant")
    session = fake.login("ana1@example.com.br")["session_id"]
    mark = fake.mark()
    out = privacy(fake, subjects.export, ana)
    assert (out["service"], out["kind"], out["role"], out["profile"]["full_name"]) == ("identity", "user",
                                                                                       "attendant", "Ana Souza 1")
    assert out["photo"]["content_type"] == "image/png" and out["photo"]["content_b64"]
    assert [s["id"] for s in out["sessions"]] == [session] and "privacy.self" in out["permissions"]
    audits = fake.audit_since(mark)
    assert {a["purpose"] for a in audits} == {"data subject access"}
    assert {a["action"] for a in audits} == {"export"}
    assert privacy(fake, subjects.export, customer(fake)["id"])["kind"] == "customer"
    assert fake.refused(lambda: privacy(fake, subjects.export, "not-an-id")).extensions["errors"][0]["field"] == (
        "subject_id")


def test_contacts_and_find_subject(fake):
    ana, bia = fake.add_user(1, locale="en"), fake.add_user(2)
    carla = customer(fake)
    privacy(fake, subjects.erase, bia, "deletion", REQUEST)
    out = privacy(fake, subjects.contacts, [ana, bia, carla["id"], "junk"])
    assert out == {"items": {ana: {"to": "ana1@example.com.br", "name": "Ana Souza 1", "locale": "en"},
                             carla["id"]: {"to": "carla1@example.com", "name": "Carla 1", "locale": "pt-BR"}}}
    opened = fake.store.audit_records(purpose="notification")
    assert sorted((a["subject_id"], a["action"], sorted(a["fields"])) for a in opened) == sorted(
        [(ana, "read", ["email", "full_name"]), (carla["id"], "read", ["email", "full_name"])])
    assert privacy(fake, subjects.find_subject, "ANA1@example.com.br") == {"subject_id": ana, "kind": "user"}
    assert privacy(fake, subjects.find_subject, "carla1@example.com") == {"subject_id": carla["id"],
                                                                         "kind": "customer"}
    assert fake.refused(lambda: privacy(fake, subjects.find_subject, "nope")).extensions["errors"][0]["field"] == (
        "email")


def test_subject_ids_pages_the_active_users_and_customers(fake):
    ids = [fake.add_user(n) for n in range(1, 6)]
    privacy(fake, subjects.erase, ids[0], "blocking", REQUEST)
    seen, cursor = [], None
    while True:
        page = privacy(fake, subjects.subject_ids, {"kind": "every_user"}, 2, cursor)
        seen += page["items"]
        cursor = page["next"]
        if cursor is None:
            break
    assert set(seen) == {fake.admin_id, *ids[1:]} and len(seen) == 5
    carla = customer(fake)
    assert privacy(fake, subjects.subject_ids, {"kind": "every_customer"})["items"] == [carla["id"]]
    bad = fake.refused(lambda: privacy(fake, subjects.subject_ids, {"kind": "channel"}))
    assert bad.extensions["errors"][0]["field"] == "criterion"


def test_an_erasure_names_a_bad_mode_and_erases_an_unknown_subject_as_nobody(fake):
    ana = fake.add_user(1)
    bad = fake.refused(lambda: privacy(fake, subjects.erase, ana, "forget"))
    assert (bad.status, bad.extensions["errors"][0]["field"]) == (422, "mode")
    nobody = "22222222-2222-4222-8222-222222222222"
    assert privacy(fake, subjects.erase, nobody, "deletion", REQUEST)["kind"] is None


def test_without_indexes_blanks_only_blind_indexes():
    assert without_indexes("identity.user_registered.v1", {"role": "a", "fields": {}, "email_index": "i"}) == {
        "role": "a", "fields": {}, "email_index": None}
    assert without_indexes("identity.customer_changed.v1", {"fields": {}, "indexes": {"phone_index": "p"}}) == {
        "fields": {}, "indexes": {"phone_index": None}}
    assert without_indexes("identity.customer_changed.v1", {"fields": {}, "indexes": {}}) is None
    assert without_indexes("identity.user_role_changed.v1", {"role": "a", "previous_role": "b"}) is None


def test_the_dpo_lifts_a_blocking_and_only_a_blocking(fake):
    ana, bia, dpo = fake.add_user(1), fake.add_user(2), add_dpo(fake, 3)
    fake.run(users.deactivate, bia)
    carla = customer(fake)
    for subject in (ana, bia, carla["id"]):
        privacy(fake, subjects.erase, subject, "blocking", REQUEST)
    # not the admin, not another service, not a subject that is not blocked
    assert fake.refused(lambda: privacy(fake, subjects.unblock, ana, actor=fake.admin_id, role="admin")).status == 403
    assert fake.refused(lambda: fake.as_service("gateway", subjects.unblock, ana, actor=dpo, role="dpo")).status == 403
    assert fake.refused(lambda: privacy(fake, subjects.unblock, dpo, actor=dpo, role="dpo")).status == 409
    mark = fake.mark()
    for subject in (ana, bia, carla["id"]):
        assert privacy(fake, subjects.unblock, subject, "decision-1", actor=dpo, role="dpo")["blocked"] is False
    assert [p["data"] for p in fake.published_since(mark, "identity.subject_unblocked.v1")][0] == {
        "request_id": "decision-1", "subject_id": ana}
    assert (fake.row("users", ana)["status"], fake.row("users", bia)["status"]) == ("active", "deactivated")
    assert fake.run(users.get, ana)["email"] == "ana1@example.com.br"
    assert fake.run(customers.get, carla["id"])["full_name"] == "Carla 1"
    assert fake.login("ana1@example.com.br")["access_token"]
    # blocked again later, then deleted: a deletion is never lifted
    privacy(fake, subjects.erase, ana, "blocking", "again")
    assert fake.row("users", ana)["status"] == "blocked"
    privacy(fake, subjects.erase, ana, "deletion", "later")
    assert fake.refused(lambda: privacy(fake, subjects.unblock, ana, actor=dpo, role="dpo")).status == 409


def test_the_erasure_event_names_what_is_malformed_and_is_confirmed_with_its_request(fake):
    ana = fake.add_user(1)
    with fake.uow(context=fake.service_context("privacy")) as uow:
        missing = fake.refused(lambda: subjects.erase_requested(uow, {"subject_id": ana, "mode": "deletion"}))
    assert missing.extensions["errors"][0]["field"] == "request_id"
    mark = fake.mark()
    with fake.system() as uow:  # a handler runs as the system, its entrypoint having checked the sender
        subjects.erase_requested(uow, {"request_id": REQUEST, "subject_id": ana, "mode": "anonymisation"})
    (confirmed,) = fake.published_since(mark, ERASED)
    assert confirmed["data"] == {"request_id": REQUEST, "subject_id": ana, "mode": "anonymisation"}
