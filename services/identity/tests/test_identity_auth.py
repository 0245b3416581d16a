"""Service tests of identity's authentication over real RPC, RabbitMQ and PostgreSQL: brute-force
lockout, password rules, re-hashing, password reset, sessions and their revocation, first admin."""

from __future__ import annotations

import uuid
from datetime import date

import bcrypt
import eventlet
import eventlet.event
import jwt
import pytest
import sqlalchemy as sa
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.outbox import SECRET_HEADER
from upgestao_kernel.testing import wait_for

WRONG = "definitely not the password"
NEW_PASSWORD = "a brand new passphrase"
REVOKED = "identity.session_revoked.v1"


def error_of(call, *args) -> ServiceError:
    with pytest.raises(ServiceError) as exc:
        call(*args)
    return exc.value


def outcome(proxy, email: str, password: str) -> str:
    """``ok`` for a login that succeeded, else the problem's slug."""
    try:
        proxy.login(email, password)
    except ServiceError as exc:
        return exc.slug
    return "ok"


def sessions_of(identity, user_id: str) -> dict[str, tuple[str, str | None]]:
    return {r.id: (r.status, r.revoked_reason)
            for r in identity.rows("SELECT id, status, revoked_reason FROM sessions WHERE user_id = :u", u=user_id)}


def assert_revocations_published(identity, expected: dict[str, tuple[str, str]]) -> None:
    """Each revoked session has exactly one published ``session_revoked`` event carrying ids and the reason."""
    bodies = {b["data"]["session_id"]: b["data"] for b in identity.published(REVOKED)}
    for session_id, (user_id, reason) in expected.items():
        assert bodies[session_id] == {"session_id": session_id, "user_id": user_id, "reason": reason}
    assert len(identity.published(REVOKED)) == len(bodies)


# -- brute-force protection ------------------------------------------------------------------


def test_account_lockout_expires_and_backs_off_exponentially(start_identity):
    identity = start_identity({"IDENTITY_LOCKOUT_BASE_S": "1"})
    user = identity.add_user(1)
    email, anon = user["email"], identity.caller()

    for _ in range(5):
        assert outcome(anon, email, WRONG) == "invalid-credentials"
    locked = error_of(anon.login, email, identity.password)  # the right password, still refused
    assert (locked.slug, locked.status) == ("too-many-requests", 429)
    # nameko turns exception arguments into strings on the way (the gateway makes it an int again)
    assert int(locked.extensions["retry_after"]) == 1  # base 1 s * 2**(5 failures - threshold 5)
    assert identity.audit(action="login", outcome="denied", subject_id=user["id"])

    # once the lock has expired, a 6th failure counts and doubles it: 1 s * 2**(6 - 5)
    wait_for(lambda: outcome(anon, email, WRONG) == "invalid-credentials", timeout=3, interval=0.1)
    again = error_of(anon.login, email, identity.password)
    assert again.slug == "too-many-requests" and int(again.extensions["retry_after"]) == 2

    # the right password works as soon as the lock ends, and clears the account's failures
    wait_for(lambda: outcome(anon, email, identity.password) == "ok", timeout=3, interval=0.1)
    assert outcome(anon, email, WRONG) == "invalid-credentials"
    assert outcome(anon, email, identity.password) == "ok"


def test_failures_from_one_address_lock_that_address_only(start_identity):
    identity = start_identity({"IDENTITY_IP_FAILURE_LIMIT": "3"})
    user = identity.add_user(2)
    attacker = identity.caller(source_ip="198.51.100.66")
    for n in range(3):  # three different e-mails: no account reaches its own threshold
        assert outcome(attacker, f"someone{n}@example.com.br", WRONG) == "invalid-credentials"
    locked = error_of(attacker.login, user["email"], identity.password)
    assert (locked.slug, locked.status) == ("too-many-requests", 429)
    assert int(locked.extensions["retry_after"]) >= 1
    assert outcome(identity.caller(source_ip="198.51.100.67"), user["email"], identity.password) == "ok"


def test_login_takes_the_email_as_typed_at_registration(identity):
    user = identity.add_user(3, email="  Zé.Ninguém@Exämple.com.br ")
    assert user["email"] == "Zé.Ninguém@xn--exmple-cua.com.br"
    anon = identity.caller()
    for typed in ("Zé.Ninguém@Exämple.com.br", "zé.ninguém@exämple.com.br", "ZÉ.NINGUÉM@xn--exmple-cua.com.br"):
        assert outcome(anon, typed, identity.password) == "ok", typed


# -- password rules ----------------------------------------------------------------------------


