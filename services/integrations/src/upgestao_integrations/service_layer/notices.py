"""``integrations.notice(notice_id, recipient_id=, cursor=)``: what the notifier needs to e-mail the admins that
an integration was disabled (kind ``integration_disabled``, reasons ``gone`` and ``failing``).

``notice_id`` is the id of the :class:`IntegrationDisabled` event. The recipients are every active staff user
whose role holds ``integrations.manage`` (ids from ``identity.staff_ids``, addresses from ``identity.contacts``,
which audits the openings; each address handed out is audited here too, purpose ``notification``). Answered to
the notifier's broker user only (anyone else: 403, audited as denied); 404 for any other event or a manual
disabling (nobody to tell: the admin did it).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from upgestao_kernel.errors import ServiceError, invalid_field, not_found
from upgestao_kernel.schema import events

from ..domain.events import IntegrationDisabled
from .access import PERMISSION

NOTIFIER = "notifier"
RESOURCE = "notice"
PURPOSE = "notification"
KIND = "integration_disabled"
NOTIFIED_REASONS = ("gone", "failing")
PAGE = 200


def notice(uow: Any, identity: Any, notice_id: Any, recipient_id: Any = None, cursor: Any = None) -> dict:
    if uow.context.caller_service != NOTIFIER:
        uow.deny(action="read", resource_type=RESOURCE, resource_id=str(notice_id)[:64], subject_id=None,
                 fields=(), purpose=PURPOSE)
        raise ServiceError("forbidden", "Only the notifier may fetch a notice.", 403)
    if not isinstance(notice_id, str) or not notice_id or len(notice_id) > 36:
        raise not_found("notice")
    row = uow.conn.execute(sa.select(events.c.stream_id, events.c.type, events.c.data)
                           .where(events.c.event_id == notice_id)).first()
    if row is None or row.type != IntegrationDisabled.type or row.data.get("reason") not in NOTIFIED_REASONS:
        raise not_found("notice")
    integration_id = row.stream_id.removeprefix("integration-")
    integration = uow.integrations.get(integration_id)
    if integration is None:
        raise not_found("notice")
    try:
        offset = int(cursor) if cursor is not None else 0
    except (TypeError, ValueError):
        raise invalid_field("cursor", "not a cursor this notice gave") from None
    if offset < 0:
        raise invalid_field("cursor", "not a cursor this notice gave")
    staff = list((identity.staff_ids(PERMISSION) or {}).get("ids") or [])
    if recipient_id is not None:
        staff = [sid for sid in staff if sid == recipient_id]
    page = staff[offset:offset + PAGE]
    following = str(offset + PAGE) if len(staff) > offset + PAGE else None
    contacts = (identity.contacts(page) or {}).get("items", {}) if page else {}
    recipients = []
    for sid in page:
        contact = contacts.get(sid)
        if not contact or not contact.get("to"):
            continue
        uow.audit_access(action="read", resource_type=RESOURCE, resource_id=notice_id, subject_id=sid,
                         fields=("email",), purpose=PURPOSE)
        recipients.append({"id": sid, "to": contact["to"], "locale": contact.get("locale"),
                           "name": contact.get("name"), "vars": {}})
    data = {"integration_id": integration_id, "integration_name": integration["name"],
            "reason": row.data["reason"]}
    return {"id": notice_id, "kind": KIND, "campaign_id": None, "data": data, "recipients": recipients,
            "next": following}
