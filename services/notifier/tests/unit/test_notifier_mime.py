"""The message on the wire: multipart/alternative with both parts decoding to what was rendered, RFC 2047
subjects, a deterministic Message-ID per (event, recipient), and List-Unsubscribe only on non-security mail."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from upgestao_notifier.adapters.mime import build_message, message_id_for

TEXT = "Olá, João!\nUse o link abaixo para redefinir a sua senha: https://app.example/reset?t=abc\n"
HTML = "<p>Olá, João!</p><p><a href=\"https://app.example/reset?t=abc\">Redefinir</a></p>\n"
SUBJECT = "Redefinição de senha"


def message(**over):
    fields = dict(subject=SUBJECT, text=TEXT, html=HTML, sender="UpGestão <no-reply@upgestao.example>",
                  to="joao@example.com", message_id=message_id_for("event-1", "recipient-1", "upgestao.example"),
                  security=True, date=datetime(2026, 12, 2, 12, 0, tzinfo=UTC))
    fields.update(over)
    return build_message(**fields)


def on_the_wire(msg):
    """What a receiving server parses back from the bytes sent."""
    raw = msg.as_bytes()
    raw.decode("ascii")  # 7-bit clean: every server takes it, with or without 8BITMIME
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF line ends only
    return message_from_bytes(raw, policy=default_policy)


def test_a_multipart_alternative_with_plain_text_first_and_both_parts_decoding_to_the_inputs():
    parsed = on_the_wire(message())
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert [part.get_content_charset() for part in parts] == ["utf-8", "utf-8"]
    assert all(part["Content-Transfer-Encoding"] in ("quoted-printable", "base64") for part in parts)
    # the wire's line ends are CRLF (RFC 5322); otherwise each part decodes to exactly what was rendered
    assert parts[0].get_content().replace("\r\n", "\n") == TEXT
    assert parts[1].get_content().replace("\r\n", "\n") == HTML


def test_the_headers_of_a_machines_mail():
    parsed = on_the_wire(message())
    assert parsed["Subject"] == SUBJECT
    assert "=?utf-8?" in message().as_bytes().decode().split("Subject:", 1)[1].split("\r\n", 1)[0]  # RFC 2047
    assert parsed["From"].addresses[0].display_name == "UpGestão"
    assert parsed["From"].addresses[0].addr_spec == "no-reply@upgestao.example"
    assert parsed["To"] == "joao@example.com"
    assert parsed["Date"].datetime == datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert parsed["Message-ID"] == message_id_for("event-1", "recipient-1", "upgestao.example")
    assert parsed["MIME-Version"] == "1.0"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["Reply-To"] is None
    assert on_the_wire(message(reply_to="dpo@upgestao.example"))["Reply-To"] == "dpo@upgestao.example"


def test_the_date_defaults_to_now():
    before = datetime.now(UTC).replace(microsecond=0)
    assert on_the_wire(message(date=None))["Date"].datetime >= before


def test_the_message_id_is_deterministic_per_event_and_recipient_and_holds_no_personal_data():
    first = message_id_for("event-1", "recipient-1", "upgestao.example")
    assert first == message_id_for("event-1", "recipient-1", "upgestao.example")
    assert first != message_id_for("event-1", "recipient-2", "upgestao.example")
    assert first != message_id_for("event-2", "recipient-1", "upgestao.example")
    assert first.startswith("<") and first.endswith("@upgestao.example>")
    assert len(first[1:].split("@")[0]) == 40 and "event" not in first and "recipient" not in first


def test_list_unsubscribe_only_on_non_security_mail_with_a_url():
    url = "https://app.example/v1/unsubscribe?t=xyz"
    marketing = on_the_wire(message(security=False, unsubscribe_url=url))
    assert marketing["List-Unsubscribe"] == f"<{url}>"
    assert marketing["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    for msg in (message(security=True, unsubscribe_url=url), message(security=False, unsubscribe_url=None),
                message(security=True)):
        parsed = on_the_wire(msg)
        assert parsed["List-Unsubscribe"] is None and parsed["List-Unsubscribe-Post"] is None


def test_extra_headers_are_added_but_cannot_replace_the_messages_own():
    assert on_the_wire(message(extra_headers={"X-UpGestao-Campaign": "c-1"}))["X-UpGestao-Campaign"] == "c-1"
    with pytest.raises(ValueError):
        message(extra_headers={"Message-ID": "<other@x>"})


@pytest.mark.parametrize("field", ["subject", "to", "message_id"])
def test_a_header_value_with_a_line_break_is_refused(field):
    with pytest.raises(ValueError):
        message(**{field: "a\r\nBcc: everyone@example.com"})
