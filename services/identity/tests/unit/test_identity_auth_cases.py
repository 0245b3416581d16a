"""Authentication use cases on the fake unit of work: login (throttle, lockout, deactivated, re-hash),
refresh (rotation, reuse), logout, sessions, password change and reset."""

from __future__ import annotations

import json

import bcrypt
from upgestao_identity.adapters.hashing import PasswordHasher
from upgestao_identity.adapters.tokens import token_hash
from upgestao_identity.domain.sessions import Session
from upgestao_identity.domain.users import User
from upgestao_identity.service_layer import notices, sessions, users
from upgestao_identity.settings import IdentitySettings

EMAIL = "ana1@example.com.br"
PASSWORD = "correct horse battery staple"  # what the harness gives every user
NEW_PASSWORD = "a different long passphrase"


# -- login -------------------------------------------------------------------------------------


def test_login_starts_a_session_and_audits_it(fake):
    user_id = fake.add_user(1)
    mark = fake.mark()
    tokens = fake.login(EMAIL)
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"].startswith(tokens["session_id"] + ".")
    # (a first login is also a login from a network new for the user: see test_identity_notices_new_login.py)
    assert fake.events_since(mark) == ["identity.session_started.v1", "identity.new_login_detected.v1"]
    with fake.uow() as uow:
        session = uow.load(Session, tokens["session_id"])
    assert session.user_id == user_id and session.status == "active"
    assert session.current_hash == token_hash(tokens["refresh_token"])
    (audit,) = fake.audit_since(mark, action="login")
    assert (audit["action"], audit["resource_type"], audit["resource_id"], audit["subject_id"], audit["purpose"],
            audit["outcome"]) == ("login", "session", tokens["session_id"], user_id, "login", "success")
    assert fake.published_since(mark, "identity.session_started.v1")[0]["data"] == {
        "session_id": tokens["session_id"], "user_id": user_id}


def budget(fake, prefix: str) -> list[dict]:
    return [r for r in fake.store.rows("login_budgets") if r["key"].startswith(prefix)]


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer_and_are_counted(fake):
    user_id = fake.add_user(1)
    mark = fake.mark()
    wrong = fake.refused(lambda: fake.login(EMAIL, "not the password at all"))
    unknown = fake.refused(lambda: fake.login("nobody@example.com", PASSWORD))
    assert (wrong.status, wrong.slug) == (unknown.status, unknown.slug) == (401, "invalid-credentials")
    assert wrong.detail == unknown.detail
    assert fake.events_since(mark) == []
    audits = fake.audit_since(mark)
    assert [(a["subject_id"], a["outcome"], a["purpose"]) for a in audits] == [
        (user_id, "failure", "login (wrong e-mail or password)"), (None, "failure", "login (wrong e-mail or password)")]
    assert sorted(r["attempts"] for r in budget(fake, "account:")) == [1, 1]
    assert [r["attempts"] for r in budget(fake, "address:")] == [2]


def test_the_attempt_is_counted_before_the_password_is_checked(fake):
    """Finding 13: the budget is charged in a unit of work that commits before bcrypt runs, so a request
    racing this one already sees the attempt (here: the hasher looks at the store while it checks)."""
    fake.add_user(1)
    seen = []
    real_verify = fake.hasher.verify

    def watching(password, hashed):
        seen.append([r["attempts"] for r in budget(fake, "account:")])
        return real_verify(password, hashed)

    fake.hasher = type("Watching", (), {"verify": staticmethod(watching), "verify_dummy": fake.hasher.verify_dummy,
                                         "needs_rehash": fake.hasher.needs_rehash})()
    fake.refused(lambda: fake.login(EMAIL, "not the password at all"))
    assert seen == [[1]]


