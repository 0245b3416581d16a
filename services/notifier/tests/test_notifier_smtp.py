"""The SMTP mailer against a real SMTP server (aiosmtpd in a child process, ``testing_smtp``): delivery,
connection reuse, the classification of replies, SMTP down and up, a dead pooled connection, timeouts,
AUTH and STARTTLS refusals. No broker, no database: fast and unmarked."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import eventlet
import pytest
from upgestao_kernel.logging import configure_logging
from upgestao_notifier.adapters.mime import build_message, message_id_for
from upgestao_notifier.adapters.smtp import SmtpMailer, parse_smtp_url
from upgestao_notifier.testing_smtp import SmtpTestServer

SENDER = "no-reply@upgestao.example"
TO = "maria.silva@example.com"


@pytest.fixture
def server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as running:
        yield running


def mailer_for(server: SmtpTestServer, timeout_s: float = 5.0, **kw) -> SmtpMailer:
    return SmtpMailer(parse_smtp_url(server.url, timeout_s=timeout_s), **kw)


def a_message(n: int = 1, *, to: str = TO):
    return build_message(subject=f"Redefinição de senha {n}", text=f"Olá! código {n}\n", html=f"<p>Olá! {n}</p>",
                         sender=SENDER, to=to, message_id=message_id_for(f"event-{n}", "recipient-1", "upgestao.test"),
                         security=True)


def test_a_message_is_delivered_and_parsed_back_as_sent(server):
    mailer = mailer_for(server)
    outcome = mailer.send(a_message(), sender=SENDER, to=TO)
    assert (outcome.status, outcome.code, outcome.error) == ("sent", 250, None)
    [received] = server.wait_for(1)
    assert received["Subject"] == "Redefinição de senha 1"
    assert received["Message-ID"] == message_id_for("event-1", "recipient-1", "upgestao.test")
    assert received.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Olá! código 1\n"
    assert server.envelopes() == [{"mail_from": SENDER, "rcpt_tos": [TO]}]
    mailer.close()


def test_ten_sends_reuse_one_connection(server):
    mailer = mailer_for(server)
    outcomes = [mailer.send(a_message(n), sender=SENDER, to=TO) for n in range(10)]
    assert {o.status for o in outcomes} == {"sent"}
    assert len(server.wait_for(10)) == 10
    assert server.connections() == 1
    mailer.close()


def test_concurrent_senders_share_at_most_pool_size_connections(server):
    mailer = mailer_for(server, pool_size=3)
    pool = eventlet.GreenPool(10)
    outcomes = list(pool.imap(lambda n: mailer.send(a_message(n), sender=SENDER, to=TO), range(30)))
    assert {o.status for o in outcomes} == {"sent"}
    assert len(server.wait_for(30)) == 30
    assert 1 <= server.connections() <= 3
    mailer.close()


def test_550_at_rcpt_is_hard_failed_without_the_address_and_the_connection_carries_on(server):
    mailer = mailer_for(server)
    server.reply_next("RCPT", 550, f"5.1.1 <{TO}>: Recipient address rejected: User unknown")
    outcome = mailer.send(a_message(), sender=SENDER, to=TO)
    assert (outcome.status, outcome.code) == ("hard_failed", 550)
    assert outcome.error == "550 5.1.1 <address>: Recipient address rejected: User unknown"
    assert "maria" not in outcome.error
    # RSET, then the same connection takes the next message
    assert mailer.send(a_message(2), sender=SENDER, to=TO).status == "sent"
    assert len(server.wait_for(1)) == 1 and server.connections() == 1
    mailer.close()


@pytest.mark.parametrize(("stage", "code", "status"), [
    ("MAIL", 451, "soft_failed"), ("RCPT", 450, "soft_failed"), ("DATA", 452, "soft_failed"),
    ("RCPT", 551, "hard_failed"), ("DATA", 554, "hard_failed"),
    ("MAIL", 553, "soft_failed"),  # MAIL FROM answers for our sender: the recipient is not to blame
])
def test_4xx_is_soft_and_5xx_hard_at_every_stage(server, stage, code, status):
    mailer = mailer_for(server)
    server.reply_next(stage, code, "refused for the test")
    outcome = mailer.send(a_message(), sender=SENDER, to=TO)
    assert (outcome.status, outcome.code, outcome.error) == (status, code, f"{code} refused for the test")
    assert server.messages() == []
    mailer.close()


def test_421_is_soft_failed_and_the_next_send_opens_a_new_connection(server):
    mailer = mailer_for(server)
    server.reply_next("RCPT", 421, "4.3.2 service shutting down")
    outcome = mailer.send(a_message(), sender=SENDER, to=TO)
    assert (outcome.status, outcome.code, outcome.error) == ("soft_failed", 421, "421 4.3.2 service shutting down")
    assert mailer.send(a_message(2), sender=SENDER, to=TO).status == "sent"
    assert server.connections() == 2
    mailer.close()


def test_421_to_mail_on_a_pooled_connection_is_a_server_closing_an_idle_session_one_fresh_attempt(server):
    mailer = mailer_for(server)
    assert mailer.send(a_message(1), sender=SENDER, to=TO).status == "sent"
    server.reply_next("MAIL", 421, "4.4.2 upgestao-test-smtp Error: timeout exceeded")  # postfix's idle timeout
    assert mailer.send(a_message(2), sender=SENDER, to=TO).status == "sent"
    assert len(server.wait_for(2)) == 2 and server.connections() == 2
    # on a fresh connection a 421 is the answer: soft, not tried again
    mailer.close()
    server.reply_next("MAIL", 421, "4.3.2 too busy")
    outcome = mailer_for(server).send(a_message(3), sender=SENDER, to=TO)
    assert (outcome.status, outcome.code) == ("soft_failed", 421)


def test_smtp_down_is_soft_failed_connection_refused_then_sent_once_it_is_back(server):
    mailer = mailer_for(server)
    server.stop()
    started = time.monotonic()
    outcome = mailer.send(a_message(), sender=SENDER, to=TO)
    assert (outcome.status, outcome.code, outcome.error) == ("soft_failed", None, "connection refused")
    assert time.monotonic() - started < 2
    server.start()
    assert mailer.send(a_message(), sender=SENDER, to=TO).status == "sent"
    assert len(server.wait_for(1)) == 1
    mailer.close()


def test_a_dead_pooled_connection_is_replaced_transparently(server):
    mailer = mailer_for(server)
    assert mailer.send(a_message(1), sender=SENDER, to=TO).status == "sent"
    server.stop()  # drops the session the mailer keeps, as a server restart does
    server.start()
    outcome = mailer.send(a_message(2), sender=SENDER, to=TO)
    assert (outcome.status, outcome.code) == ("sent", 250)
    assert len(server.wait_for(2)) == 2
    assert server.connections() == 2
    mailer.close()


def test_a_server_that_never_answers_is_a_timeout_within_the_timeout():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete in the kernel, nobody ever greets
    try:
        mailer = SmtpMailer(parse_smtp_url(f"smtp://127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.5))
        started = time.monotonic()
        outcome = mailer.send(a_message(), sender=SENDER, to=TO)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert (outcome.status, outcome.code, outcome.error) == ("soft_failed", None, "timeout")
    assert 0.4 < elapsed < 2.0


def test_a_reply_that_never_comes_mid_transaction_is_a_timeout(server):
    mailer = mailer_for(server, timeout_s=0.5)
    assert mailer.send(a_message(1), sender=SENDER, to=TO).status == "sent"
    server.stall_next("DATA", 30)
    started = time.monotonic()
    outcome = mailer.send(a_message(2), sender=SENDER, to=TO)
    assert (outcome.status, outcome.error) == ("soft_failed", "timeout")
    assert time.monotonic() - started < 2.0
    server.clear()
    assert mailer.send(a_message(3), sender=SENDER, to=TO).status == "sent"  # a new connection, not the timed-out one
    mailer.close()


def test_starttls_asked_of_a_server_without_it_is_soft_failed_and_nothing_goes_in_clear(server):
    mailer = SmtpMailer(parse_smtp_url(server.url.replace("smtp://", "smtp+starttls://"), timeout_s=5))
    outcome = mailer.send(a_message(), sender=SENDER, to=TO)
    assert (outcome.status, outcome.error) == ("soft_failed", "starttls unavailable")
    assert server.messages() == []


def test_smtps_to_a_server_speaking_plain_smtp_is_soft_failed(server):
    mailer = SmtpMailer(parse_smtp_url(server.url.replace("smtp://", "smtps://"), timeout_s=2))
    outcome = mailer.send(a_message(), sender=SENDER, to=TO)
    assert outcome.status == "soft_failed"
    assert outcome.error in ("tls error", "disconnected", "timeout")
    assert server.messages() == []


def test_auth_logs_in_and_a_refused_login_is_a_soft_configuration_failure():
    with SmtpTestServer(auth=("mailer", "p@ss word")) as server:
        good = SmtpMailer(parse_smtp_url(f"smtp://mailer:p%40ss%20word@127.0.0.1:{server.port}", timeout_s=5))
        assert good.send(a_message(), sender=SENDER, to=TO).status == "sent"
        bad = SmtpMailer(parse_smtp_url(f"smtp://mailer:wrong@127.0.0.1:{server.port}", timeout_s=5))
        outcome = bad.send(a_message(2), sender=SENDER, to=TO)
        assert outcome.status == "soft_failed" and outcome.code == 535
        assert outcome.error.startswith("auth refused: 535")
        # credentials missing from SMTP_URL: the server refuses MAIL FROM with 530, our fault, not the address's
        anonymous = SmtpMailer(parse_smtp_url(server.url, timeout_s=5))
        outcome = anonymous.send(a_message(3), sender=SENDER, to=TO)
        assert (outcome.status, outcome.code) == ("soft_failed", 530)
        assert len(server.messages()) == 1
        for mailer in (good, bad, anonymous):
            mailer.close()


def test_an_internationalised_address_needs_smtputf8(server):
    mailer = mailer_for(server)
    outcome = mailer.send(a_message(), sender=SENDER, to="joão@exemplo.com.br")
    assert (outcome.status, outcome.code) == ("hard_failed", None)
    assert "jo" not in outcome.error
    assert mailer.send(a_message(2), sender=SENDER, to=TO).status == "sent"  # the connection is still good
    assert server.connections() == 1
    mailer.close()


def test_nothing_but_the_outcome_is_logged(server, capsys):
    configure_logging("notifier", "DEBUG")
    try:
        mailer = mailer_for(server)
        server.reply_next("RCPT", 550, f"<{TO}> unknown")
        mailer.send(a_message(1), sender=SENDER, to=TO)
        mailer.send(a_message(2), sender=SENDER, to=TO)
        mailer.close()
    finally:
        logging.getLogger().setLevel(logging.WARNING)
    out = capsys.readouterr()
    logged = out.out + out.err
    assert '"smtp_send"' in logged and '"hard_failed"' in logged and '"sent"' in logged
    for secret in ("maria", "example.com", SENDER, "Redefini", "código", "Olá"):
        assert secret not in logged


def test_a_closed_mailer_closes_its_connections(server):
    mailer = mailer_for(server)
    assert mailer.send(a_message(), sender=SENDER, to=TO).status == "sent"
    mailer.close()
    server.stop()  # would drop an open session; the mailer has none left to find dead
    server.start()
    assert mailer.send(a_message(2), sender=SENDER, to=TO).status == "sent"  # opens one for this send, then closes
