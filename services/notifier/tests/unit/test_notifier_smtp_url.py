"""``SMTP_URL``: the three schemes, their default ports, credentials percent-decoded, and a bad URL refused
naming the variable without ever quoting the password."""

from __future__ import annotations

import pytest
from upgestao_kernel.config import ConfigError
from upgestao_notifier.adapters.smtp import SendOutcome, SmtpSettings, classify, parse_smtp_url, reply_error

SECRET = "s3cr3t-Pässword"


@pytest.mark.parametrize(("url", "scheme", "port"), [
    ("smtp://mail.example.com", "smtp", 25),
    ("smtps://mail.example.com", "smtps", 465),
    ("smtp+starttls://mail.example.com", "smtp+starttls", 587),
    ("SMTP+STARTTLS://mail.example.com:2525/", "smtp+starttls", 2525),
    ("smtp://127.0.0.1:1025", "smtp", 1025),
])
def test_each_scheme_has_its_default_port(url, scheme, port):
    settings = parse_smtp_url(url)
    assert (settings.scheme, settings.port) == (scheme, port)
    assert settings.host in ("mail.example.com", "127.0.0.1")
    assert settings.username is None and settings.password is None
    assert settings.timeout_s == 10.0


def test_user_and_password_are_percent_decoded():
    settings = parse_smtp_url("smtp+starttls://no-reply%40upgestao.example:p%40ss%3Aw%2Ford@smtp.example.com:587",
                              timeout_s=3)
    assert settings == SmtpSettings("smtp+starttls", "smtp.example.com", 587, "no-reply@upgestao.example",
                                    "p@ss:w/ord", 3.0)


def test_an_ipv6_host():
    assert parse_smtp_url("smtp://[::1]:1025").host == "::1"


@pytest.mark.parametrize("url", [
    "",
    f"http://user:{SECRET}@mail.example.com",
    f"smtp://user:{SECRET}@",
    f"smtp://user:{SECRET}@:25",
    f"smtp://user:{SECRET}@mail.example.com:port",
    f"smtp://user:{SECRET}@mail.example.com:70000",
    f"smtp://user:{SECRET}@mail.example.com:0",
    f"smtp://user:{SECRET}@mail.example.com/path",
    f"smtp://:{SECRET}@mail.example.com",
    f"mail.example.com:{SECRET}",
])
def test_a_bad_url_is_a_configuration_error_naming_smtp_url_without_the_password(url):
    with pytest.raises(ConfigError) as err:
        parse_smtp_url(url)
    assert err.value.variable == "SMTP_URL"
    assert err.value.problem
    assert SECRET not in str(err.value)
    assert "Pässword" not in str(err.value) and "s3cr3t" not in str(err.value)


def test_a_timeout_out_of_range_is_refused():
    with pytest.raises(ConfigError):
        parse_smtp_url("smtp://mail.example.com", timeout_s=0)


def test_repr_and_str_hide_the_password():
    settings = parse_smtp_url(f"smtps://user:{SECRET}@mail.example.com")
    assert settings.password == SECRET
    for shown in (repr(settings), str(settings), f"{settings}", repr([settings])):
        assert SECRET not in shown
        assert "mail.example.com" in shown


@pytest.mark.parametrize(("code", "status"), [
    (250, "sent"), (251, "sent"), (421, "soft_failed"), (450, "soft_failed"), (452, "soft_failed"),
    (550, "hard_failed"), (552, "hard_failed"), (554, "hard_failed"),
])
def test_a_final_reply_is_classified_by_its_first_digit(code, status):
    outcome = classify(code, b"text")
    assert (outcome.status, outcome.code) == (status, code)
    assert (outcome.error is None) == (status == "sent")


def test_the_error_never_quotes_an_address_and_is_short():
    error = reply_error(550, b"5.1.1 <maria.silva@example.com>: Recipient address rejected: maria@example.com "
                             + b"x" * 500)
    assert "maria" not in error and "example.com" not in error
    assert error.startswith("550 5.1.1 <address>: Recipient address rejected: <address>")
    assert len(error) <= 200


def test_the_error_is_one_line():
    assert reply_error(451, "4.3.0 try\r\n again  later") == "451 4.3.0 try again later"
    assert SendOutcome("sent", 250) == SendOutcome("sent", 250, None)