def test_an_account_is_slowed_after_its_allowance_even_for_the_right_password(fake):
    user_id = fake.add_user(1)
    for _ in range(fake.settings.lockout_threshold):
        assert fake.refused(lambda: fake.login(EMAIL, "not the password at all")).status == 401
    mark = fake.mark()
    locked = fake.refused(lambda: fake.login(EMAIL))
    assert (locked.status, locked.slug) == (429, "too-many-requests")
    assert 0 < locked.extensions["retry_after"] <= fake.settings.lockout_base_s
    (audit,) = fake.audit_since(mark)
    assert (audit["subject_id"], audit["outcome"], audit["purpose"]) == (user_id, "denied", "login (locked out)")
    assert fake.events_since(mark) == []
    assert [r["attempts"] for r in budget(fake, "account:")] == [fake.settings.lockout_threshold]  # not counted
    fake.advance(fake.settings.lockout_base_s + 1)  # the delay ends by itself
    assert fake.login(EMAIL)["session_id"]
    assert budget(fake, "account:") == []  # cleared by the success
    assert [r["attempts"] for r in budget(fake, "address:")] == [fake.settings.lockout_threshold]  # refunded


def test_every_further_attempt_doubles_the_delay(fake):
    fake.add_user(1)
    for _ in range(fake.settings.lockout_threshold + 1):
        fake.refused(lambda: fake.login(EMAIL, "not the password at all"))
        fake.advance(fake.settings.lockout_base_s + 1)  # each attempt after the previous delay ended
    fake.advance(-(fake.settings.lockout_base_s + 1))
    assert fake.refused(lambda: fake.login(EMAIL)).extensions["retry_after"] == 2 * fake.settings.lockout_base_s


def test_one_address_trying_many_accounts_is_slowed_not_the_others(make_fake):
    fake = make_fake(IdentitySettings(bcrypt_cost=4, ip_failure_limit=3))
    fake.add_user(1)
    for n in range(3):
        fake.refused(lambda n=n: fake.login(f"someone{n}@example.com", "whatever password"))
    slowed = fake.refused(lambda: fake.login(EMAIL))
    assert slowed.status == 429 and slowed.extensions["retry_after"] <= fake.settings.lockout_base_s
    assert fake.auth(source_ip="198.51.100.1").login(EMAIL, PASSWORD)["session_id"]  # another address is not
    fake.advance(fake.settings.lockout_base_s + 1)
    assert fake.login(EMAIL)["session_id"]  # a delay, never a lock


def test_a_refused_attempt_charges_nothing(make_fake):
    """An address already slowed: the account it names is not charged (its budget is the victim's)."""
    fake = make_fake(IdentitySettings(bcrypt_cost=4, ip_failure_limit=1))
    fake.add_user(1)
    fake.refused(lambda: fake.login("someone@example.com", "whatever password"))
    assert fake.refused(lambda: fake.login(EMAIL, "not the password at all")).status == 429
    assert len(budget(fake, "account:")) == 1  # someone@'s only


def test_a_deactivated_account_cannot_log_in(fake):
    user_id = fake.add_user(1)
    fake.run(users.deactivate, user_id)
    mark = fake.mark()
    answer = fake.refused(lambda: fake.login(EMAIL))
    assert (answer.status, answer.slug) == (403, "account-deactivated")
    (audit,) = fake.audit_since(mark)
    assert (audit["outcome"], audit["purpose"]) == ("denied", "login")


def test_login_rehashes_a_password_of_another_cost(fake):
    user_id = fake.add_user(1)
    old = PasswordHasher(5, allow_low_cost=True).hash(PASSWORD)
    fake.store.tables["credentials"][user_id]["password_hash"] = old
    assert fake.login(EMAIL)["session_id"]
    stored = fake.row("credentials", user_id)["password_hash"]
    assert stored.startswith("$2b$04$") and bcrypt.checkpw(PASSWORD.encode(), stored.encode())


def test_login_with_malformed_input_is_just_wrong(fake):
    assert fake.refused(lambda: fake.auth().login(None, None)).slug == "invalid-credentials"
    assert fake.refused(lambda: fake.auth().login("not an e-mail", 42)).slug == "invalid-credentials"


