"""marshmallow schemas of the identity routes (shapes; identity checks meaning:
e-mail syntax, E.164 phone, CEP and UF, minimum age, password policy)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from ..http.schemas import Pattern

ROLES = ("admin", "supervisor", "attendant", "dpo")
LOCALES = ("pt-BR", "en")  # the languages identity's messages to a user are written in (pt-BR by default)
STATUSES = ("active", "deactivated")
_TEXT = validate.Length(min=1, max=200)

# What identity accepts, as the OpenAPI document states it and the gateway checks it first (422 naming
# the field). Identity still checks meaning no pattern can: that a phone number exists, an adult's
# birth date, a password that is not common, an IDN domain that encodes.
# The e-mail: RFC 5322 dot-atoms, non-ASCII letters allowed (RFC 6531); domain labels and a TLD (an
# IDN's ASCII form too); lone surrogates are not characters. At most 254 characters (maxLength); the
# part before the @ at most 64, which a pattern cannot say without a look-ahead: identity refuses it (422).
_U = "\\u0080-\\ud7ff\\ue000-\\uffff"
_C = f"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~{_U}-]"
_LOCAL = f"{_C}{{1,64}}(?:\\.{_C}{{1,64}}){{0,31}}"
_LABEL = f"[A-Za-z0-9{_U}](?:[A-Za-z0-9{_U}-]{{0,61}}[A-Za-z0-9{_U}])?"
_TLD = f"(?:[A-Za-z{_U}]{{2,63}}|[Xx][Nn]--[A-Za-z0-9-]{{1,59}})"
EMAIL_PATTERN = f"^{_LOCAL}@(?:{_LABEL}\\.){{1,8}}{_TLD}$"
EMAIL_MAX = 254
# digits with the usual separators, an optional leading + (E.164 when given); Brazilian by default
PHONE_PATTERN = r"^\+?[0-9 ().-]{8,32}$"
# a calendar day from 1900-01-01 to 2099-12-31 (29 February of leap years only; 1900 is not one)
_MONTH_DAY = ("(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
              "|02-(?:0[1-9]|1[0-9]|2[0-8]))")
_LEAP_YEAR = "(?:19(?:0[48]|[2468][048]|[13579][26])|20(?:[02468][048]|[13579][26]))"
DATE_PATTERN = f"^(?:(?:19|20)[0-9]{{2}}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)$"
# secrets.token_urlsafe(32): the reset token; "<session id>.<token_urlsafe(32)>": the refresh token
RESET_TOKEN_PATTERN = r"^[A-Za-z0-9_-]{43}$"
REFRESH_TOKEN_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.[A-Za-z0-9_-]{43}$"
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,500}$"
COUNTRY_PATTERN = r"^[A-Za-z]{2}$"
PASSWORD_MIN, PASSWORD_MAX = 10, 72  # characters; identity also refuses more than 72 bytes in UTF-8


def _email(description: str | None = None, **kwargs: Any) -> fields.String:
    metadata = {"format": "email", **({"description": description} if description else {})}
    return fields.String(validate=[validate.Length(max=EMAIL_MAX),
                                   Pattern(EMAIL_PATTERN, error="must look like name@example.com")],
                         metadata=metadata, **kwargs)


def _phone(**kwargs: Any) -> fields.String:
    return fields.String(validate=Pattern(PHONE_PATTERN, error="must be a phone number: digits, spaces, "
                                                  "( ) . - and an optional leading +"),
                         metadata={"description": "Brazilian numbers by default, else +country code; stored as "
                                                  "E.164. Identity refuses a number that cannot exist (422)."},
                         **kwargs)


def _birth_date(**kwargs: Any) -> fields.String:
    return fields.String(validate=Pattern(DATE_PATTERN, error="must be a date YYYY-MM-DD from 1900 to 2099"),
                         metadata={"format": "date", "description": "Not in the future, not before 1900; staff "
                                                                    "must be adults (422 otherwise)."}, **kwargs)


def _new_password(**kwargs: Any) -> fields.String:
    return fields.String(load_only=True, validate=validate.Length(min=PASSWORD_MIN, max=PASSWORD_MAX),
                         metadata={"description": "At least 10 characters, at most 72 bytes in UTF-8, not a common "
                                                  "password, not containing the part of the e-mail before the @ "
                                                  "(422 otherwise)."}, **kwargs)


def _locale(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.OneOf(LOCALES), metadata={
        "description": "The language of the e-mails the user gets (pt-BR unless chosen): a preference, not personal "
                       "data. Every user may change their own, whatever fields their role may edit."}, **kwargs)


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
    country = fields.String(load_default="BR", validate=Pattern(COUNTRY_PATTERN,
                                                                      error="must be a two-letter country code"),
                            metadata={"description": "ISO 3166-1 alpha-2 (identity refuses an unassigned code)"})


class _Profile(Schema):
    full_name = fields.String(validate=_TEXT)
    email = _email()
    phone = _phone()
    birth_date = _birth_date()
    address = fields.Nested(AddressSchema)
    gender = fields.String(allow_none=True, validate=validate.Length(max=100))


class UserCreateSchema(_Profile):
    full_name = fields.String(required=True, validate=_TEXT)
    email = _email(required=True)
    phone = _phone(required=True)
    birth_date = _birth_date(required=True)
    address = fields.Nested(AddressSchema, required=True)
    job_title = fields.String(required=True, validate=_TEXT)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    password = _new_password(required=True)
    locale = _locale()


def _current_password() -> fields.String:
    return fields.String(load_only=True, validate=validate.Length(min=1, max=1024), metadata={
        "description": "Required to change one's own e-mail (403 wrong-password when wrong; the attempt counts "
                       "against the login limits). The old address is told of the change."})


class MePatchSchema(_Profile):
    job_title = fields.String(validate=_TEXT)
    current_password = _current_password()
    locale = _locale()


class UserPatchSchema(MePatchSchema):
    role = fields.String(validate=validate.OneOf(ROLES), metadata={
        "description": "Nobody changes their own role; the compliance role (dpo) is given or taken only by a holder "
                       "of a compliance role (403 otherwise)."})


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
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    locale = fields.String(required=True, metadata={"enum": list(LOCALES)})
    has_photo = fields.Boolean(required=True)
    created_at = fields.String(required=True, metadata={"format": "date-time"})


class UserPageSchema(Schema):
    items = fields.List(fields.Nested(UserSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class PageQuerySchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    cursor = fields.String(validate=Pattern(CURSOR_PATTERN, error="is not a cursor this API returned"),
                           metadata={"description": "next_cursor of the previous page (another is refused: 422)."})


class UserStatusChangeSchema(Schema):
    """The answer of a deactivation: the user and the status they now have."""

    id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})


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


class CustomerSearchSchema(PageQuerySchema):
    """The criteria of a customer search, in the body: an e-mail or a phone in a URL would stay in every
    proxy's and ingress's access log."""

    email = _email("Exact match (case-insensitive).")
    phone = _phone()


class LoginSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))


class TokenPairSchema(Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds the access token is valid"})


class RefreshSchema(Schema):
    refresh_token = fields.String(required=True, validate=Pattern(
        REFRESH_TOKEN_PATTERN, error="is not a refresh token this API issued"))


class PasswordChangeSchema(Schema):
    current_password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))
    new_password = _new_password(required=True)


class PasswordChangedSchema(Schema):
    revoked_sessions = fields.Integer(required=True)


class PasswordResetRequestSchema(Schema):
    email = _email(required=True)


class PasswordResetConfirmSchema(Schema):
    token = fields.String(required=True, validate=Pattern(
        RESET_TOKEN_PATTERN, error="is not a reset token this API issued"),
        metadata={"description": "The token of the reset e-mail (single use, 1 hour; a spent or expired one: 400)."})
    new_password = _new_password(required=True)


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
    compliance = fields.Boolean(required=True, metadata={
        "description": "A compliance role (dpo): the only kind that may hold audit.read, given or taken only by a "
                       "holder of a compliance role."})
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
