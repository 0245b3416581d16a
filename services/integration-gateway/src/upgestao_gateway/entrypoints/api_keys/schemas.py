"""marshmallow schemas of the API-key routes (issue 15): a key's settings in, its description out.

The shapes are checked here (422 naming the field); what a key may hold (a grantable permission the
creator's own role holds, an expiry at most a year ahead) is identity's rule, checked there. A key is
answered once, at its creation; afterwards only what it may do and when it was used.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..audit.schemas import QueryInteger

NAME_MAX = 100
SCOPES_MAX = 20
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
STATUSES = ("active", "revoked")
_DATE_TIME = {"format": "date-time"}


class ApiKeyCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=NAME_MAX),
                         metadata={"description": "What the key is for (the integrated tool): not personal data."})
    scopes = fields.List(fields.String(validate=validate.Length(min=1, max=64)), required=True,
                         validate=validate.Length(min=1, max=SCOPES_MAX), metadata={
                             "description": "Permissions the key holds, e.g. conversations.record_incoming, "
                                            "customers.read: each one the creator's role holds and one an "
                                            "integrated tool may hold (never a compliance permission, nor "
                                            "integrations.manage, roles.* or users.*)."})
    expires_at = fields.AwareDateTime(allow_none=True, metadata={
        "description": "When the key stops working (in the future, at most a year ahead); none: never."})


class ApiKeysQuerySchema(Schema):
    limit = QueryInteger(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(validate=validate.Length(min=1, max=500),
                           metadata={"description": "next_cursor of the previous page."})


class ApiKeySchema(Schema):
    id = fields.String(required=True, metadata={"format": "uuid"})
    name = fields.String(required=True)
    scopes = fields.List(fields.String(), required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    created_at = fields.String(required=True, metadata=_DATE_TIME)
    created_by = fields.String(required=True, metadata={"format": "uuid", "description": "The admin who issued it."})
    expires_at = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)
    last_used_at = fields.String(required=True, allow_none=True, metadata={
        **_DATE_TIME, "description": "When the key was last used (to the minute); none: never."})
    revoked_at = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)


class ApiKeyCreatedSchema(ApiKeySchema):
    key = fields.String(required=True, metadata={
        "description": "upk_…: shown this once (only its hash is kept). Present it as 'Authorization: Bearer "
                       "upk_…'."})


class ApiKeyPageSchema(Schema):
    items = fields.List(fields.Nested(ApiKeySchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)
