"""marshmallow schemas of the notification routes: queries checked precisely here
(422 naming the parameter), answers shaped as the notifier gives them.

A delivery record is one e-mail to one recipient for one event: ids, a state,
counters and instants. Never the address, the subject or the body: those stay
in the notifier (and the address in identity), so nothing here is personal data.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from marshmallow import Schema, fields, validate

from ..audit.schemas import QueryInteger
from ..http.schemas import Pattern

# A delivery's states, as the notifier keeps them (Postal's): queued, then sending while the SMTP call is
# in flight, then sent, soft_failed (retried later), hard_failed (refused for good) or suppressed (the
# address refused mail before: not attempted).
STATUSES = ("queued", "sending", "sent", "soft_failed", "hard_failed", "suppressed")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# the filters of GET /v1/notifications/deliveries, by their query-parameter name (== the notifier's filter key)
FILTERS = ("event_id", "campaign_id", "recipient_id", "status")
UUID_PATTERN = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
_DATE_TIME = {"format": "date-time"}
_CURSOR = validate.Length(min=1, max=500)


class QueryUuid(fields.String):
    """A UUID in its hyphenated form (the document's ``pattern``, matched whole), passed on lower-cased.

    marshmallow's ``UUID`` field also takes ``{…}``, ``urn:uuid:…`` and 32 bare hex digits: forms the
    document does not allow, so the gateway would accept what its own contract refuses.
    """

    _UUID = re.compile(UUID_PATTERN)

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"format": "uuid", **kwargs.pop("metadata", {})}
        super().__init__(validate=Pattern(UUID_PATTERN, error="must be a UUID"), metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        return str(uuid.UUID(text)) if self._UUID.fullmatch(text) else text  # (the validator names a bad one)


# -- queries -----------------------------------------------------------------------


class DeliveriesQuerySchema(Schema):
    event_id = QueryUuid(metadata={"description": "The event the e-mail was sent for (one per recipient)."})
    campaign_id = QueryUuid(metadata={"description": "The campaign (a breach notice, a policy announcement)."})
    recipient_id = QueryUuid(metadata={"description": "The person the e-mail was for (a user or customer id)."})
    status = fields.String(validate=validate.OneOf(STATUSES))
    limit = QueryInteger(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(validate=_CURSOR, metadata={"description": "next_cursor of the previous page."})


def delivery_filters(query: dict) -> dict[str, str]:
    """The ``filters`` argument of the notifier's ``deliveries``: only what was given."""
    return {key: query[key] for key in FILTERS if query.get(key) is not None}


# -- answers -----------------------------------------------------------------------


class DeliverySchema(Schema):
    """One e-mail to one recipient for one event (ids and states only: no address, no subject, no body)."""

    id = fields.String(required=True, metadata={"format": "uuid"})
    event_id = fields.String(required=True, metadata={"format": "uuid"})
    event_type = fields.String(required=True, metadata={"example": "identity.password_reset_requested.v1"})
    kind = fields.String(required=True, metadata={"description": "Which message (its template).",
                                                  "example": "password_reset"})
    campaign_id = fields.String(required=True, allow_none=True, metadata={"format": "uuid"})
    recipient_id = fields.String(required=True, metadata={"format": "uuid"})
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    attempts = fields.Integer(required=True, metadata={"description": "SMTP attempts made so far."})
    last_code = fields.Integer(required=True, allow_none=True, metadata={
        "description": "The SMTP reply code of the last attempt (null: none yet, or a connection error)."})
    last_error = fields.String(required=True, allow_none=True, metadata={
        "description": "The last failure: the server's reply code and text, or the connection error."})
    confirmed = fields.Boolean(required=True, metadata={
        "description": "false only for a delivery taken as sent without the server's word: its process stopped "
                       "inside the SMTP transaction and nobody could tell whether the message was accepted "
                       "(never sent again: at most once)."})
    message_id = fields.String(required=True, metadata={
        "description": "The Message-ID header, derived from (event id, recipient): a resend is recognisable."})
    created_at = fields.String(required=True, metadata=_DATE_TIME)
    updated_at = fields.String(required=True, metadata=_DATE_TIME)
    sent_at = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)
    next_attempt_at = fields.String(required=True, allow_none=True, metadata={
        **_DATE_TIME, "description": "When a soft failure is tried again (null when none is due)."})


class DeliveryPageSchema(Schema):
    items = fields.List(fields.Nested(DeliverySchema), required=True, metadata={"description": "Newest first."})
    next_cursor = fields.String(required=True, allow_none=True,
                                metadata={"description": "Pass as `cursor` for older deliveries; null at the end."})


class StatusCountsSchema(Schema):
    """How many of a campaign's deliveries are in each state (every state, zeros included)."""

    queued = fields.Integer(required=True)
    sending = fields.Integer(required=True)
    sent = fields.Integer(required=True)
    soft_failed = fields.Integer(required=True)
    hard_failed = fields.Integer(required=True)
    suppressed = fields.Integer(required=True)


class CampaignSchema(Schema):
    campaign_id = fields.String(required=True, metadata={"format": "uuid"})
    total = fields.Integer(required=True, metadata={"description": "Every delivery of the campaign."})
    counts = fields.Nested(StatusCountsSchema, required=True)
    first_created_at = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)
    last_updated_at = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)
