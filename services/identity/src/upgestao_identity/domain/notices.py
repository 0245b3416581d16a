"""Notices: what the notifier must send to a user, which never travels on the broker.

An event announces a notice with ids only (``identity.password_reset_requested.v1``,
``identity.user_email_changed.v1``, ``identity.new_login_detected.v1``); the notice's id is that
event's id. Identity keeps what the message needs (the recipient's address, a reset token, the
network of a new login) as vault ciphertext under the user's data key, so an erasure of the user
destroys it too, and hands it out only to the notifier's broker user (``notice`` RPC), auditing
each delivery with the purpose ``notification``.

The answer is the notice protocol every owning service speaks to the notifier: the notice's kind,
values of the kind (``data``) and its recipients, each with an address, a language, a name and
values of their own (``vars``), paged by ``next`` for a campaign (identity's notices have one
recipient, so never a next page).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

PASSWORD_RESET = "password_reset"
EMAIL_CHANGED = "email_changed"
NEW_LOGIN = "new_login"
KINDS = (PASSWORD_RESET, EMAIL_CHANGED, NEW_LOGIN)
NOTIFIER = "notifier"  # the only service that may fetch a notice

# how long the old address of an e-mail change, or a new login's alert, waits for the notifier (a reset
# token: its own TTL)
EMAIL_CHANGE_NOTICE_TTL_S = 7 * 24 * 3600
NEW_LOGIN_NOTICE_TTL_S = 7 * 24 * 3600


def deliverable(kind: str, expires_at: datetime, now: datetime) -> bool:
    """A notice is handed out until it expires (a retried delivery may fetch it again)."""
    return kind in KINDS and expires_at > now


def kind_data(kind: str, *, created_at: datetime, expires_at: datetime,
              opened: Mapping[str, Any]) -> dict[str, Any]:
    """The values of the message that are the same for every recipient of the notice."""
    if kind == PASSWORD_RESET:
        return {"expires_at": expires_at.isoformat()}
    if kind == NEW_LOGIN:
        return {"occurred_at": created_at.isoformat(), "network": opened.get("network")}
    return {"occurred_at": created_at.isoformat()}


def recipient_vars(kind: str, opened: Mapping[str, Any]) -> dict[str, Any]:
    """The values of the message that are the recipient's own (a reset token only for a reset)."""
    return {"reset_token": opened.get("reset_token")} if kind == PASSWORD_RESET else {}


def message(*, notice_id: str, kind: str, user_id: str, locale: str, created_at: datetime, expires_at: datetime,
            opened: Mapping[str, Any]) -> dict[str, Any]:
    """What the notifier gets for a notice (the protocol's shape): whom to write to and what to say."""
    recipient = {"id": user_id, "to": opened.get("email"), "locale": locale, "name": opened.get("full_name"),
                 "vars": recipient_vars(kind, opened)}
    return {"id": notice_id, "kind": kind, "campaign_id": None,
            "data": kind_data(kind, created_at=created_at, expires_at=expires_at, opened=opened),
            "recipients": [recipient], "next": None}
