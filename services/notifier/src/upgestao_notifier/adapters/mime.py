"""The e-mail as it goes on the wire: multipart/alternative (plain text, then HTML), headers of a machine's mail.

``Message-ID`` is derived from (event id, recipient id), so the same notice to the same person always carries
the same id: a message sent again after a crash is recognisable (the sink or server can say whether it took
it) and a mail client shows a duplicate as one message.

Security mail (password reset, login alert, address change) never carries ``List-Unsubscribe``: nobody may
opt out of being told their account is at risk, and a one-click unsubscribe link in it would teach people to
click links in such mail.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime

# policy.SMTP (CRLF line ends), 7-bit on the wire: non-ASCII bodies go quoted-printable or base64, never raw
# 8-bit, so no server's lack of 8BITMIME can garble a message
POLICY = SMTP_POLICY.clone(cte_type="7bit")
# headers build_message sets itself: extra_headers may not replace them
_OWN_HEADERS = frozenset({
    "from", "to", "subject", "date", "message-id", "mime-version", "auto-submitted", "reply-to",
    "list-unsubscribe", "list-unsubscribe-post", "content-type", "content-transfer-encoding",
})


def message_id_for(event_id: str, recipient_id: str, domain: str) -> str:
    """``<sha256(event_id:recipient_id)[:40]@domain>``: the same pair, the same id (no personal data in it)."""
    digest = hashlib.sha256(f"{event_id}:{recipient_id}".encode()).hexdigest()[:40]
    return f"<{digest}@{domain}>"


def build_message(*, subject: str, text: str, html: str, sender: str, to: str, message_id: str,
                  security: bool, unsubscribe_url: str | None = None, reply_to: str | None = None,
                  date: datetime | None = None, extra_headers: Mapping[str, str] | None = None) -> EmailMessage:
    """One message to one recipient. Non-ASCII headers are RFC 2047 encoded and both parts are UTF-8 with a
    7-bit transfer encoding (quoted-printable or base64, as the email package chooses), so any server takes it.
    ``List-Unsubscribe`` (with RFC 8058's one-click ``List-Unsubscribe-Post``) only when ``security`` is False
    and a URL is given."""
    for name, value in (("subject", subject), ("sender", sender), ("to", to), ("message_id", message_id)):
        if not value or "\r" in value or "\n" in value:
            raise ValueError(f"{name}: must be one non-empty line")
    message = EmailMessage(policy=POLICY)
    message["From"] = sender
    message["To"] = to
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = subject
    message["Date"] = format_datetime((date or datetime.now(UTC)).astimezone(UTC))
    message["Message-ID"] = message_id
    message["MIME-Version"] = "1.0"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
    if not security and unsubscribe_url:
        if "\r" in unsubscribe_url or "\n" in unsubscribe_url or " " in unsubscribe_url:
            raise ValueError("unsubscribe_url: must be one URL")
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in (extra_headers or {}).items():
        if name.lower() in _OWN_HEADERS:
            raise ValueError(f"extra_headers: {name} is set by build_message")
        message[name] = value
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    for part in message.iter_parts():  # the email package repeats MIME-Version in a part it makes
        del part["MIME-Version"]
    return message