# -- refresh -----------------------------------------------------------------------------------


def test_refresh_rotates_the_token_and_a_reused_one_revokes_the_session(fake):
    user_id = fake.add_user(1)
    first = fake.login(EMAIL)
    mark = fake.mark()
    second = fake.auth().refresh(first["refresh_token"])
    assert second["session_id"] == first["session_id"] and second["refresh_token"] != first["refresh_token"]
    assert fake.events_since(mark) == ["identity.session_refreshed.v1"]
    assert fake.published_since(mark, "identity.session_refreshed.v1") == []  # private to identity
    mark = fake.mark()
    reuse = fake.refused(lambda: fake.auth().refresh(first["refresh_token"]))
    assert (reuse.status, reuse.slug) == (401, "invalid-token")
    # the revocation was committed although the call was refused
    assert fake.events_since(mark) == ["identity.session_revoked.v1"]
    assert fake.published_since(mark, "identity.session_revoked.v1")[0]["data"] == {
        "session_id": first["session_id"], "user_id": user_id, "reason": "refresh_token_reused"}
    (audit,) = fake.audit_since(mark)
    assert (audit["outcome"], audit["purpose"]) == ("denied", "refresh token reuse: session revoked")
    assert fake.refused(lambda: fake.auth().refresh(second["refresh_token"])).slug == "invalid-token"


def test_refresh_of_a_deactivated_user_revokes_the_session(fake):
    user_id = fake.add_user(1)
    tokens = fake.login(EMAIL)
    with fake.system() as uow:  # deactivated without revoking (as if the revocation were still to come)
        user = uow.load(User, user_id)
        user.deactivate()
        uow.save(user)
    mark = fake.mark()
    assert fake.refused(lambda: fake.auth().refresh(tokens["refresh_token"])).slug == "invalid-token"
    assert fake.events_since(mark) == ["identity.session_refreshed.v1", "identity.session_revoked.v1"]
    assert fake.row("sessions", tokens["session_id"])["revoked_reason"] == "deactivated"


def test_refresh_refuses_what_is_no_token(fake):
    for token in (None, "", "garbage", "x" * 36 + ".secret"):
        assert fake.refused(lambda t=token: fake.auth().refresh(t)).slug == "invalid-token"


# -- logout and sessions ------------------------------------------------------------------------


def test_logout_revokes_only_the_callers_own_session(fake):
    ana, bia = fake.add_user(1), fake.add_user(2)
    ana_session = fake.login(EMAIL)["session_id"]
    bia_session = fake.login("ana2@example.com.br")["session_id"]
    mark = fake.mark()
    fake.auth(ana, "attendant").logout(bia_session)  # not hers: nothing revoked, still audited
    fake.auth(ana, "attendant").logout(ana_session)
    assert fake.events_since(mark) == ["identity.session_revoked.v1"]
    assert fake.row("sessions", ana_session)["revoked_reason"] == "logout"
    assert fake.row("sessions", bia_session)["status"] == "active"
    assert [(a["action"], a["resource_id"], a["subject_id"]) for a in fake.audit_since(mark)] == [
        ("logout", bia_session, ana), ("logout", ana_session, ana)]
    assert fake.refused(lambda: fake.auth().logout(ana_session)).status == 401  # nobody is logged in
    assert bia


def test_list_sessions_shows_the_usable_ones_newest_first(fake):
    ana = fake.add_user(1)
    old = fake.login(EMAIL)["session_id"]
    fake.advance(1)
    current = fake.login(EMAIL)["session_id"]
    revoked = fake.login(EMAIL)["session_id"]
    fake.auth(ana, "attendant").logout(revoked)
    listed = fake.run(sessions.list_own, current, fake.now(), actor=ana, role="attendant")["items"]
    assert {s["id"] for s in listed} == {old, current}
    assert [s["current"] for s in listed if s["id"] == current] == [True]
    fake.advance(fake.settings.refresh_ttl_s + 5)  # expired sessions are over
    assert fake.run(sessions.list_own, None, fake.now(), actor=ana, role="attendant")["items"] == []


