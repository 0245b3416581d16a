"""Notices for the notifier: a reset token, an e-mail change told to the old address, a new login.

Only the notifier may fetch them: the caller's service is the broker user RabbitMQ checked
(``uow.context.caller_service``), never a header. Every fetch opens sealed values -- the notice's
own and the recipient's name, as the users table holds it now -- in one audited opening with the
purpose ``notification``; a refused one is audited as denied. The answer is the notice protocol
(``domain/notices.py``); the recipient's language is their preference now.
"""

from __future__ import annotations

from datetime import datetime

from upgestao_kernel.errors import ServiceError, not_found

from ..adapters.ports import IdentityUnitOfWork
from ..domain.locales import DEFAULT_LOCALE
from ..domain.notices import NOTIFIER, deliverable, message
from ..domain.users import BLOCKED
from .profiles import opened_to_view

RESOURCE = "notice"
PURPOSE = "notification"


def fetch(uow: IdentityUnitOfWork, notice_id: str, now: datetime, recipient_id: str | None = None,
          cursor: str | None = None) -> dict:
    """What the notifier must send for the notice announced by event ``notice_id``: to every recipient, or
    only to ``recipient_id`` (404 when not one of them). ``cursor`` pages a campaign's recipients in the
    protocol; a notice of identity has one recipient, so it is accepted and has nothing to page."""
    if uow.context.caller_service != NOTIFIER:
        uow.deny(action="read", resource_type=RESOURCE, resource_id=str(notice_id)[:64], subject_id=None,
                 fields=(), purpose=PURPOSE)
        raise ServiceError("forbidden", "Only the notifier may fetch a notice.", 403)
    record = uow.notices.get(notice_id) if isinstance(notice_id, str) else None
    if record is None or not deliverable(record.kind, record.expires_at, now):
        raise not_found("notice")
    if recipient_id is not None and recipient_id != record.user_id:
        raise not_found("recipient")
    user = uow.users.get(record.user_id)
    if user is not None and user.status == BLOCKED:  # blocked at their request: nothing of theirs is processed
        raise not_found("notice")
    sealed = dict(record.sealed)
    if user is not None and user.full_name is not None:
        sealed["full_name"] = user.full_name
    opened = opened_to_view(uow.personal.open(subject_id=record.user_id, resource_type=RESOURCE,
                                              resource_id=record.id, sealed=sealed, purpose=PURPOSE))
    if opened.get("email") is None:  # the user was erased: nobody to write to
        raise not_found("notice")
    uow.notices.mark_fetched(record.id, now)
    return message(notice_id=record.id, kind=record.kind, user_id=record.user_id,
                   locale=user.locale if user is not None else DEFAULT_LOCALE, created_at=record.created_at,
                   expires_at=record.expires_at, opened=opened)
