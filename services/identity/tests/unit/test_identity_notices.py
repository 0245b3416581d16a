"""The notice protocol identity answers the notifier with, for each kind of notice.

``notice(id, recipient_id=None, cursor=None)`` answers ``{id, kind, campaign_id, data, recipients:
[{id, to, locale, name, vars}], next}``: the same shape every owning service gives, opened in one
audited opening (purpose ``notification``, the fields it opened listed) and for the notifier only.
"""

from __future__ import annotations

from upgestao_identity.service_layer import notices, users

EMAIL = "ana1@example.com.br"
PROTOCOL = {"id", "kind", "campaign_id", "data", "recipients", "next"}
RECIPIENT = {"id", "to", "locale", "name", "vars"}


def _event_id(fake, mark, event_type: str) -> str:
    (body,) = fake.published_since(mark, event_type)
    return body["event_id"]


def _opening(fake, mark) -> dict:
    (audit,) = fake.audit_since(mark, resource_type="notice")
    return audit


def test_a_password_reset_notice_gives_the_token_to_its_recipient_and_the_expiry_to_all(fake):
    ana = fake.add_user(1)
    mark = fake.mark()
    fake.auth().request_reset(EMAIL)
    notice_id = _event_id(fake, mark, "identity.password_reset_requested.v1")
    mark = fake.mark()
    notice = fake.notice(notice_id)
    assert set(notice) == PROTOCOL
    assert (notice["id"], notice["kind"], notice["campaign_id"], notice["next"]) == (
        notice_id, "password_reset", None, None)
    assert set(notice["data"]) == {"expires_at"}
    (recipient,) = notice["recipients"]
    assert set(recipient) == RECIPIENT
    assert (recipient["id"], recipient["to"], recipient["locale"], recipient["name"]) == (
        ana, EMAIL, "pt-BR", "Ana Souza 1")
    assert set(recipient["vars"]) == {"reset_token"} and len(recipient["vars"]["reset_token"]) == 43
    audit = _opening(fake, mark)
    assert (audit["action"], audit["outcome"], audit["purpose"], audit["subject_id"], audit["resource_id"]) == (
        "read", "success", "notification", ana, notice_id)
    assert sorted(audit["fields"]) == ["email", "full_name", "reset_token"]


def test_an_email_change_notice_goes_to_the_old_address_with_when_it_happened(fake):
    ana = fake.add_user(1)
    mark = fake.mark()
    fake.run(users.update, ana, {"email": "ana.nova@example.com.br"}, today=fake.today, minimum_age=18)
    notice_id = _event_id(fake, mark, "identity.user_email_changed.v1")
    mark = fake.mark()
    notice = fake.notice(notice_id)
    assert notice["kind"] == "email_changed" and set(notice["data"]) == {"occurred_at"}
    (recipient,) = notice["recipients"]
    assert (recipient["to"], recipient["name"], recipient["vars"]) == (EMAIL, "Ana Souza 1", {})  # the OLD one
    assert sorted(_opening(fake, mark)["fields"]) == ["email", "full_name"]


def test_a_new_login_notice_gives_the_network_never_the_address(fake):
    ana = fake.add_user(1)
    mark = fake.mark()
    session = fake.auth(source_ip="203.0.113.77").login(EMAIL, fake.password)["session_id"]
    notice_id = _event_id(fake, mark, "identity.new_login_detected.v1")
    mark = fake.mark()
    notice = fake.notice(notice_id)
    assert notice["kind"] == "new_login"
    assert notice["data"]["network"] == "203.0.113.0/24" and set(notice["data"]) == {"occurred_at", "network"}
    (recipient,) = notice["recipients"]
    assert (recipient["id"], recipient["to"], recipient["vars"]) == (ana, EMAIL, {})
    assert sorted(_opening(fake, mark)["fields"]) == ["email", "full_name", "network"]
    assert session not in str(notice)  # the session is the event's, not the message's


def test_a_recipient_filter_answers_that_recipient_or_404_and_a_cursor_is_accepted(fake):
    ana = fake.add_user(1)
    bia = fake.add_user(2)
    mark = fake.mark()
    fake.auth().request_reset(EMAIL)
    notice_id = _event_id(fake, mark, "identity.password_reset_requested.v1")
    assert fake.notice(notice_id, ana)["recipients"][0]["id"] == ana
    mark = fake.mark()
    other = fake.refused(lambda: fake.notice(notice_id, bia))
    assert (other.status, other.slug) == (404, "not-found")
    assert fake.audit_since(mark, resource_type="notice") == []  # nothing opened for nobody
    with fake.uow(context=fake.notifier_context()) as uow:
        paged = notices.fetch(uow, notice_id, fake.now(), None, "any-cursor")
    assert paged["next"] is None and len(paged["recipients"]) == 1


def test_only_the_notifier_fetches_a_notice_and_a_refusal_is_audited(fake):
    fake.add_user(1)
    mark = fake.mark()
    fake.auth().request_reset(EMAIL)
    notice_id = _event_id(fake, mark, "identity.password_reset_requested.v1")
    mark = fake.mark()
    refused = fake.refused(lambda: fake.run(notices.fetch, notice_id, fake.now()))  # the admin
    assert (refused.status, refused.slug) == (403, "forbidden")
    (audit,) = fake.audit_since(mark)
    assert (audit["outcome"], audit["purpose"], audit["fields"]) == ("denied", "notification", [])


def test_a_notice_of_an_erased_user_is_gone(fake):
    ana = fake.add_user(1)
    mark = fake.mark()
    fake.auth(source_ip="198.51.100.4").login(EMAIL, fake.password)
    notice_id = _event_id(fake, mark, "identity.new_login_detected.v1")
    with fake.system() as uow:
        uow.personal.shred(subject_id=ana, resource_type="user", purpose="erasure (test)")
    gone = fake.refused(lambda: fake.notice(notice_id))
    assert (gone.status, gone.slug) == (404, "not-found")