def test_delete_session_revokes_ones_own_and_hides_anyone_elses(fake):
    ana, bia = fake.add_user(1), fake.add_user(2)
    mine, theirs = fake.login(EMAIL)["session_id"], fake.login("ana2@example.com.br")["session_id"]
    answer = fake.refused(lambda: fake.run(sessions.delete_own, theirs, actor=ana, role="attendant"))
    assert (answer.status, answer.slug) == (404, "not-found")
    mark = fake.mark()
    fake.run(sessions.delete_own, mine, actor=ana, role="attendant")
    assert fake.events_since(mark) == ["identity.session_revoked.v1"]
    assert fake.row("sessions", mine)["revoked_reason"] == "deleted" and bia


def test_a_role_without_the_permission_is_refused_and_the_refusal_audited(fake):
    ana = fake.add_user(1)  # an attendant: no users.list
    mark = fake.mark()
    answer = fake.refused(lambda: fake.run(users.list_page, 10, None, actor=ana, role="attendant"))
    assert (answer.status, answer.slug, answer.extensions) == (403, "forbidden", {"permission": "users.list"})
    (audit,) = fake.audit_since(mark)
    assert (audit["outcome"], audit["purpose"], audit["action"]) == ("denied", "authorization", "list")


# -- password change ----------------------------------------------------------------------------


def test_change_password_keeps_the_current_session_and_revokes_the_others(fake):
    ana = fake.add_user(1)
    current, other = fake.login(EMAIL)["session_id"], fake.login(EMAIL)["session_id"]
    mark = fake.mark()
    result = fake.auth(ana, "attendant").change_password(PASSWORD, NEW_PASSWORD, current)
    assert result == {"revoked_sessions": 1, "revoked_session_ids": [other]}
    assert fake.events_since(mark) == ["identity.user_password_changed.v1", "identity.session_revoked.v1"]
    assert fake.published_since(mark, "identity.user_password_changed.v1")[0]["data"] == {"user_id": ana,
                                                                                         "how": "changed"}
    assert bcrypt.checkpw(NEW_PASSWORD.encode(), fake.row("credentials", ana)["password_hash"].encode())
    assert [(a["action"], a["resource_type"], a["fields"], a["purpose"]) for a in fake.audit_since(mark)] == [
        ("read", "user", ["email"], "password policy: no e-mail in the password"),
        ("update", "credential", ["password"], "password change")]
    assert fake.login(EMAIL, NEW_PASSWORD)["session_id"]


def test_change_password_refuses_a_wrong_current_password_and_a_weak_new_one(fake):
    ana = fake.add_user(1)
    auth = fake.auth(ana, "attendant")
    wrong = fake.refused(lambda: auth.change_password("not my password", NEW_PASSWORD, None))
    assert (wrong.status, wrong.slug, wrong.extensions["errors"]) == (
        403, "wrong-password", [{"field": "current_password", "message": "is wrong"}])
    weak = fake.refused(lambda: auth.change_password(PASSWORD, "short", None))
    assert weak.status == 422 and weak.extensions["errors"][0]["field"] == "new_password"
    with_email = fake.refused(lambda: auth.change_password(PASSWORD, "ana1 is my long password", None))
    assert with_email.extensions["errors"][0]["field"] == "new_password"
    assert bcrypt.checkpw(PASSWORD.encode(), fake.row("credentials", ana)["password_hash"].encode())
    assert "identity.user_password_changed.v1" not in fake.store.event_types()


# -- password reset ------------------------------------------------------------------------------