BAD_PASSWORDS = [
    ("Abcdef12!", "at least 10 characters"),  # 9 characters
    ("é" * 36 + "x", "72 bytes"),  # 37 characters but 73 bytes in UTF-8
    ("qwertyuiop", "too common"),
    ("my Ana4 secret words", "e-mail"),  # the local part of user 4's e-mail (ana4@...), in another case
]


def test_password_rules_on_create_user_and_change_password(identity):
    admin = identity.admin()
    for password, message in BAD_PASSWORDS:
        problem = error_of(admin.create_user, identity.user_data(4, password=password))
        assert (problem.slug, problem.status) == ("validation-error", 422)
        [error] = problem.extensions["errors"]
        assert error["field"] == "password" and message in error["message"], (password, error)
    assert [r.id for r in identity.rows("SELECT id FROM users")] == [identity.admin_id]  # no one but the admin
    user = admin.create_user(identity.user_data(4, password="é" * 36))  # exactly 72 bytes: accepted
    assert outcome(identity.caller(), user["email"], "é" * 36) == "ok"

    me = identity.caller(user["id"], "attendant")
    wrong = error_of(me.change_password, WRONG, NEW_PASSWORD)
    assert (wrong.status, wrong.slug, wrong.extensions["errors"][0]["field"]) == (403, "wrong-password",
                                                                                  "current_password")
    for password, message in BAD_PASSWORDS:
        problem = error_of(me.change_password, "é" * 36, password)
        [error] = problem.extensions["errors"]
        assert problem.status == 422 and error["field"] == "new_password" and message in error["message"]
    assert outcome(identity.caller(), user["email"], "é" * 36) == "ok"  # nothing changed


def test_create_user_is_authorised_before_the_body_is_judged(identity):
    attendant = identity.add_user(5)
    rid = str(uuid.uuid4())
    problem = error_of(identity.caller(attendant["id"], "attendant", request_id=rid).create_user,
                       identity.user_data(6, password="short"))
    assert (problem.slug, problem.status) == ("forbidden", 403)
    [denied] = identity.audit(request_id=rid)
    assert (denied["action"], denied["outcome"], denied["actor_id"]) == ("create", "denied", attendant["id"])


def test_change_password_revokes_the_other_sessions_but_not_the_current_one(identity):
    user = identity.add_user(7)
    anon = identity.caller()
    current = anon.login(user["email"], identity.password)
    other = anon.login(user["email"], identity.password)
    me = identity.caller(user["id"], "attendant")

    revoked = me.change_password(identity.password, NEW_PASSWORD, current["session_id"])
    assert revoked == {"revoked_sessions": 1, "revoked_session_ids": [other["session_id"]]}
    assert sessions_of(identity, user["id"]) == {current["session_id"]: ("active", None),
                                                 other["session_id"]: ("revoked", "password_changed")}
    assert error_of(anon.refresh, other["refresh_token"]).slug == "invalid-token"
    assert anon.refresh(current["refresh_token"])["session_id"] == current["session_id"]
    assert outcome(anon, user["email"], identity.password) == "invalid-credentials"
    assert outcome(anon, user["email"], NEW_PASSWORD) == "ok"
    assert_revocations_published(identity, {other["session_id"]: (user["id"], "password_changed")})


def test_login_rehashes_a_hash_of_another_cost(identity):
    user, password = identity.add_user(8), identity.password
    old = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    with identity.engine.begin() as conn:
        conn.execute(sa.text("UPDATE credentials SET password_hash = :h WHERE user_id = :u"),
                     {"h": old, "u": user["id"]})
    assert outcome(identity.caller(), user["email"], password) == "ok"
    [stored] = identity.rows("SELECT password_hash FROM credentials WHERE user_id = :u", u=user["id"])
    assert stored.password_hash.startswith("$2b$04$")  # re-hashed at the configured cost
    assert bcrypt.checkpw(password.encode(), stored.password_hash.encode())
    assert outcome(identity.caller(), user["email"], password) == "ok"


