"""marshmallow schemas of the incident and data-map routes: bodies and queries checked precisely here (422
naming the field), answers shaped as privacy gives them.

An incident's texts are the DPO's words about a breach (LGPD art. 48 §1); they may name people, so privacy
keeps them sealed and opens them (audited) only for the DPO: they appear in the answers of the single
incident, never in the list.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..audit.schemas import QueryInteger
from ..http.schemas import Pattern
from ..notifications.schemas import STATUSES, UUID_PATTERN, StatusCountsSchema

CATEGORIES = ("identification", "contact", "demographic", "professional", "image", "credential",
              "communication", "financial", "location", "sensitive", "other")
AFFECTED_KINDS = ("ids", "every_user", "every_customer", "channel_customers")
CHANNELS = ("whatsapp", "email", "web", "phone", "other")
DEADLINE_STATUSES = ("on_time", "at_risk", "late", "met", "missed")
MAX_TEXT = 4000
MAX_ITEM = 500
MAX_ITEMS = 20
MAX_IDS = 10_000
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_DATE_TIME = {"format": "date-time"}
_TEXT = validate.Length(min=1, max=MAX_TEXT)
# (at least one item, one id: privacy refuses an empty list with a 422 naming it)
_ITEMS = validate.Length(max=MAX_ITEMS)


def _text(description: str, **kwargs) -> fields.String:
    return fields.String(validate=_TEXT, metadata={"description": description}, **kwargs)


def _items(description: str) -> fields.List:
    return fields.List(fields.String(validate=validate.Length(min=1, max=MAX_ITEM)), required=True,
                       validate=_ITEMS, metadata={"description": description})


# -- bodies -----------------------------------------------------------------------


class AffectedSchema(Schema):
    """Who is affected: explicit ids, or a criterion resolved when the incident is confirmed."""

    kind = fields.String(required=True, validate=validate.OneOf(AFFECTED_KINDS), metadata={
        "description": "ids: the people listed; every_user: every active user; every_customer: every customer; "
                       "channel_customers: the customers of every conversation on one channel."})
    ids = fields.List(fields.String(validate=Pattern(UUID_PATTERN, error="must be a UUID")),
                      validate=validate.Length(max=MAX_IDS),
                      metadata={"description": "For kind ids: the users' or customers' ids."})
    channel = fields.String(validate=validate.OneOf(CHANNELS), metadata={"description": "For channel_customers."})


class IncidentCreateSchema(Schema):
    """Every item of LGPD art. 48 §1, in plain language: the people affected receive these words."""

    nature_of_data = _items("I — the nature of the personal data affected (one item a line).")
    categories = fields.List(fields.String(validate=validate.OneOf(CATEGORIES)), required=True, validate=_ITEMS,
                             metadata={"description": "The categories of the data involved."})
    affected = fields.Nested(AffectedSchema, required=True)
    people_affected = _text("II — who is affected, in plain words (the notice says it).", required=True)
    technical_measures = _text("III — the technical and security measures that protected the data.",
                               required=True)
    risks = _text("IV — the risks the incident brings to the people affected.", required=True)
    delay_reasons = _text("V — why the notice comes later than 3 business days (null: no delay).",
                          allow_none=True)
    measures_taken = _text("VI — the measures taken or planned to reverse or lessen the harm.", required=True)
    what_to_do = _items("What the people affected should do now.")
    dpo_contact = _text("The DPO's contact given in the notice.", required=True)
    occurred_at = fields.AwareDateTime(required=True, metadata={"description": "When the incident happened."})
    detected_at = fields.AwareDateTime(required=True, metadata={
        "description": "When the controller learnt of it: the 3 business days (ANPD Res. 15/2024) run from here."})


class IncidentConfirmSchema(Schema):
    delay_reasons = _text("Required when confirming after the deadline, unless recorded with the incident.",
                          allow_none=True)


# -- queries ----------------------------------------------------------------------


class IncidentsQuerySchema(Schema):
    limit = QueryInteger(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(validate=validate.Length(min=1, max=500),
                           metadata={"description": "next_cursor of the previous page."})


class IncidentQuerySchema(Schema):
    """A page of the notice's per-recipient progress."""

    limit = QueryInteger(load_default=MAX_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(validate=validate.Length(min=1, max=500),
                           metadata={"description": "progress.next_cursor of the previous answer."})


# -- answers ----------------------------------------------------------------------


class DeadlineSchema(Schema):
    status = fields.String(required=True, metadata={"enum": list(DEADLINE_STATUSES), "description":
                           "on_time, at_risk (under 24 h left), late (past due, not notified); once notified: "
                           "met or missed."})
    due_at = fields.String(required=True, metadata={**_DATE_TIME, "description": "The close of the 3rd business "
                           "day (Brazilian national holidays counted) after detection, Brasília time."})
    seconds_left = fields.Integer(required=True, allow_none=True)
    business_days_left = fields.Integer(required=True, allow_none=True)
    late = fields.Boolean(required=True)
    at_risk = fields.Boolean(required=True)


class AffectedViewSchema(Schema):
    kind = fields.String(required=True, metadata={"enum": list(AFFECTED_KINDS)})
    channel = fields.String(required=True, allow_none=True)
    ids_count = fields.Integer(required=True, metadata={"description": "Ids listed (kind ids)."})


class RecipientProgressSchema(Schema):
    recipient_id = fields.String(required=True, metadata={"format": "uuid"})
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    attempts = fields.Integer(required=True)
    last_code = fields.Integer(required=True, allow_none=True)
    sent_at = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)
    updated_at = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)


