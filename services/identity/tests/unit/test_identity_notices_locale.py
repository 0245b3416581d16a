"""A user's language: the language of the messages the notifier writes them (``recipients[i].locale``).

A preference, not personal data: in clear on the users read model and in its event, pt-BR unless
chosen, set at registration, changed by the user (whatever fields their role may edit) or an admin,
and refused (422 naming ``locale``) when it is no language identity writes in.
"""

from __future__ import annotations

import pytest
from upgestao_identity.service_layer import users

LOCALE_CHANGED = "identity.user_locale_changed.v1"


def rules(fake) -> dict:
    return {"today": fake.today, "minimum_age": 18}


def test_a_user_reads_pt_br_unless_they_chose_otherwise_at_registration(fake):
    ana = fake.add_user(1)
    assert fake.run(users.get, ana)["locale"] == "pt-BR" and fake.row("users", ana)["locale"] == "pt-BR"
    mark = fake.mark()
    bia = fake.add_user(2, locale="en")
    assert fake.events_since(mark) == ["identity.user_registered.v1", LOCALE_CHANGED]
    assert fake.run(users.get, bia)["locale"] == "en"


def test_a_user_changes_their_own_language_whatever_their_role_may_edit(fake):
    ana = fake.add_user(1)  # an attendant: phone, address, gender, photo only
    mark = fake.mark()
    answer = fake.run(users.update_own, {"locale": "en"}, actor=ana, role="attendant", **rules(fake))
    assert answer["changed"] == ["locale"] and answer["user"]["locale"] == "en"
    (event,) = fake.published_since(mark, LOCALE_CHANGED)
    assert event["data"] == {"user_id": ana, "locale": "en"}
    (audit,) = fake.audit_since(mark, fields=["locale"])
    assert (audit["action"], audit["subject_id"], audit["purpose"]) == ("update", ana, "own profile edit")
    mark = fake.mark()
    again = fake.run(users.update_own, {"locale": "en"}, actor=ana, role="attendant", **rules(fake))
    assert again["changed"] == [] and fake.events_since(mark) == []  # nothing changed, nothing recorded
    refused = fake.refused(lambda: fake.run(users.update_own, {"locale": "pt-BR", "job_title": "Chefe"},
                                            actor=ana, role="attendant", **rules(fake)))
    assert (refused.status, refused.extensions["fields"]) == (403, ["job_title"])  # the language is not the issue


def test_an_admin_changes_a_users_language(fake):
    ana = fake.add_user(1)
    answer = fake.run(users.update, ana, {"locale": "en", "phone": "11 98888-7777"}, **rules(fake))
    assert answer["changed"] == ["locale", "phone"] and fake.row("users", ana)["locale"] == "en"


@pytest.mark.parametrize("junk", ["pt", "EN", "fr", "", 7, ["en"], "pt_BR"])
def test_anything_but_a_language_identity_writes_in_is_refused_naming_locale(fake, junk):
    ana = fake.add_user(1)
    mark = fake.mark()
    for call in (lambda: fake.run(users.update_own, {"locale": junk}, actor=ana, role="attendant", **rules(fake)),
                 lambda: fake.run(users.update, ana, {"locale": junk, "phone": "11 98888-7777"}, **rules(fake)),
                 lambda: fake.add_user(2, locale=junk)):
        refused = fake.refused(call)
        assert (refused.status, refused.extensions["errors"][0]["field"]) == (422, "locale")
    assert fake.events_since(mark) == []


def test_the_notice_is_written_in_the_recipients_language_now(fake):
    ana = fake.add_user(1)
    mark = fake.mark()
    fake.auth().request_reset("ana1@example.com.br")
    (event,) = fake.published_since(mark, "identity.password_reset_requested.v1")
    assert fake.notice(event["event_id"])["recipients"][0]["locale"] == "pt-BR"
    fake.run(users.update_own, {"locale": "en"}, actor=ana, role="attendant", **rules(fake))
    assert fake.notice(event["event_id"])["recipients"][0]["locale"] == "en"
