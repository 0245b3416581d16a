"""The notifier end to end on real RabbitMQ, PostgreSQL and SMTP (aiosmtpd): identity's events become
exactly one e-mail per (event, recipient), through retries, refusals and redeliveries; nothing personal
is left in its tables, events, audit records or logs."""

from __future__ import annotations

import re
import time

import sqlalchemy as sa
from upgestao_kernel.leaks import LeakScanner
from upgestao_kernel.schema import outbox
from upgestao_kernel.testing import wait_for

RESET = "identity.password_reset_requested.v1"
TOKEN = re.compile(r"token=([A-Za-z0-9_-]{20,})")


def _stays(predicate, seconds: float) -> bool:
    """``predicate`` holds for the whole window (to show that something does not happen)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not predicate():
            return False
        time.sleep(0.05)
    return True


def _reset_mail(room, n: int) -> tuple[dict, object]:
    user = room.add_user(n)
    room.request_reset(user["email"])
    [message] = room.smtp.wait_for(1)
    return user, message


def test_a_password_reset_arrives_once_as_multipart_mail_and_its_token_works(mailroom):
    user, message = _reset_mail(mailroom, 1)
    assert message["To"] == user["email"]
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert "List-Unsubscribe" not in message
    text = message.get_body(("plain",)).get_content()
    token = TOKEN.search(text).group(1)
    assert token in message.get_body(("html",)).get_content()
    mailroom.caller("identity").confirm_password_reset(token, "a brand new passphrase here")
    assert mailroom.caller("identity").login(user["email"], "a brand new passphrase here")["access_token"]
    [row] = mailroom.deliveries(recipient_id=user["id"])
    assert (row.status, row.attempts, row.kind, row.confirmed) == ("sent", 1, "password_reset", True)
    assert message["Message-ID"] == row.message_id
    _redelivered_event_gives_no_second_email(mailroom, user)


def _redelivered_event_gives_no_second_email(mailroom, user):
    # the event again, as a relay restart would, after the notifier's own record of having handled it
    # is gone (as if it had died before storing it): the delivery, keyed by (event, recipient), holds
    with mailroom.notifier_db.begin() as conn:
        conn.execute(sa.text("DELETE FROM processed_events"))
    with mailroom.identity_db.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.routing_key == RESET).values(sent_at=None))
    assert mailroom.publish() >= 1
    assert _stays(lambda: len(mailroom.smtp.messages()) == 1, 2.0)
    assert len(mailroom.deliveries(recipient_id=user["id"])) == 1


def test_smtp_down_then_up_is_delivered_after_a_retry_with_the_attempts_recorded_and_a_421_is_retried(mailroom):
    user = mailroom.add_user(3)
    mailroom.smtp.stop()
    mailroom.request_reset(user["email"])
    failed = wait_for(lambda: [r for r in mailroom.deliveries(recipient_id=user["id"])
                               if r.status == "soft_failed"], 15)
    assert failed[0].last_error and failed[0].next_attempt_at is not None
    mailroom.smtp.start()
    [message] = mailroom.smtp.wait_for(1, timeout=15)
    row = wait_for(lambda: [r for r in mailroom.deliveries(recipient_id=user["id"]) if r.status == "sent"], 10)[0]
    assert row.attempts >= 2 and message["Message-ID"] == row.message_id
    mailroom.smtp.clear()
    _a_421_is_retried(mailroom)


def test_a_550_is_a_hard_failure_never_retried_the_address_suppressed_and_shown_to_notifications_read(mailroom):
    user = mailroom.add_user(4)
    mailroom.smtp.reply_next("RCPT", 550, "5.1.1 mailbox unavailable")
    mailroom.request_reset(user["email"])
    row = wait_for(lambda: [r for r in mailroom.deliveries(recipient_id=user["id"])
                            if r.status == "hard_failed"], 15)[0]
    assert (row.attempts, row.last_code) == (1, 550)
    assert user["email"] not in (row.last_error or "")
    assert _stays(lambda: mailroom.deliveries(recipient_id=user["id"])[0].attempts == 1, 1.0)
    [suppressed] = mailroom._rows(mailroom.notifier_db, "SELECT * FROM suppressions")
    assert suppressed.delivery_id == row.id and user["email"] not in str(suppressed)
    assert mailroom.smtp.messages() == []
    _deliveries_are_answered_to_notifications_read_only(mailroom, user)


def _a_421_is_retried(mailroom):
    user = mailroom.add_user(5)
    mailroom.smtp.reply_next("DATA", 421, "4.3.2 try again later")
    mailroom.request_reset(user["email"])
    [message] = mailroom.smtp.wait_for(1, timeout=15)
    row = wait_for(lambda: [r for r in mailroom.deliveries(recipient_id=user["id"]) if r.status == "sent"], 10)[0]
    assert row.attempts == 2 and message["To"] == user["email"]


def test_every_use_of_an_address_is_audited_and_nothing_personal_is_left_behind(mailroom, capfd):
    user, message = _reset_mail(mailroom, 6)
    token = TOKEN.search(message.get_body(("plain",)).get_content()).group(1)
    wait_for(lambda: mailroom.deliveries(recipient_id=user["id"])[0].status == "sent", 10)
    delivery = mailroom.deliveries(recipient_id=user["id"])[0]
    with mailroom.notifier_db.connect() as conn:
        bodies = [r.body for r in conn.execute(sa.select(outbox.c.exchange, outbox.c.body))]
        tables = {name: [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {name}"))]
                  for name in ("deliveries", "suppressions", "events", "outbox", "processed_events")}
    sent = [b for b in bodies if b.get("action") == "notify"]
    assert [(b["subject_id"], b["resource_id"], b["purpose"]) for b in sent] == [
        (user["id"], delivery.id, "notification: password_reset")]
    assert set(sent[0]["fields"]) <= {"email", "full_name"} and "email" in sent[0]["fields"]
    opened = [r.body for r in mailroom._rows(mailroom.identity_db, "SELECT body FROM outbox WHERE exchange = 'audit'")
              if r.body["resource_type"] == "notice" and r.body["outcome"] == "success"]
    assert opened and all(b["purpose"] == "notification" for b in opened)
    logs = capfd.readouterr()
    leaks = LeakScanner([user["email"], token, user["full_name"]])
    assert leaks.scan({**tables, "stdout": [logs.out], "stderr": [logs.err]}) == []


def _deliveries_are_answered_to_notifications_read_only(mailroom, user):
    from nameko.exceptions import RemoteError
    from upgestao_kernel.errors import ServiceError
    from upgestao_kernel.testing_tokens import acting_as

    page = mailroom.as_admin("notifier").deliveries({"recipient_id": user["id"]})
    [item] = page["items"]
    assert (item["status"], item["kind"], item["attempts"], item["last_code"]) == ("hard_failed", "password_reset",
                                                                                   1, 550)
    attendant = mailroom.caller("notifier", acting_as(user["id"], "attendant"))
    try:
        attendant.deliveries({})
    except (ServiceError, RemoteError) as exc:
        assert getattr(exc, "status", 403) == 403
    else:
        raise AssertionError("an attendant read the delivery records")


def test_a_sign_in_from_a_new_network_is_told_once_in_the_users_language(mailroom):
    user = mailroom.add_user(8, locale="en")
    for _ in range(2):  # the second sign-in from the same network is not news
        mailroom.caller("identity", {"source_ip": "203.0.113.9"}).login(user["email"], "correct horse battery staple")
    mailroom.publish()
    [message] = mailroom.smtp.wait_for(1, timeout=15)
    assert message["To"] == user["email"] and message["Content-Language"] in (None, "en")
    text = message.get_body(("plain",)).get_content()
    assert "203.0.113.0/24" in text and "https://upgestao.test/me/sessions" in text
    row = wait_for(lambda: [r for r in mailroom.deliveries(recipient_id=user["id"]) if r.status == "sent"], 10)[0]
    assert row.kind == "new_login"
    assert _stays(lambda: len(mailroom.smtp.messages()) == 1, 1.0)
