"""End-to-end helpers for the e-mail the platform sends: the local SMTP sink that the platform starts
writes each accepted message as one ``.eml`` file under ``<UPGESTAO_DATA_DIR>/mail/``; these read them.

A platform is shared by a whole test session, so a test finds its messages by their recipient (an
address of its own, made for the test), never by counting files.
"""

from __future__ import annotations

import email
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

MAIL_TIMEOUT_S = 30.0  # event -> notifier -> identity's notice -> SMTP -> sink: usually about a second


def mail_dir(platform) -> Path:
    """Where the platform's sink writes what it accepts."""
    return Path(platform.data_dir) / "mail"


def read_mail(path: Path) -> EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)


def recipients_of(message: EmailMessage) -> set[str]:
    """The addresses of To and Cc, lower-cased."""
    found: set[str] = set()
    for header in ("To", "Cc"):
        value = message[header]
        if value is not None:
            found |= {address.addr_spec.lower() for address in value.addresses}
    return found


def mail_to(platform, address: str) -> list[tuple[Path, EmailMessage]]:
    """Every message the sink holds for ``address``, oldest first (a file still being written is
    left for the next look)."""
    folder = mail_dir(platform)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.eml")):
        try:
            message = read_mail(path)
            if address.lower() in recipients_of(message):
                found.append((path, message))
        except (OSError, ValueError, LookupError):
            continue
    return found


def wait_for_mail(platform, address: str, timeout: float = MAIL_TIMEOUT_S) -> list[tuple[Path, EmailMessage]]:
    """The messages for ``address`` once there is at least one, polled until ``timeout``; fails saying
    how many files the sink held (never their recipients: addresses stay out of test output)."""
    deadline = time.monotonic() + timeout
    while True:
        found = mail_to(platform, address)
        if found:
            return found
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    folder = mail_dir(platform)
    held = len(list(folder.glob("*.eml"))) if folder.is_dir() else "no mail folder"
    raise AssertionError(f"no e-mail for the test's address within {timeout}s (the sink holds {held} at {folder})")


def text_and_html(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and the HTML alternative of a ``multipart/alternative`` message, decoded."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None, "a plain-text and an HTML part"
    return text.get_content(), html.get_content()


def logs_holding(platform, values: list[str]) -> list[str]:
    """The names of the platform's log files (``<data_dir>/logs/*.log``) that hold any of ``values``
    (an address, a token): the names only, so a failure does not print what it found."""
    folder = Path(platform.log_dir)
    return sorted(path.name for path in folder.glob("*.log")
                  if any(value in path.read_text(encoding="utf-8", errors="replace") for value in values))
