"""The new-login alert, the notice protocol and a user's language on the running service (RabbitMQ,
PostgreSQL, the migrations): logins at once from one network are told once, the notice answers the
notifier alone, and nothing of the network or the address is stored in clear."""

from __future__ import annotations

import eventlet
import pytest
from upgestao_kernel.errors import ServiceError

NEW_LOGIN = "identity.new_login_detected.v1"


def alerts_of(identity, user_id: str) -> list[dict]:
    return [b for b in identity.published(NEW_LOGIN) if b["data"]["user_id"] == user_id]


def test_logins_from_a_new_network_are_told_once_and_the_notifier_alone_reads_the_notice(identity):
    user = identity.add_user(1)

    def login(n: int) -> str:  # a client of its own in each green thread (a proxy's socket has one reader)
        return identity.caller(source_ip=f"198.51.100.{20 + n}").login(user["email"], identity.password)["session_id"]

    sessions = list(eventlet.GreenPool().imap(login, range(4)))  # at once, from one network
    assert len(set(sessions)) == 4  # all four logged in (none lost a race on the user's stream)
    (alert,) = alerts_of(identity, user["id"])  # one network, told once
    assert set(alert["data"]) == {"user_id", "session_id"} and alert["data"]["session_id"] in sessions

    identity.caller(source_ip="203.0.113.9").login(user["email"], identity.password)
    assert len(alerts_of(identity, user["id"])) == 2

    with pytest.raises(ServiceError) as refused:
        identity.as_service("gateway").notice(alert["event_id"])
    assert refused.value.status == 403
    notice = identity.as_service("notifier").notice(alert["event_id"], user["id"])
    assert (notice["kind"], notice["data"]["network"], notice["next"]) == ("new_login", "198.51.100.0/24", None)
    (recipient,) = notice["recipients"]
    assert (recipient["to"], recipient["name"], recipient["locale"]) == (user["email"], user["full_name"], "pt-BR")
    opened = identity.audit(resource_type="notice", outcome="success")[-1]
    assert (opened["purpose"], sorted(opened["fields"])) == ("notification", ["email", "full_name", "network"])

    def texts(*tables: str) -> str:
        return " ".join(r.txt for table in tables for r in identity.rows(f"SELECT t::text AS txt FROM {table} t"))

    kept = texts("notices", "known_networks", "events")  # (the audit records keep the network: not these)
    assert "198.51.100" not in kept and "203.0.113" not in kept
    assert user["email"] not in kept + texts("outbox")
    assert len(identity.rows("SELECT network_index FROM known_networks WHERE user_id = :u", u=user["id"])) == 2


def test_a_users_language_through_the_service(identity):
    admin = identity.admin()
    with pytest.raises(ServiceError) as refused:
        admin.create_user(identity.user_data(2, locale="de"))
    assert (refused.value.status, refused.value.extensions["errors"][0]["field"]) == (422, "locale")
    user = admin.create_user(identity.user_data(3, locale="en"))
    assert user["locale"] == "en"
    own = identity.caller(user["id"], "attendant")
    assert own.update_me({"locale": "pt-BR"})["user"]["locale"] == "pt-BR"
    assert identity.rows("SELECT locale FROM users WHERE id = :u", u=user["id"])[0].locale == "pt-BR"
    assert [b["data"]["locale"] for b in identity.published("identity.user_locale_changed.v1")] == ["en", "pt-BR"]
