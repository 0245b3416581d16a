"""Notices: what the notifier must send to a user, which never travels on the broker.

An event announces a notice with ids only (``identity.password_reset_requested.v1``,
``identity.user_email_changed.v1``); the notice's id is that event's id. Identity keeps what the
message needs (the recipient's address, a reset token) as vault ciphertext under the user's data
key, so an erasure of the user destroys it too, and hands it out only to the notifier's broker
user (``notice`` RPC), auditing each delivery with the purpose ``notification``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

PASSWORD_RESET = "password_reset"
EMAIL_CHANGED = "email_changed"
KINDS = (PASSWORD_RESET, EMAIL_CHANGED)
NOTIFIER = "notifier"  # the only service that may fetch a notice


def deliverable(kind: str, expires_at: datetime, now: datetime) -> bool:
    """A notice is handed out until it expires (a retried delivery may fetch it again)."""
    return kind in KINDS and expires_at > now


def message(kind: str, opened: Mapping[str, object]) -> dict[str, object]:
    """What the notifier gets for a notice: whom to write to and what to say (a reset token only for a reset)."""
    out: dict[str, object] = {"kind": kind, "to": opened.get("email")}
    if kind == PASSWORD_RESET:
        out["reset_token"] = opened.get("reset_token")
    return out

# how long the old address of an e-mail change waits for the notifier (a reset token: its own TTL)
EMAIL_CHANGE_NOTICE_TTL_S = 7 * 24 * 3600
