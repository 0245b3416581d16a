"""marshmallow schemas of the identity routes (shapes; identity checks meaning:
e-mail syntax, E.164 phone, CEP and UF, minimum age, password policy)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

ROLES = ("admin", "supervisor", "attendant", "dpo")
_TEXT = validate.Length(min=1, max=200)


class AddressSchema(Schema):
    street = fields.String(required=True, validate=_TEXT)
    number = fields.String(required=True, validate=validate.Length(min=1, max=20))
    complement = fields.String(allow_none=True, validate=validate.Length(max=200))
    district = fields.String(required=True, validate=_TEXT)
    city = fields.String(required=True, validate=_TEXT)
    state = fields.String(required=True, validate=validate.Length(min=1, max=100),
                          metadata={"description": "UF code (SP, RJ, ...) in Brazil"})
    postal_code = fields.String(required=True, validate=validate.Length(min=1, max=20),
                                metadata={"example": "01001-000"})
    country = fields.String(load_default="BR", validate=validate.Length(equal=2),
                            metadata={"description": "ISO 3166-1 alpha-2"})


class _Profile(Schema):
    full_name = fields.String(validate=_TEXT)
    email = fields.String(validate=validate.Length(min=3, max=254), metadata={"format": "email"})
    phone = fields.String(validate=validate.Length(min=3, max=64),
                          metadata={"description": "Brazilian numbers by default; stored as E.164"})
    birth_date = fields.String(validate=validate.Regexp(r"^\d{4}-\d{2}-\d{2}$", error="must be YYYY-MM-DD"),
                               metadata={"format": "date"})
    address = fields.Nested(AddressSchema)
    gender = fields.String(allow_none=True, validate=validate.Length(max=100))


class UserCreateSchema(_Profile):
    full_name = fields.String(required=True, validate=_TEXT)
    email = fields.String(required=True, validate=validate.Length(min=3, max=254), metadata={"format": "email"})
    phone = fields.String(required=True, validate=validate.Length(min=3, max=64))
    birth_date = fields.String(required=True, validate=validate.Regexp(r"^\d{4}-\d{2}-\d{2}$",
                                                                       error="must be YYYY-MM-DD"),
                               metadata={"format": "date"})
    address = fields.Nested(AddressSchema, required=True)
    job_title = fields.String(required=True, validate=_TEXT)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=1024),
                             metadata={"description": "At least 10 characters, at most 72 bytes in UTF-8, "
                                                      "not a common password, not containing the e-mail"})


class MePatchSchema(_Profile):
    job_title = fields.String(validate=_TEXT)


class UserPatchSchema(MePatchSchema):
    role = fields.String(validate=validate.OneOf(ROLES))


class _PersonOut(Schema):
    """What identity answers about a person (decrypted for this caller, audited)."""

    id = fields.String(required=True)
    full_name = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    birth_date = fields.String(allow_none=True)
    address = fields.Nested(AddressSchema, allow_none=True)
    gender = fields.String(allow_none=True)


class UserSchema(_PersonOut):
    job_title = fields.String(allow_none=True)
    role = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ["active", "deactivated"]})
    has_photo = fields.Boolean(required=True)
    created_at = fields.String(required=True, metadata={"format": "date-time"})


class UserPageSchema(Schema):
    items = fields.List(fields.Nested(UserSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class PageQuerySchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    cursor = fields.String(validate=validate.Length(max=500))


class UserStatusSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True)


class PhotoSchema(Schema):
    id = fields.String(required=True)
    content_type = fields.String(required=True)
    size = fields.Integer(required=True)
    width = fields.Integer(required=True)
    height = fields.Integer(required=True)


class CustomerCreateSchema(_Profile):
    full_name = fields.String(required=True, validate=_TEXT)


class CustomerPatchSchema(_Profile):
    pass


class CustomerSchema(_PersonOut):
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)


class CustomerPageSchema(Schema):
    items = fields.List(fields.Nested(CustomerSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class CustomerQuerySchema(PageQuerySchema):
    email = fields.String(validate=validate.Length(max=254))
    phone = fields.String(validate=validate.Length(max=64))


class LoginSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))


class TokenPairSchema(Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds the access token is valid"})


class RefreshSchema(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=200))


class PasswordChangeSchema(Schema):
    current_password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))
    new_password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))


class PasswordChangedSchema(Schema):
    revoked_sessions = fields.Integer(required=True)


class PasswordResetRequestSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))


class PasswordResetConfirmSchema(Schema):
    token = fields.String(required=True, validate=validate.Length(min=1, max=200))
    new_password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))


class AcceptedSchema(Schema):
    status = fields.String(required=True, metadata={"example": "accepted"})


class SessionSchema(Schema):
    id = fields.String(required=True)
    created_at = fields.String(required=True)
    last_refreshed_at = fields.String(allow_none=True)
    expires_at = fields.String(required=True)
    current = fields.Boolean(required=True)


class SessionListSchema(Schema):
    items = fields.List(fields.Nested(SessionSchema), required=True)


class RoleSchema(Schema):
    name = fields.String(required=True)
    permissions = fields.List(fields.String(), required=True)
    self_editable_fields = fields.List(fields.String(), required=True)
    updated_at = fields.String(required=True)


class PermissionSchema(Schema):
    name = fields.String(required=True)
    description = fields.String(required=True)


class RoleListSchema(Schema):
    items = fields.List(fields.Nested(RoleSchema), required=True)
    permissions = fields.List(fields.Nested(PermissionSchema), required=True)


class RoleUpdateSchema(Schema):
    permissions = fields.List(fields.String(validate=validate.Length(min=1, max=100)), required=True)
    self_editable_fields = fields.List(fields.String(validate=validate.Length(min=1, max=100)), required=True)


class DataMapEntrySchema(Schema):
    resource = fields.String(required=True)
    field = fields.String(required=True)
    category = fields.String(required=True)
    description = fields.String(required=True)
    encrypted_at_rest = fields.Boolean(required=True)
    shareable_with_integrations = fields.Boolean(required=True)


class DataMapSchema(Schema):
    items = fields.List(fields.Nested(DataMapEntrySchema), required=True)
