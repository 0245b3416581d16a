"""What messaging shares with the integrations a customer's conversations flow to (issue 15; R4.1, R4.2).

``share_messages`` answers the integrations service's broker user alone (``uow.context.caller_service ==
"integrations"``, the user RabbitMQ checked, never a header): anyone else gets 403, audited as denied. It
gives, for a batch of message ids (one query, and one for their conversations' erasure), each conversation
message's ids, direction, times and attachment count, and its body when asked (an integration holding the
``conversations`` field). Never a private note, never a staff chat's message, never a message of an erased
customer: those, and unknown ids, answer None. Every body opened is one audited opening of the batch: a
``share`` record per message naming the integration as ``recipient``, the customer as subject, the field
``body``; without bodies nothing personal is opened and nothing is audited.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from upgestao_kernel.errors import forbidden, invalid_field
from upgestao_kernel.unit_of_work import is_erased

from ..adapters.ports import MessageRecord, MessagingUnitOfWork

INTEGRATIONS = "integrations"
MAX_MESSAGES = 200
MAX_ID_LENGTH = 64
MAX_PURPOSE_LENGTH = 200
RECIPIENT = re.compile(r"^integration:[A-Za-z0-9_-]{1,64}$")
RESOURCE = "message"


def share_messages(uow: MessagingUnitOfWork, message_ids: Any, include_body: Any, recipient: Any,
                   purpose: Any) -> dict[str, Any]:
    """``{"messages": {id: {...} | None}}`` (the contract's shape; ``body`` only when ``include_body``)."""
    if uow.context.caller_service != INTEGRATIONS:
        uow.deny(action="share", resource_type=RESOURCE, resource_id=None, subject_id=None, fields=(),
                 purpose="authorization")
        raise forbidden("Only the integrations service asks this.")
    wanted = _checked_ids(message_ids)
    if not isinstance(include_body, bool):
        raise invalid_field("include_body", "must be true or false")
    if not isinstance(recipient, str) or RECIPIENT.match(recipient) is None:
        raise invalid_field("recipient", "must be integration:<id>")
    if not isinstance(purpose, str) or not purpose.strip() or len(purpose) > MAX_PURPOSE_LENGTH:
        raise invalid_field("purpose", f"must be a text of 1 to {MAX_PURPOSE_LENGTH} characters")
    answer: dict[str, Any] = dict.fromkeys(wanted)
    found = uow.messages.get_many([i for i in wanted if _is_uuid(i)])
    shared = [record for i in wanted if (record := found.get(i)) is not None and shareable(record)]
    erased = uow.conversations.erased_ids(sorted({r.conversation_id for r in shared if r.conversation_id}))
    shared = [record for record in shared if record.conversation_id not in erased]
    bodies: dict[str, Any] = {}
    if include_body:
        sealed = [r for r in shared if not r.deleted and r.body_sealed is not None]
        opened = uow.personal.open_each(
            resource_type=RESOURCE, purpose=purpose, action="share", recipient=recipient,
            items=[(r.key_subject_id, r.id, {"body": r.body_sealed}) for r in sealed])
        bodies = {r.id: o["body"] for r, o in zip(sealed, opened, strict=True)}
    for record in shared:
        body = bodies.get(record.id)
        if is_erased(body):
            continue  # the customer's key is gone: erased, nothing of theirs is shared
        view = {"message_id": record.id, "conversation_id": record.conversation_id,
                "customer_id": record.customer_id, "direction": record.direction,
                "created_at": record.created_at.isoformat(),
                "edited_at": record.edited_at.isoformat() if record.edited_at is not None else None,
                "deleted": record.deleted, "attachment_count": len(record.attachment_ids)}
        if include_body:
            view["body"] = None if record.deleted else body
        answer[record.id] = view
    return {"messages": answer}


def shareable(record: MessageRecord) -> bool:
    """A customer conversation's message that is no private note and whose customer is not erased."""
    return (record.conversation_id is not None and record.customer_id is not None and not record.private
            and not record.erased)


def _checked_ids(value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(
            isinstance(i, str) and 0 < len(i) <= MAX_ID_LENGTH for i in value):
        raise invalid_field("message_ids", f"must be a list of ids (strings of at most {MAX_ID_LENGTH} characters)")
    unique = list(dict.fromkeys(value))
    if len(unique) > MAX_MESSAGES:
        raise invalid_field("message_ids", f"at most {MAX_MESSAGES} ids at a time")
    return unique


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