def _reset_token(fake, mark) -> str:
    """What the notifier does: the event names a notice (its own id), fetched from identity as the notifier."""
    (body,) = fake.published_since(mark, "identity.password_reset_requested.v1")
    assert set(body["data"]) == {"user_id", "expires_at"}  # ids only: no token on the broker
    with fake.uow(context=fake.notifier_context()) as uow:
        notice = notices.fetch(uow, body["event_id"], fake.now())
    assert notice["kind"] == "password_reset" and notice["recipients"][0]["id"] == body["data"]["user_id"]
    return fake.reset_token_of(notice)


def test_a_reset_request_for_an_unknown_email_says_nothing_and_is_audited(fake):
    mark = fake.mark()
    fake.auth().request_reset("nobody@example.com")
    fake.auth().request_reset(42)  # not even a string: nothing at all
    assert fake.events_since(mark) == []
    (audit,) = fake.audit_since(mark)
    assert (audit["outcome"], audit["purpose"]) == ("failure", "password reset requested for an unknown e-mail")


def test_password_reset_publishes_a_secret_token_then_sets_the_password_once(fake):
    ana = fake.add_user(1)
    session = fake.login(EMAIL)["session_id"]
    for _ in range(2):
        fake.refused(lambda: fake.login(EMAIL, "not the password at all"))
    mark = fake.mark()
    fake.auth().request_reset(EMAIL)
    assert fake.events_since(mark) == ["identity.password_reset_requested.v1"]
    (message,) = [m for m in fake.store.outbox[mark[1]:] if m["routing_key"] == "identity.password_reset_requested.v1"]
    assert "token" not in json.dumps(message["body"]["data"])
    assert [(a["subject_id"], a["purpose"]) for a in fake.audit_since(mark)] == [
        (ana, "password reset delivery"), (ana, "password reset requested")]  # the token sealed, then the request
    token = _reset_token(fake, mark)
    assert fake.row("password_resets", token_hash(token))["user_id"] == ana  # only the hash is kept
    assert fake.audit_since(mark)[-1]["purpose"] == "notification"  # the notifier's fetch, audited

    mark = fake.mark()
    assert fake.auth().confirm_reset(token, NEW_PASSWORD) == {"revoked_session_ids": [session]}
    assert fake.events_since(mark) == ["identity.password_reset_completed.v1", "identity.user_password_changed.v1",
                                       "identity.session_revoked.v1"]
    assert fake.row("password_resets", token_hash(token))["used_at"] is not None
    assert budget(fake, "account:") == []
    # a spent token is nothing to send any more (the first login's alert stays)
    assert [n["kind"] for n in fake.store.rows("notices")] == ["new_login"]
    assert fake.audit_since(mark)[-1]["purpose"] == "password reset"
    assert fake.login(EMAIL, NEW_PASSWORD)["session_id"]
    again = fake.refused(lambda: fake.auth().confirm_reset(token, "yet another long passphrase"))
    assert (again.status, again.slug) == (400, "invalid-token")


def test_a_reset_token_expires_and_a_password_change_spends_it(fake):
    ana = fake.add_user(1)
    mark = fake.mark()
    fake.auth().request_reset(EMAIL)
    expiring = _reset_token(fake, mark)
    fake.advance(fake.settings.reset_ttl_s + 1)
    assert fake.refused(lambda: fake.auth().confirm_reset(expiring, NEW_PASSWORD)).slug == "invalid-token"
    mark = fake.mark()
    fake.auth().request_reset(EMAIL)
    spent = _reset_token(fake, mark)
    fake.auth(ana, "attendant").change_password(PASSWORD, NEW_PASSWORD, None)
    assert fake.refused(lambda: fake.auth().confirm_reset(spent, "yet another long passphrase")).slug == "invalid-token"
    assert fake.refused(lambda: fake.auth().confirm_reset("", NEW_PASSWORD)).slug == "invalid-token"
    weak = fake.refused(lambda: fake.auth().confirm_reset(spent, "short"))
    assert weak.slug == "invalid-token"  # the token is checked first