def test_rehash_on_login_never_undoes_a_password_changed_meanwhile(identity):
    """The login re-hashes after its session is committed; a password changed in between must stay changed.
    RPC cannot interleave that deterministically, so the use case runs here on the service's own database."""
    from upgestao_identity.adapters.hashing import PasswordHasher
    from upgestao_identity.adapters.sql_repositories import with_sql_repositories
    from upgestao_identity.entrypoints.dependencies import Identity
    from upgestao_identity.service_layer.auth import Auth
    from upgestao_kernel.nameko_ext import Database

    user, password = identity.add_user(16), identity.password
    with identity.engine.begin() as conn:
        conn.execute(sa.text("UPDATE credentials SET password_hash = :h WHERE user_id = :u"),
                     {"h": bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode(), "u": user["id"]})
    changed = bcrypt.hashpw(NEW_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()

    class ChangedMeanwhile(PasswordHasher):
        def hash(self, secret: str) -> str:
            with identity.engine.begin() as conn:  # the user changes the password from another session
                conn.execute(sa.text("UPDATE credentials SET password_hash = :h WHERE user_id = :u"),
                             {"h": changed, "u": user["id"]})
            return super().hash(secret)

    providers = identity.container.dependencies
    database = next(d for d in providers if isinstance(d, Database))
    c = next(d for d in providers if isinstance(d, Identity)).collaborators
    auth = Auth(lambda: with_sql_repositories(database.unit_of_work()), ChangedMeanwhile(4, allow_low_cost=True),
                c.issuer, c.settings, c.now)
    assert auth.login(user["email"], password)["session_id"]
    [stored] = identity.rows("SELECT password_hash FROM credentials WHERE user_id = :u", u=user["id"])
    assert stored.password_hash == changed
    assert outcome(identity.caller(), user["email"], NEW_PASSWORD) == "ok"


# -- password reset ------------------------------------------------------------------------------


def reset_token(identity, user_id: str) -> str:
    return identity.reset_token(user_id)


def as_service(identity, service: str):
    return identity.as_service(service)


def test_password_reset_sends_ids_only_and_the_notifier_alone_fetches_the_token(identity):
    user = identity.add_user(10)
    anon = identity.caller()

    # an unknown e-mail: the same answer, and nothing but an audit record
    outbox_before = len(identity.outbox())
    events_before = identity.rows("SELECT count(*) AS n FROM events")[0].n
    rid = str(uuid.uuid4())
    assert identity.caller(request_id=rid).request_password_reset("nobody@example.com.br") is None
    new = identity.outbox()[outbox_before:]
    assert [(r.exchange, r.body["outcome"], r.body["request_id"]) for r in new] == [("audit", "failure", rid)]
    assert identity.rows("SELECT count(*) AS n FROM events")[0].n == events_before

    sessions = [anon.login(user["email"], identity.password)["session_id"] for _ in range(2)]
    assert anon.request_password_reset("ANA10@example.com.br ") is None

    [row] = identity.outbox(routing_key="identity.password_reset_requested.v1")
    assert set(row.body["data"]) == {"user_id", "expires_at"} and SECRET_HEADER not in (row.headers or {})

    # anyone but the notifier is refused, audited: the test's own client (no service), the gateway's user
    for caller in (identity.caller(), as_service(identity, "gateway")):
        refused = error_of(caller.notice, row.body["event_id"])
        assert (refused.status, refused.slug) == (403, "forbidden")
    denied = [r.body for r in identity.outbox(exchange="audit") if r.body["resource_type"] == "notice"]
    assert [(d["outcome"], d["purpose"]) for d in denied] == [("denied", "notification")] * 2

    notice = as_service(identity, "notifier").notice(row.body["event_id"])
    token = identity.reset_token_of(notice)
    (recipient,) = notice["recipients"]
    assert (notice["kind"], recipient["id"], recipient["to"]) == ("password_reset", user["id"], user["email"])
    opened = [r.body for r in identity.outbox(exchange="audit") if r.body["resource_type"] == "notice"][-1]
    assert (opened["outcome"], opened["purpose"], opened["subject_id"]) == ("success", "notification", user["id"])
    assert sorted(opened["fields"]) == ["email", "full_name", "reset_token"]
    stored = " ".join(r.txt for r in identity.rows("SELECT e::text AS txt FROM events e")) + " ".join(
        r.txt for r in identity.rows("SELECT o::text AS txt FROM outbox o")) + " ".join(
        r.txt for r in identity.rows("SELECT n::text AS txt FROM notices n"))
    assert token not in stored  # only its hash, and its vault ciphertext

    answer = anon.confirm_password_reset(token, NEW_PASSWORD)
    assert set(answer["revoked_session_ids"]) == set(sessions_of(identity, user["id"])) - {
        sid for sid, (status, reason) in sessions_of(identity, user["id"]).items() if reason != "password_reset"}
    assert outcome(anon, user["email"], identity.password) == "invalid-credentials"
    assert outcome(anon, user["email"], NEW_PASSWORD) == "ok"
    assert {s: sessions_of(identity, user["id"])[s] for s in sessions} == {
        s: ("revoked", "password_reset") for s in sessions}
    assert_revocations_published(identity, {s: (user["id"], "password_reset") for s in sessions})
    # a spent token is nothing to send any more (the first login's alert stays)
    assert [r.kind for r in identity.rows("SELECT kind FROM notices")] == ["new_login"]

    again = error_of(anon.confirm_password_reset, token, "yet another passphrase")
    assert (again.slug, again.status) == ("invalid-token", 400)
    assert outcome(anon, user["email"], NEW_PASSWORD) == "ok"


def test_reset_requests_are_throttled_per_account_with_the_same_answer(identity):
    user = identity.add_user(12)
    anon = identity.caller(source_ip="198.51.100.23")
    for _ in range(5):
        assert anon.request_password_reset(user["email"]) is None  # always the same 202 at the gateway
    published = [b for b in identity.published("identity.password_reset_requested.v1")
                 if b["data"]["user_id"] == user["id"]]
    assert len(published) == 3  # IDENTITY_RESET_ACCOUNT_LIMIT: the first delay starts after the third
    throttled = [r.body for r in identity.outbox(exchange="audit")
                 if r.body["purpose"] == "password reset requested (throttled)"]
    assert [(t["outcome"], t["subject_id"]) for t in throttled] == [("denied", user["id"])] * 2


def test_an_expired_reset_token_is_refused(identity):
    user = identity.add_user(11)
    anon = identity.caller()
    anon.request_password_reset(user["email"])
    token = reset_token(identity, user["id"])
    with identity.engine.begin() as conn:
        conn.execute(sa.text("UPDATE password_resets SET expires_at = now() - interval '1 second'"))
    problem = error_of(anon.confirm_password_reset, token, NEW_PASSWORD)
    assert (problem.slug, problem.status) == ("invalid-token", 400)
    assert problem.extensions["errors"][0]["field"] == "token"
    assert error_of(anon.confirm_password_reset, "not-a-token", NEW_PASSWORD).slug == "invalid-token"
    assert outcome(anon, user["email"], identity.password) == "ok"


# -- sessions ------------------------------------------------------------------------------------


def test_own_sessions_listed_deleted_and_logged_out(identity):
    user, someone = identity.add_user(12), identity.add_user(13)
    anon = identity.caller()
    first, second, third = (anon.login(user["email"], identity.password) for _ in range(3))
    theirs = anon.login(someone["email"], identity.password)
    me = identity.caller(user["id"], "attendant")

    listed = me.list_sessions(first["session_id"])["items"]
    assert {s["id"] for s in listed} == {first["session_id"], second["session_id"], third["session_id"]}
    assert [s["id"] for s in listed if s["current"]] == [first["session_id"]]

    assert me.delete_session(second["session_id"]) is None
    for foreign in (theirs["session_id"], str(uuid.uuid4())):  # someone else's session is as good as absent
        problem = error_of(me.delete_session, foreign)
        assert (problem.slug, problem.status) == ("not-found", 404)
    me.logout(theirs["session_id"])  # not theirs to end: nothing happens
    me.logout(first["session_id"])

    assert sessions_of(identity, user["id"]) == {first["session_id"]: ("revoked", "logout"),
                                                 second["session_id"]: ("revoked", "deleted"),
                                                 third["session_id"]: ("active", None)}
    assert sessions_of(identity, someone["id"]) == {theirs["session_id"]: ("active", None)}
    assert [s["id"] for s in me.list_sessions()["items"]] == [third["session_id"]]
    fourth = anon.login(user["email"], identity.password)
    with identity.engine.begin() as conn:  # a session past its expiry is over, revoked or not
        conn.execute(sa.text("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = :s"),
                     {"s": fourth["session_id"]})
    assert [s["id"] for s in me.list_sessions()["items"]] == [third["session_id"]]
    assert error_of(anon.refresh, first["refresh_token"]).slug == "invalid-token"
    assert error_of(anon.refresh, second["refresh_token"]).slug == "invalid-token"
    assert anon.refresh(third["refresh_token"])["session_id"] == third["session_id"]
    assert_revocations_published(identity, {first["session_id"]: (user["id"], "logout"),
                                            second["session_id"]: (user["id"], "deleted")})


def test_deactivation_and_role_change_revoke_every_session(identity):
    leaving, promoted = identity.add_user(14), identity.add_user(15)
    anon, admin = identity.caller(), identity.admin()
    leaving_sessions = [anon.login(leaving["email"], identity.password) for _ in range(2)]
    promoted_sessions = [anon.login(promoted["email"], identity.password) for _ in range(2)]

    answer = admin.deactivate_user(leaving["id"])
    assert (answer["id"], answer["status"]) == (leaving["id"], "deactivated")
    assert set(answer["revoked_session_ids"]) == {s["session_id"] for s in leaving_sessions}
    assert set(sessions_of(identity, leaving["id"]).values()) == {("revoked", "deactivated")}
    problem = error_of(anon.login, leaving["email"], identity.password)
    assert (problem.slug, problem.status) == ("account-deactivated", 403)
    assert outcome(anon, leaving["email"], WRONG) == "invalid-credentials"  # says nothing without the password
    assert error_of(anon.refresh, leaving_sessions[0]["refresh_token"]).slug == "invalid-token"

    changed = admin.update_user(promoted["id"], {"role": "supervisor"})
    assert changed["changed"] == ["role"] and changed["user"]["role"] == "supervisor"
    assert set(sessions_of(identity, promoted["id"]).values()) == {("revoked", "role_changed")}
    assert error_of(anon.refresh, promoted_sessions[1]["refresh_token"]).slug == "invalid-token"
    fresh = anon.login(promoted["email"], identity.password)
    assert jwt.decode(fresh["access_token"], options={"verify_signature": False})["role"] == "supervisor"
    assert admin.update_user(promoted["id"], {"role": "supervisor"})["changed"] == []  # no change, no revocation
    assert sessions_of(identity, promoted["id"])[fresh["session_id"]] == ("active", None)

    assert_revocations_published(identity, {
        **{s["session_id"]: (leaving["id"], "deactivated") for s in leaving_sessions},
        **{s["session_id"]: (promoted["id"], "role_changed") for s in promoted_sessions},
    })


# -- first admin -----------------------------------------------------------------------------------


ADMIN_ENV = {"UPGESTAO_ADMIN_EMAIL": "root@example.com.br", "UPGESTAO_ADMIN_PASSWORD": "the first admin's passphrase",
             "UPGESTAO_ADMIN_BIRTH_DATE": date(date.today().year - 40, 1, 15).isoformat()}


def admins(identity) -> list:
    return identity.rows("SELECT id FROM users WHERE role = 'admin'")


def test_health_is_ok_only_once_the_first_admin_exists(start_identity, monkeypatch):
    """/readyz relies on health(): ready must mean that the admin of the environment can log in
    (issue 9, defect 3: a login right after readiness got 401)."""
    from upgestao_identity.service_layer import bootstrap

    gate = eventlet.event.Event()
    create_admin = bootstrap.create_admin

    def slow_create_admin(*args, **kwargs):
        gate.wait()
        return create_admin(*args, **kwargs)

    monkeypatch.setattr(bootstrap, "create_admin", slow_create_admin)
    identity = start_identity(ADMIN_ENV, ready=False)
    starting = identity.caller().health()
    assert starting["status"] == "starting" and "first admin" in starting["reason"], starting
    gate.send(True)
    identity.wait_bootstrap()
    assert identity.caller().health() == {"service": "identity", "status": "ok", "database": "ok"}
    assert identity.caller().login("root@example.com.br", ADMIN_ENV["UPGESTAO_ADMIN_PASSWORD"])["access_token"]


def test_health_never_turns_ok_when_the_first_admin_is_refused(start_identity):
    underage = {**ADMIN_ENV, "UPGESTAO_ADMIN_BIRTH_DATE": date(date.today().year - 10, 1, 15).isoformat()}
    identity = start_identity(underage, ready=False)
    identity.wait_bootstrap()
    health = identity.caller().health()
    assert health["status"] == "starting" and "refused" in health["reason"], health
    assert admins(identity) == []


def test_first_admin_is_created_once_and_can_log_in(start_identity):
    # two replicas starting together on a fresh database ...
    first = start_identity(ADMIN_ENV, ready=False)
    second = start_identity(ADMIN_ENV, database_url=first.database_url, ready=False)
    first.wait_bootstrap()
    second.wait_bootstrap()
    [admin] = admins(first)
    assert [r.name for r in first.rows("SELECT name FROM roles ORDER BY name")] == [
        "admin", "attendant", "dpo", "supervisor"]
    assert first.rows("SELECT count(*) AS n FROM events WHERE type = 'identity.role_defined.v1'")[0].n == 4

    tokens = first.caller().login("root@example.com.br", ADMIN_ENV["UPGESTAO_ADMIN_PASSWORD"])
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["role"]) == (admin.id, "admin")
    assert first.caller(admin.id, "admin").me()["full_name"] == "Administrator"

    # ... and a restart later: still the one admin
    third = start_identity(ADMIN_ENV, database_url=first.database_url)
    third.wait_bootstrap()
    assert admins(third) == [admin]
    assert len(first.rows("SELECT id FROM users")) == 1
