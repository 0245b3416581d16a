"""Notices for the notifier: a reset token, an e-mail change told to the old address.

Only the notifier may fetch them: the caller's service is the broker user RabbitMQ checked
(``uow.context.caller_service``), never a header. Every fetch opens sealed values and is audited
with the purpose ``notification``; a refused one is audited as denied.
"""

from __future__ import annotations

from datetime import datetime

from upgestao_kernel.errors import ServiceError, not_found

from ..adapters.ports import IdentityUnitOfWork
from ..domain.notices import NOTIFIER, deliverable, message
from .profiles import opened_to_view

RESOURCE = "notice"
PURPOSE = "notification"


def fetch(uow: IdentityUnitOfWork, notice_id: str, now: datetime) -> dict:
    """What the notifier must send for the notice announced by event ``notice_id``."""
    if uow.context.caller_service != NOTIFIER:
        uow.deny(action="read", resource_type=RESOURCE, resource_id=str(notice_id)[:64], subject_id=None,
                 fields=(), purpose=PURPOSE)
        raise ServiceError("forbidden", "Only the notifier may fetch a notice.", 403)
    record = uow.notices.get(notice_id) if isinstance(notice_id, str) else None
    if record is None or not deliverable(record.kind, record.expires_at, now):
        raise not_found("notice")
    opened = uow.personal.open(subject_id=record.user_id, resource_type=RESOURCE, resource_id=record.id,
                               sealed=record.sealed, purpose=PURPOSE)
    uow.notices.mark_fetched(record.id, now)
    return {"id": record.id, "user_id": record.user_id, "expires_at": record.expires_at.isoformat(),
            **message(record.kind, opened_to_view(opened))}
