"""marshmallow schemas of the privacy routes for corrections, policy versions and cookie consents: shapes
checked here (422 naming the field), meaning checked by privacy (and identity, when a correction is applied).
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..audit.schemas import QueryInteger
from ..http.schemas import Pattern
from ..identity.schemas import CURSOR_PATTERN, UserSchema, _Profile

CORRECTION_STATES = ("pending", "approved", "denied")
VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$"
VISITOR_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
_REASON = validate.Length(min=1, max=2000)
_VERSION = Pattern(VERSION_PATTERN, error="must be 1 to 32 letters, digits, '.', '_' or '-'")


# -- corrections -----------------------------------------------------------------------------------------


class CorrectionChangesSchema(_Profile):
    """The profile fields a correction may change (the new values; a photo and the locale are not corrected)."""

    job_title = fields.String(validate=validate.Length(min=1, max=200))


class CorrectionCreateSchema(Schema):
    changes = fields.Nested(CorrectionChangesSchema, required=True, metadata={
        "description": "The fields to change and their new values (at least one)."})
    reason = fields.String(validate=_REASON, metadata={"description": "Why (optional; kept sealed)."})


class CorrectionDenySchema(Schema):
    reason = fields.String(required=True, validate=_REASON, metadata={
        "description": "Why the correction is denied (required; e-mailed to the requester)."})


class CorrectionsQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(CORRECTION_STATES))
    limit = QueryInteger(load_default=50, validate=validate.Range(min=1, max=100))
    cursor = fields.String(validate=Pattern(CURSOR_PATTERN, error="is not a cursor this API returned"))


class CorrectionSchema(Schema):
    id = fields.String(required=True, metadata={"format": "uuid"})
    requester_id = fields.String(required=True, metadata={"format": "uuid"})
    fields_ = fields.List(fields.String(), data_key="fields", attribute="fields", required=True)
    status = fields.String(required=True, metadata={"enum": list(CORRECTION_STATES)})
    source = fields.String(required=True, metadata={"enum": ["request", "profile_edit"]})
    changes = fields.Dict(allow_none=True, metadata={
        "description": "The values asked for (to the requester and to reviewers; opened and audited)."})
    reason = fields.String(allow_none=True)
    reviewer_id = fields.String(allow_none=True, metadata={"format": "uuid"})
    decision_reason = fields.String(allow_none=True)
    created_at = fields.String(required=True, metadata={"format": "date-time"})
    decided_at = fields.String(allow_none=True, metadata={"format": "date-time"})


class CorrectionPageSchema(Schema):
    items = fields.List(fields.Nested(CorrectionSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class CorrectionFiledSchema(Schema):
    """``PATCH /v1/me`` touching fields the role may not edit: the correction filed for them (202)."""

    id = fields.String(required=True, metadata={"format": "uuid"})
    fields_ = fields.List(fields.String(), data_key="fields", attribute="fields", required=True)
    status = fields.String(required=True, metadata={"enum": list(CORRECTION_STATES)})
    applied = fields.List(fields.String(), required=True, metadata={
        "description": "The fields of the same PATCH the role may edit: applied at once."})


# -- policy versions ---------------------------------------------------------------------------------------


class PolicyCreateSchema(Schema):
    version = fields.String(required=True, validate=_VERSION, metadata={"example": "2026-12-01"})
    effective_at = fields.AwareDateTime(required=True, format="iso", metadata={
        "description": "When it takes effect (ISO 8601 with offset)."})
    text = fields.String(required=True, validate=validate.Length(min=1, max=200_000), metadata={
        "description": "The full text (pt-BR)."})
    summary = fields.String(required=True, validate=validate.Length(min=1, max=2000), metadata={
        "description": "What changed, for the announcement e-mail."})


class PolicySchema(Schema):
    version = fields.String(required=True)
    effective_at = fields.String(required=True, metadata={"format": "date-time"})
    summary = fields.String(required=True)
    published_at = fields.String(required=True, metadata={"format": "date-time"})
    announced = fields.Boolean(required=True)
    text = fields.String(metadata={"description": "The full text (pt-BR); left out of the list."})
    current = fields.Boolean(metadata={"description": "In the list: the version in effect now."})
    campaign_id = fields.String(metadata={"format": "uuid", "description": "On publication: the announcement's "
                                                                           "campaign (GET /v1/notifications/...)."})


class PolicyListSchema(Schema):
    items = fields.List(fields.Nested(PolicySchema), required=True)


class AcceptanceSchema(Schema):
    version = fields.String(required=True)
    accepted_at = fields.String(required=True, metadata={"format": "date-time"})
    recorded = fields.Boolean(metadata={"description": "false: it was accepted before (nothing new recorded)."})


class AcceptanceListSchema(Schema):
    items = fields.List(fields.Nested(AcceptanceSchema), required=True)


class AcceptanceRequiredSchema(Schema):
    version = fields.String(required=True)


class MeSchema(UserSchema):
    policy_acceptance_required = fields.Nested(AcceptanceRequiredSchema, allow_none=True, metadata={
        "description": "The privacy-policy version the user must accept (POST /v1/privacy/policies/{version}/"
                       "accept) before going on; null when nothing is due."})


# -- cookie consents --------------------------------------------------------------------------------------


class PurposesSchema(Schema):
    essential = fields.Boolean(metadata={"description": "Always on: only true is accepted."})
    analytics = fields.Boolean()
    personalisation = fields.Boolean()


class ConsentPutSchema(Schema):
    purposes = fields.Nested(PurposesSchema, required=True)
    policy_version = fields.String(required=True, validate=_VERSION, metadata={
        "description": "The policy version the choice was made under (a version in effect)."})


class VisitorConsentPutSchema(ConsentPutSchema):
    visitor_id = fields.String(validate=Pattern(VISITOR_PATTERN, error="must be the visitor id this API issued"),
                               metadata={"description": "The visitor id this API issued (keep it); omit it the "
                                                        "first time and one is issued."})


class ConsentEntrySchema(Schema):
    purposes = fields.Dict(keys=fields.String(), values=fields.Boolean(), required=True)
    changed = fields.List(fields.String(), required=True)
    policy_version = fields.String(required=True)
    source = fields.String(required=True, metadata={"enum": ["choice", "revocation_request"]})
    request_id = fields.String(allow_none=True)
    recorded_at = fields.String(required=True, metadata={"format": "date-time"})


class ConsentStateSchema(Schema):
    holder_kind = fields.String(required=True, metadata={"enum": ["user", "visitor"]})
    visitor_id = fields.String(metadata={"description": "A visitor's id (keep it to change or read the choice)."})
    purposes = fields.Dict(keys=fields.String(), values=fields.Boolean(), required=True)
    policy_version = fields.String(allow_none=True, required=True)
    recorded = fields.Boolean(metadata={"description": "false: the same choice as before (nothing recorded)."})
    history = fields.List(fields.Nested(ConsentEntrySchema), metadata={"description": "Every change, newest first."})
