"""A login from a network not seen for the user lately is told to the user.

The network is the client's IPv4 /24 or IPv6 /48 (as the audit keeps it); a user's known networks
are blind indexes of (user, network), never the network; the event carries ids only and the notice
holds ciphertext only; the first login of a user alerts too (an attacker may be the first to use an
account).
"""

from __future__ import annotations

import json
from datetime import timedelta

from upgestao_identity.settings import IdentitySettings
from upgestao_kernel.leaks import LeakScanner

EMAIL = "ana1@example.com.br"
NEW_LOGIN = "identity.new_login_detected.v1"


def login_from(fake, source_ip: str | None) -> tuple[str, list[dict]]:
    """(session id, the new-login events published by that login)."""
    mark = fake.mark()
    session = fake.auth(source_ip=source_ip).login(EMAIL, fake.password)["session_id"]
    return session, fake.published_since(mark, NEW_LOGIN)


def test_the_first_login_alerts_with_ids_only_then_the_same_network_does_not(fake):
    ana = fake.add_user(1)
    mark = fake.mark()
    session, (event,) = login_from(fake, "203.0.113.7")
    assert event["data"] == {"user_id": ana, "session_id": session}
    assert fake.events_since(mark) == ["identity.session_started.v1", NEW_LOGIN]
    (notice,) = fake.store.rows("notices")
    assert (notice["id"], notice["kind"], notice["user_id"]) == (event["event_id"], "new_login", ana)
    assert notice["expires_at"] - notice["created_at"] == timedelta(days=7)
    assert login_from(fake, "203.0.113.200")[1] == []  # the same /24
    assert login_from(fake, "203.0.113.7")[1] == []


def test_another_network_alerts_ipv4_and_ipv6_by_their_prefix(fake):
    fake.add_user(1)
    login_from(fake, "203.0.113.7")
    assert len(login_from(fake, "198.51.100.7")[1]) == 1
    assert len(login_from(fake, "2001:db8:1234:1::1")[1]) == 1
    assert login_from(fake, "2001:db8:1234:ffff::2")[1] == []  # the same /48
    assert login_from(fake, "::ffff:198.51.100.99")[1] == []  # IPv4-mapped: the IPv4 /24 seen above
    networks = {fake.notice(e["event_id"])["data"]["network"]
                for e in fake.store.published(NEW_LOGIN)}
    assert networks == {"203.0.113.0/24", "198.51.100.0/24", "2001:db8:1234::/48"}


def test_a_network_not_seen_for_the_configured_days_alerts_again(make_fake):
    fake = make_fake(IdentitySettings(bcrypt_cost=4, known_network_days=30))
    fake.add_user(1)
    login_from(fake, "203.0.113.7")
    fake.advance(29 * 86400)
    assert login_from(fake, "203.0.113.7")[1] == []  # seen within 30 days: and seen again now
    fake.advance(29 * 86400)
    assert login_from(fake, "203.0.113.7")[1] == []
    login_from(fake, "198.51.100.7")
    fake.advance(31 * 86400)
    assert len(login_from(fake, "203.0.113.7")[1]) == 1
    # the networks no longer known are forgotten when a new one is found
    assert len(fake.store.rows("known_networks")) == 1


def test_a_login_without_a_client_address_has_nothing_to_compare(fake):
    fake.add_user(1)
    assert login_from(fake, None)[1] == []
    assert fake.store.rows("known_networks") == []


def test_each_user_has_their_own_networks(fake):
    fake.add_user(1)
    fake.add_user(2)
    login_from(fake, "203.0.113.7")
    mark = fake.mark()
    fake.auth(source_ip="203.0.113.7").login("ana2@example.com.br", fake.password)
    assert len(fake.published_since(mark, NEW_LOGIN)) == 1
    indexes = [r["network_index"] for r in fake.store.rows("known_networks")]
    assert len(set(indexes)) == 2  # one office, two users: two unlinkable indexes


def test_no_network_nor_address_in_events_published_views_or_stored_rows(fake):
    fake.add_user(1)
    addresses = ("203.0.113.7", "198.51.100.7", "2001:db8:1234:1::1")
    for ip in addresses:
        login_from(fake, ip)
    networks = ("203.0.113", "198.51.100", "2001:db8:1234")  # every form of the networks starts so
    scanner = LeakScanner([EMAIL, "Ana Souza 1", *networks])
    sources = {
        "events": [json.dumps(dict(e.data)) for e in fake.store.events],
        "published": [json.dumps(m["body"], default=str) for m in fake.store.outbox if m["exchange"] != "audit"],
        "notices": [json.dumps(r, default=str) for r in fake.store.rows("notices")],
        "known_networks": [json.dumps(r, default=str) for r in fake.store.rows("known_networks")],
    }
    assert scanner.assert_clean(sources) > 0
    # the audit records keep the client's network (kernel audit), never its address nor the e-mail
    audit = [json.dumps(m["body"], default=str) for m in fake.store.outbox if m["exchange"] == "audit"]
    assert LeakScanner([EMAIL, "Ana Souza 1", *addresses]).assert_clean({"audit": audit}) > 0
    for notice in fake.store.rows("notices"):  # ciphertext only (the scan above): of these two
        assert notice["kind"] == "new_login" and set(notice["sealed"]) == {"email", "network"}


def test_the_alert_is_in_the_unit_of_the_session_start(fake):
    """A login refused at the last moment (a deactivated account) starts nothing and alerts nothing."""
    from upgestao_identity.service_layer import users

    ana = fake.add_user(1)
    fake.run(users.deactivate, ana)
    mark = fake.mark()
    refused = fake.refused(lambda: fake.auth(source_ip="203.0.113.7").login(EMAIL, fake.password))
    assert refused.status == 403
    assert fake.published_since(mark, NEW_LOGIN) == [] and fake.store.rows("known_networks") == []
