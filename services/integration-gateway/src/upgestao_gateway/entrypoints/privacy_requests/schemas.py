"""marshmallow schemas of the data-subject request routes and the privacy contact channel: bodies and queries
checked precisely here (422 naming the field), answers shaped as privacy gives them.

A request is ids, a type, a state and dates; its detail adds its history (who, when, from, to, the reason
given) and what privacy answered itself (confirmation, sharing_info, consent_info). The contact channel
takes an address and a message (personal data: sealed by privacy, never echoed back).
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..audit.schemas import QueryInteger
from ..http.schemas import Pattern
from ..notifications.schemas import QueryUuid

# LGPD art. 18 rights a request may be about, and the states of a request (privacy's domain/requests.py)
TYPES = ("confirmation", "access", "correction", "anonymisation", "blocking", "deletion", "portability",
         "sharing_info", "consent_info", "consent_revocation")
STATES = ("identity_unverified", "pending", "in_progress", "completed", "denied", "canceled", "error")
EMAIL_MAX = 254
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
CODE_PATTERN = r"^[0-9]{6}$"
NOT_BLANK = r"[\s\S]*\S[\s\S]*"  # some text besides white space
REASON_MAX = 2000
MESSAGE_MAX = 5000
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
_DATE_TIME = {"format": "date-time"}
_TEXT = {"description": "Free text (kept sealed: it may be personal data)."}


def _text(limit: int, **kwargs) -> fields.String:
    metadata = {**_TEXT, **kwargs.pop("metadata", {})}
    return fields.String(validate=[validate.Length(max=limit), Pattern(NOT_BLANK, error="must not be blank")],
                         metadata=metadata, **kwargs)


# -- bodies and queries ----------------------------------------------------------------


class NewRequestSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(TYPES),
                         metadata={"description": "The right exercised (LGPD art. 18)."})


class RequestsQuerySchema(Schema):
    state = fields.String(validate=validate.OneOf(STATES))
    type = fields.String(validate=validate.OneOf(TYPES))
    mine = fields.Boolean(metadata={"description": "Only one's own (a reviewer otherwise sees every request)."})
    limit = QueryInteger(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(validate=validate.Length(min=1, max=500),
                           metadata={"description": "next_cursor of the previous page."})


class PageQuerySchema(Schema):
    limit = QueryInteger(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(validate=validate.Length(min=1, max=500),
                           metadata={"description": "next_cursor of the previous page."})


class ReasonSchema(Schema):
    reason = _text(REASON_MAX, required=True)


class OptionalReasonSchema(Schema):
    reason = _text(REASON_MAX)


class NoteSchema(Schema):
    note = _text(REASON_MAX, metadata={"description": "What was done (told to the requester)."})


class ExtendSchema(Schema):
    due_at = fields.AwareDateTime(required=True, format="iso", metadata={
        "description": "The new due date: later than the current one, in the future."})
    reason = _text(REASON_MAX, required=True)


class ContactSchema(Schema):
    email = fields.String(required=True, validate=[validate.Length(max=EMAIL_MAX),
                                                   Pattern(EMAIL_PATTERN, error="must look like name@example.com")],
                          metadata={"format": "email", "description": "Where the 6-digit code is sent."})
    type = fields.String(required=True, validate=validate.OneOf(TYPES))
    message = _text(MESSAGE_MAX)


class CodeSchema(Schema):
    code = fields.String(required=True, validate=Pattern(CODE_PATTERN, error="must be the 6 digits sent by e-mail"))


# -- answers ---------------------------------------------------------------------------


class RequestSchema(Schema):
    id = fields.String(required=True, metadata={"format": "uuid"})
    type = fields.String(required=True, metadata={"enum": list(TYPES)})
    state = fields.String(required=True, metadata={"enum": list(STATES)})
    channel = fields.String(required=True, metadata={"enum": ["session", "contact"]})
    subject_id = fields.String(required=True, allow_none=True, metadata={
        "format": "uuid", "description": "The person it is about (null: an address nobody here has)."})
    subject_kind = fields.String(required=True, allow_none=True)
    requester_id = fields.String(required=True, allow_none=True)
    received_at = fields.String(required=True, metadata=_DATE_TIME)
    due_at = fields.String(required=True, metadata=_DATE_TIME)
    days_left = fields.Integer(required=True, metadata={"description": "Whole days until due_at (<= 0: overdue)."})
    overdue = fields.Boolean(required=True)
    closed_at = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)


class TransitionSchema(Schema):
    at = fields.String(required=True, metadata=_DATE_TIME)
    by_id = fields.String(required=True, allow_none=True)
    by_role = fields.String(required=True, allow_none=True)
    from_ = fields.String(required=True, allow_none=True, data_key="from", attribute="from")
    to = fields.String(required=True)
    event = fields.String(required=True, metadata={
        "enum": ["filed", "verified", "started", "completed", "denied", "canceled", "failed", "extended"]})
    reason = fields.String(required=True, allow_none=True)
    note = fields.String(required=True, allow_none=True, metadata={
        "description": "What failed, or an extension's new due date."})


class ContactTextSchema(Schema):
    email = fields.String(required=True, allow_none=True, metadata={"format": "email"})
    message = fields.String(required=True, allow_none=True)


class RequestDetailSchema(RequestSchema):
    outcome = fields.String(required=True, allow_none=True)
    answer = fields.Raw(required=True, allow_none=True, metadata={
        "description": "What privacy answered itself: {kind: confirmation, holds_data, services} | "
                       "{kind: sharing_info, recipients: [{recipient, service, fields, count, first_at, last_at, "
                       "privacy_policy_url}]} | {kind: consent_info, text: {pt-BR, en}}"})
    what_failed = fields.String(required=True, allow_none=True)
    history = fields.List(fields.Nested(TransitionSchema), required=True)
    erasure_progress = fields.Raw(allow_none=True)
    contact = fields.Nested(ContactTextSchema, metadata={
        "description": "A contact-channel request, to a reviewer only: the address and the message given "
                       "(null once the person's data is erased)."})


class RequestPageSchema(Schema):
    items = fields.List(fields.Nested(RequestSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class OverduePageSchema(RequestPageSchema):
    overdue_count = fields.Integer(required=True, metadata={"description": "How many are overdue in all."})


class ContactAcceptedSchema(Schema):
    id = fields.String(required=True, metadata={"format": "uuid", "description": "Give it back with the code."})
    status = fields.String(required=True, metadata={"example": "accepted"})


class VerifiedSchema(Schema):
    id = fields.String(required=True, metadata={"format": "uuid"})
    state = fields.String(required=True, metadata={"enum": list(STATES)})
    type = fields.String(required=True, metadata={"enum": list(TYPES)})
    due_at = fields.String(required=True, metadata=_DATE_TIME)
    days_left = fields.Integer(required=True)


__all__ = ["QueryUuid"]