class ProgressSchema(Schema):
    campaign_id = fields.String(required=True, allow_none=True, metadata={"format": "uuid"})
    recipients_total = fields.Integer(required=True, metadata={"description": "People affected."})
    deliveries_total = fields.Integer(required=True, metadata={"description": "E-mails the notifier queued."})
    not_yet_queued = fields.Integer(required=True)
    counts = fields.Nested(StatusCountsSchema, required=True)
    recipients = fields.List(fields.Nested(RecipientProgressSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class IncidentSummarySchema(Schema):
    id = fields.String(required=True, metadata={"format": "uuid"})
    state = fields.String(required=True, metadata={"enum": ["draft", "confirmed"]})
    categories = fields.List(fields.String(), required=True)
    affected = fields.Nested(AffectedViewSchema, required=True)
    affected_count = fields.Integer(required=True, allow_none=True, metadata={
        "description": "People resolved at confirmation (null while a draft)."})
    occurred_at = fields.String(required=True, metadata=_DATE_TIME)
    detected_at = fields.String(required=True, metadata=_DATE_TIME)
    recorded_at = fields.String(required=True, metadata=_DATE_TIME)
    recorded_by = fields.String(required=True, allow_none=True)
    confirmed_at = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)
    confirmed_by = fields.String(required=True, allow_none=True)
    campaign_id = fields.String(required=True, allow_none=True, metadata={"format": "uuid"})
    notice_id = fields.String(required=True, allow_none=True, metadata={"format": "uuid"})
    deadline = fields.Nested(DeadlineSchema, required=True)
    keep_until = fields.String(required=True, metadata={**_DATE_TIME, "description":
                               "Kept at least until then (5 years); never deleted before."})


class IncidentSchema(IncidentSummarySchema):
    nature_of_data = fields.List(fields.String(), required=True)
    people_affected = fields.String(required=True, allow_none=True)
    technical_measures = fields.String(required=True, allow_none=True)
    risks = fields.String(required=True, allow_none=True)
    delay_reasons = fields.String(required=True, allow_none=True)
    measures_taken = fields.String(required=True, allow_none=True)
    what_to_do = fields.List(fields.String(), required=True)
    dpo_contact = fields.String(required=True, allow_none=True)


class IncidentWithProgressSchema(IncidentSchema):
    progress = fields.Nested(ProgressSchema, required=True)


class IncidentPageSchema(Schema):
    items = fields.List(fields.Nested(IncidentSummarySchema), required=True, metadata={"description": "Newest first."})
    next_cursor = fields.String(required=True, allow_none=True)


class PlatformDataMapEntrySchema(Schema):
    service = fields.String(required=True)
    resource = fields.String(required=True)
    field = fields.String(required=True)
    category = fields.String(required=True)
    description = fields.String(required=True)
    purpose = fields.String(required=True)
    legal_basis = fields.String(required=True)
    retention = fields.String(required=True)
    encrypted_at_rest = fields.Boolean(required=True)
    shareable_with_integrations = fields.Boolean(required=True, metadata={"description": "R4.1"})
    completed_by_privacy = fields.List(fields.String(), required=True, metadata={
        "description": "Which of purpose, legal_basis, retention the service did not declare and privacy added."})


class DataMapSourceSchema(Schema):
    service = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ["available", "unavailable"]})
    fields_ = fields.Integer(required=True, data_key="fields", attribute="fields")
    reason = fields.String(required=True, allow_none=True)


class PlatformDataMapSchema(Schema):
    items = fields.List(fields.Nested(PlatformDataMapEntrySchema), required=True)
    services = fields.List(fields.Nested(DataMapSourceSchema), required=True)
    complete = fields.Boolean(required=True, metadata={"description": "false: a service did not answer."})
