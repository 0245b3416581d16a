"""marshmallow schemas of the integrations routes: bodies and queries checked precisely here (422 naming the
field, before the integrations service is asked; it checks everything again), answers shaped as the service
gives them.

An integration is a webhook endpoint of a tool a customer plugged in: a name, its URL, the event types it is
sent, the personal fields it may receive (a subset of e-mail, name, phone and conversations: the privacy
policy's §4 list; address, birth date, gender, photo, job title and credentials never) and the third party's
privacy-policy URL (shown in sharing reports). Its signing secret is answered twice only: when it is
registered and when it is rotated. A message is one event to one endpoint: ids, a state and its attempts
(status codes, outcomes, durations), never the payload.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields, post_load, validate

from ..audit.schemas import QueryInteger
from ..http.schemas import Pattern

# The integration settings, as the contract between the gateway and the integrations service names them.
SHAREABLE_FIELDS = ("email", "name", "phone", "conversations")
NEVER_SHAREABLE = ("address", "birth_date", "gender", "photo", "job_title", "credentials")
WEBHOOK_TYPES = (
    "conversation.created",
    "conversation.status_changed",
    "conversation.assigned",
    "message.created",
    "message.edited",
    "message.deleted",
    "customer.created",
    "subject.updated",
    "subject.erased",
)
ALL_EVENTS = "*"
STATUSES = ("enabled", "disabled")
DISABLED_REASONS = ("gone", "failing", "manual")
MESSAGE_STATUSES = ("pending", "delivering", "succeeded", "failed", "aborted", "canceled")
ATTEMPT_OUTCOMES = ("succeeded", "failed", "aborted", "timeout", "refused", "error")
RECOVERY_STATUSES = ("running", "completed")
NAME_MAX = 120
URL_MAX = 2048
MAX_LISTED = 20  # names in one list (each at most once in what is kept)
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
NOT_BLANK = r"[\s\S]*\S[\s\S]*"
# the shapes of the ids in paths (anything else is a 404 before the service is asked)
INTEGRATION_ID_PATTERN = r"^int_[A-Za-z0-9]{26}$"
MESSAGE_ID_PATTERN = r"^msg_[A-Za-z0-9]{20,64}$"
RECOVERY_ID_PATTERN = r"^rec_[A-Za-z0-9]{20,64}$"
_DATE_TIME = {"format": "date-time"}
_CURSOR = validate.Length(min=1, max=500)


# -- validators ------------------------------------------------------------------------

# An absolute http(s) URL as the document states it (ECMA-262 and Python read it alike): a host name (labels of
# 1 to 63 letters, digits and inner hyphens) or an IPv4 address (no IPv6 literal, no user or password), an
# optional port 1-65535, then anything but white space and control characters. An endpoint's URL has no
# fragment (the integrations service refuses one: it is never sent). check_web_url refuses nothing the
# pattern matches; it names what is wrong.
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ORIGIN = rf"^[Hh][Tt][Tt][Pp][Ss]?://{_LABEL}(?:\.{_LABEL})*(?::{_PORT})?"
WEB_URL_PATTERN = _ORIGIN + r"(?:[/?#][^\s\x00-\x1f\x7f]*)?$"
ENDPOINT_URL_PATTERN = _ORIGIN + r"(?:[/?][^\s\x00-\x1f\x7f#]*)?$"


def check_web_url(value: str, pattern: str = WEB_URL_PATTERN) -> None:
    """An absolute http(s) URL with a host, no user or password, no white space (and, for an endpoint, no
    fragment): each refusal says what is wrong, never quoting the URL (an endpoint's URL may embed a token)."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValidationError("must not contain white space or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port  # a port out of range or not a number raises
    except ValueError:
        raise ValidationError("must be an absolute http(s) URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValidationError("must be an absolute http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("must not hold a user name or password")
    if port == 0:
        raise ValidationError("must name a port between 1 and 65535")
    if pattern == ENDPOINT_URL_PATTERN and "#" in value:
        raise ValidationError("must not have a fragment (it is never sent)")
    if not re.fullmatch(pattern, value):
        raise ValidationError("must name its host by name (labels of letters, digits and inner hyphens) "
                              "or IPv4 address")


class WebUrl(Pattern):
    """:func:`check_web_url` as one validator that states its pattern (the document's ``pattern``)."""

    def __init__(self, pattern: str = WEB_URL_PATTERN) -> None:
        super().__init__(pattern)

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValidationError("must be an absolute http(s) URL")
        check_web_url(value, self.regex.pattern)
        return value


class SharedField(validate.OneOf):
    """One of the shareable fields. One the policy never lets out is named (it is one of a closed list); an
    unknown one is refused without quoting it (a client's arbitrary text never comes back)."""

    def __init__(self) -> None:
        super().__init__(SHAREABLE_FIELDS)

    def __call__(self, value: Any) -> Any:
        if value in SHAREABLE_FIELDS:
            return value
        if value in NEVER_SHAREABLE:
            raise ValidationError(f"{value} can never be shared with an integration "
                                  f"(allowed: {', '.join(SHAREABLE_FIELDS)})")
        raise ValidationError(f"holds an unknown field (allowed: {', '.join(SHAREABLE_FIELDS)})")


class EventType(validate.OneOf):
    """A webhook type, or ``*``; an unknown one is refused without quoting it."""

    def __init__(self) -> None:
        super().__init__((*WEBHOOK_TYPES, ALL_EVENTS))

    def __call__(self, value: Any) -> Any:
        if value in self.choices:
            return value
        raise ValidationError(f'holds an unknown event type (allowed: {", ".join(WEBHOOK_TYPES)}, or "*")')


class NameList(fields.List):
    """A list of names from a closed set: a refused name is reported on the list itself (``fields``, not
    ``fields.3``). :func:`once_each` keeps each name once, after the list's length is checked."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        try:
            names = super()._deserialize(value, attr, data, **kwargs)
        except ValidationError as exc:
            messages = exc.messages
            if isinstance(messages, dict):  # {index: [message]}: the first item's refusal
                first = messages[min(messages)]
                messages = first if isinstance(first, list) else [first]
            raise ValidationError(messages) from None
        return names


def once_each(data: dict[str, Any]) -> dict[str, Any]:
    """The loaded settings with each field and event type named once, in their first order; ``"*"`` listed
    with other types is every type all the same: ``["*"]``."""
    for key in ("fields", "events"):
        if key in data:
            data[key] = list(dict.fromkeys(data[key]))
    if ALL_EVENTS in data.get("events", ()):
        data["events"] = [ALL_EVENTS]
    return data


def _name(**kwargs: Any) -> fields.String:
    return fields.String(validate=[validate.Length(min=1, max=NAME_MAX), Pattern(NOT_BLANK, error="must not be blank")],
                         metadata={"description": "The tool's name (shown to admins and in sharing reports).",
                                   "example": "CRM Vendas"}, **kwargs)


def _url(description: str, pattern: str = WEB_URL_PATTERN, **kwargs: Any) -> fields.String:
    return fields.String(validate=[validate.Length(min=1, max=URL_MAX), WebUrl(pattern)],
                         metadata={"format": "uri", "description": description}, **kwargs)


def _events(**kwargs: Any) -> fields.List:
    return NameList(
        fields.String(validate=EventType()),
        validate=validate.Length(min=1, max=MAX_LISTED),
        metadata={"description": 'The webhook types sent to it, or ["*"] for every type (with others: still '
                                 "every type). subject.updated and subject.erased reach every integration that "
                                 "received a person's data, whatever it subscribed to (LGPD art. 18 §6)."},
        **kwargs)


def _fields(**kwargs: Any) -> fields.List:
    return NameList(
        fields.String(validate=SharedField()),
        validate=validate.Length(max=MAX_LISTED),
        metadata={"description": "The personal fields it may receive (ids always go): a subset of "
                                 f"{', '.join(SHAREABLE_FIELDS)}; empty: ids only. {', '.join(NEVER_SHAREABLE)} "
                                 "can never be selected (422 naming the field)."},
        **kwargs)


# -- bodies and queries ----------------------------------------------------------------


_ENDPOINT_URL = "The endpoint the webhooks are POSTed to (https in production; never followed on a redirect)."
_POLICY_URL = "The third party's privacy policy (shown in the sharing reports of the people whose data it gets)."


class IntegrationCreateSchema(Schema):
    name = _name(required=True)
    url = _url(_ENDPOINT_URL, ENDPOINT_URL_PATTERN, required=True)
    events = _events(required=True)
    privacy_policy_url = _url(_POLICY_URL, required=True)

    @post_load
    def _once_each(self, data: dict, **kwargs: Any) -> dict:
        return once_each(data)

    fields = _fields(required=True)  # last: in the class body the name hides marshmallow's module


class IntegrationPatchSchema(Schema):
    """Any of the settings, and the status (disabling by hand: reason ``manual``). An empty change is the
    integrations service's 422 (``changes``)."""

    name = _name()
    url = _url(_ENDPOINT_URL, ENDPOINT_URL_PATTERN)
    events = _events()
    privacy_policy_url = _url(_POLICY_URL)
    status = fields.String(validate=validate.OneOf(STATUSES), metadata={
        "description": "enabled (again: its failures forgotten) or disabled (nothing is sent to it)."})

    @post_load
    def _once_each(self, data: dict, **kwargs: Any) -> dict:
        return once_each(data)

    fields = _fields()  # last: in the class body the name hides marshmallow's module


class IntegrationsQuerySchema(Schema):
    limit = QueryInteger(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(validate=_CURSOR, metadata={"description": "next_cursor of the previous page."})


class WebhookMessagesQuerySchema(IntegrationsQuerySchema):
    status = fields.String(validate=validate.OneOf(MESSAGE_STATUSES))


class RecoverSchema(Schema):
    since = fields.AwareDateTime(required=True, format="iso", metadata={
        "description": "Every failed message of the integration created since then is sent again."})


# -- answers ---------------------------------------------------------------------------


class IntegrationSchema(Schema):
    """An integration's settings and state; never its secret."""

    id = fields.String(required=True, metadata={"pattern": INTEGRATION_ID_PATTERN})
    name = fields.String(required=True)
    url = fields.String(required=True, metadata={"format": "uri"})
    events = fields.List(fields.String(), required=True)
    privacy_policy_url = fields.String(required=True, metadata={"format": "uri"})
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    disabled_reason = fields.String(required=True, allow_none=True, metadata={
        "enum": [*DISABLED_REASONS, None],
        "description": "Why it is disabled: gone (the endpoint answered 410), failing (it failed for 5 days), "
                       "manual (an admin disabled it); null when enabled."})
    created_at = fields.String(required=True, metadata=_DATE_TIME)
    updated_at = fields.String(required=True, metadata=_DATE_TIME)
    secret_rotated_at = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)
    previous_secret_valid_until = fields.String(required=True, allow_none=True, metadata={
        **_DATE_TIME, "description": "Until then the secret before the last rotation still signs (both "
                                     "signatures are sent); null when none does."})
    fields = fields.List(fields.String(), required=True)  # last: in the class body the name hides the module


_SECRET = {"description": "The signing secret (Standard Webhooks: whsec_ + base64 of 32 bytes). Shown this once: "
                          "it cannot be read again, only rotated.", "pattern": r"^whsec_[A-Za-z0-9+/=]+$"}


class IntegrationCreatedSchema(IntegrationSchema):
    secret = fields.String(required=True, metadata=_SECRET)


class RotatedSecretSchema(Schema):
    id = fields.String(required=True, metadata={"pattern": INTEGRATION_ID_PATTERN})
    secret = fields.String(required=True, metadata=_SECRET)
    previous_valid_until = fields.String(required=True, metadata={
        **_DATE_TIME, "description": "The previous secret keeps signing (both signatures are sent) until then: 24 h."})


class IntegrationPageSchema(Schema):
    items = fields.List(fields.Nested(IntegrationSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True,
                                metadata={"description": "Pass as `cursor` for the next page; null at the end."})


class WebhookAttemptSchema(Schema):
    number = fields.Integer(required=True)
    started_at = fields.String(required=True, metadata=_DATE_TIME)
    finished_at = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)
    status_code = fields.Integer(required=True, allow_none=True, metadata={
        "description": "The endpoint's HTTP status (null: no answer: a timeout, a refused address, an error)."})
    outcome = fields.String(required=True, metadata={"enum": list(ATTEMPT_OUTCOMES)})
    duration_ms = fields.Number(required=True, allow_none=True)
    error = fields.String(required=True, allow_none=True, metadata={
        "description": "What went wrong without an HTTP answer (a timeout, the SSRF guard's refusal)."})


class WebhookMessageSchema(Schema):
    """One event to one endpoint: its state and its attempts; never the payload."""

    id = fields.String(required=True, metadata={"pattern": MESSAGE_ID_PATTERN,
                                                 "description": "Also the webhook-id header of every attempt."})
    integration_id = fields.String(required=True, metadata={"pattern": INTEGRATION_ID_PATTERN})
    event_type = fields.String(required=True, metadata={"enum": list(WEBHOOK_TYPES)})
    event_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(MESSAGE_STATUSES)})
    created_at = fields.String(required=True, metadata=_DATE_TIME)
    next_attempt_at = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)
    attempts = fields.List(fields.Nested(WebhookAttemptSchema), metadata={"description": "Oldest first."})


class WebhookMessagePageSchema(Schema):
    items = fields.List(fields.Nested(WebhookMessageSchema), required=True, metadata={"description": "Newest first."})
    next_cursor = fields.String(required=True, allow_none=True,
                                metadata={"description": "Pass as `cursor` for older messages; null at the end."})


class RecoverySchema(Schema):
    """A background job sending again every failed message since a time."""

    id = fields.String(required=True, metadata={"pattern": RECOVERY_ID_PATTERN})
    integration_id = fields.String(required=True, metadata={"pattern": INTEGRATION_ID_PATTERN})
    since = fields.String(required=True, metadata=_DATE_TIME)
    status = fields.String(required=True, metadata={"enum": list(RECOVERY_STATUSES)})
    total = fields.Integer(required=True, allow_none=True, metadata={
        "description": "The failed messages found (null while they are still being counted)."})
    queued = fields.Integer(required=True, metadata={"description": "Those queued again so far."})
    created_at = fields.String(required=True, metadata=_DATE_TIME)
    completed_at = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)
