"""marshmallow schemas of the messaging routes: requests checked precisely here (a 422 naming the field
or parameter, before messaging is asked), answers shaped as messaging gives them (only the documented
members reach the client).

The gateway checks shape and bounds; messaging checks meaning: that a customer, a team or a staff user
exists and is active, who may see which conversation (R2.1), that a snooze ends in the future, that an
edit is within its window. Bodies, subjects, chat titles and attachment names are personal data: they
travel in request bodies (never in a URL, except the search words the issue names
``GET /v1/messages/search?q=``, which no log line records: the access log shows the route, not the query).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..audit.schemas import QueryInteger
from ..notifications.schemas import QueryUuid

CHANNELS = ("whatsapp", "email", "web", "phone", "other")
STATUSES = ("open", "pending", "snoozed", "resolved")
PRIORITIES = ("low", "medium", "high", "urgent")
DIRECTIONS = ("incoming", "outgoing")  # a staff chat's messages are "internal" (answers only)
CHAT_KINDS = ("direct", "group")

BODY_MAX = 20_000  # characters of one message: a long e-mail, far more than a chat line
CLIENT_MESSAGE_ID_MAX = 100
SUBJECT_MAX = 300
TITLE_MAX = 200
TEAM_NAME_MAX = 100
LABEL_MAX, LABELS_MAX = 50, 20
TEAM_MEMBERS_MAX, CHAT_MEMBERS_MAX = 500, 100
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
SEARCH_DEFAULT_LIMIT, SEARCH_MAX_LIMIT = 20, 100
QUERY_MAX = 200  # characters of a search
ATTACHMENT_NAME_MAX = 200
ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024  # 10 MiB (the limit)
_CURSOR = validate.Length(min=1, max=500)
_DATE_TIME = {"format": "date-time"}
_UUID = {"format": "uuid"}
# a label: 1 to 50 characters, no control character (messaging keeps it stripped and lower-cased)
LABEL_PATTERN = r"^[^\x00-\x1f\x7f]{1,50}$"
_LABEL = re.compile(LABEL_PATTERN)
# a file name as a client names it: no path, no control character, not "." or ".."
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


class Text(fields.String):
    """A text typed by a person (a body, a subject, a title): NFC, without NUL or other control characters
    but newlines and tabs, and not only whitespace. Length bounds count characters after NFC."""

    _CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

    def __init__(self, max_length: int, **kwargs: Any) -> None:
        super().__init__(validate=validate.Length(min=1, max=max_length), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = unicodedata.normalize("NFC", super()._deserialize(value, attr, data, **kwargs))
        if self._CONTROL.search(text):
            raise ValidationError("must not hold control characters (newlines and tabs are fine)")
        if not text.strip():
            raise ValidationError("must not be blank")
        return text


def _unique(values: list) -> None:
    if len(set(values)) != len(values):
        raise ValidationError("must not name anyone twice")


def _ids(max_items: int, min_items: int = 0, **kwargs: Any) -> fields.List:
    return fields.List(QueryUuid(), validate=[validate.Length(min=min_items, max=max_items), _unique], **kwargs)


def _label(value: str) -> None:
    if not _LABEL.fullmatch(value) or not value.strip():
        raise ValidationError("must be 1 to 50 characters, not blank, without control characters")


def _labels(**kwargs: Any) -> fields.List:
    def unique(values: list) -> None:
        if len({v.strip().casefold() for v in values}) != len(values):
            raise ValidationError("must not repeat a label")

    return fields.List(fields.String(validate=_label, metadata={"pattern": LABEL_PATTERN}),
                       validate=[validate.Length(max=LABELS_MAX), unique], **kwargs)


def iso_utc(value) -> str | None:
    """An aware datetime as messaging takes instants: ISO 8601 in UTC."""
    return None if value is None else value.astimezone(UTC).isoformat()


# -- teams --------------------------------------------------------------------------------------------


class TeamCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=TEAM_NAME_MAX),
                         metadata={"description": "A team's name (not personal data): 'Suporte N1'."})
    member_ids = _ids(TEAM_MEMBERS_MAX, required=True,
                      metadata={"description": "Staff user ids (active staff; messaging checks with identity)."})


class TeamPatchSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=TEAM_NAME_MAX))
    member_ids = _ids(TEAM_MEMBERS_MAX, metadata={"description": "The whole new list of members."})

    @validates_schema
    def _something(self, data: dict, **kwargs: Any) -> None:
        if not data:
            raise ValidationError("give name and/or member_ids", field_name="_schema")


class TeamSchema(Schema):
    id = fields.String(required=True, metadata=_UUID)
    name = fields.String(required=True)
    member_ids = fields.List(fields.String(metadata=_UUID), required=True)
    created_at = fields.String(required=True, metadata=_DATE_TIME)
    updated_at = fields.String(required=True, metadata=_DATE_TIME)


class TeamListSchema(Schema):
    items = fields.List(fields.Nested(TeamSchema), required=True)


# -- conversations --------------------------------------------------------------------------------------


class ConversationCreateSchema(Schema):
    customer_id = QueryUuid(required=True, metadata={"description": "An active customer of identity."})
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    team_id = QueryUuid(allow_none=True)
    subject = Text(SUBJECT_MAX, allow_none=True, metadata={
        "description": "Sealed under the customer's key; shown by GET /v1/conversations/{id} only (audited)."})
    assignee_id = QueryUuid(allow_none=True, metadata={"description": "An active staff user."})
    priority = fields.String(validate=validate.OneOf(PRIORITIES), metadata={"description": "medium if not given."})
    labels = _labels()


class ConversationPatchSchema(Schema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    snoozed_until = fields.AwareDateTime(allow_none=True, metadata={
        "description": "With status snoozed (required then, in the future): the conversation reopens by itself "
                       "at this instant."})
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    assignee_id = QueryUuid(allow_none=True, metadata={"description": "null unassigns."})
    team_id = QueryUuid(allow_none=True)
    labels = _labels(metadata={"description": "The whole new set of labels."})

    @validates_schema
    def _consistent(self, data: dict, **kwargs: Any) -> None:
        if not data:
            raise ValidationError("give at least one of status, snoozed_until, priority, assignee_id, team_id, "
                                  "labels", field_name="_schema")
        status = data.get("status")
        if status == "snoozed" and data.get("snoozed_until") is None:
            raise ValidationError("is required when status is snoozed", field_name="snoozed_until")
        if "snoozed_until" in data and status != "snoozed" and data["snoozed_until"] is not None:
            raise ValidationError("is only for status snoozed", field_name="snoozed_until")
        if "snoozed_until" in data and status is None:
            raise ValidationError("goes with status snoozed", field_name="snoozed_until")


def conversation_changes(body: dict) -> dict:
    """``update_conversation``'s ``changes``: what was given, instants as ISO 8601 UTC strings."""
    changes = dict(body)
    if "snoozed_until" in changes:
        changes["snoozed_until"] = iso_utc(changes["snoozed_until"])
    return changes


class ConversationsQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    assignee_id = QueryUuid()
    team_id = QueryUuid()
    label = fields.String(validate=_label, metadata={"pattern": LABEL_PATTERN})
    customer_id = QueryUuid()
    limit = QueryInteger(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(validate=_CURSOR, metadata={"description": "next_cursor of the previous page."})


CONVERSATION_FILTERS = ("status", "assignee_id", "team_id", "label", "customer_id")


def conversation_filters(query: dict) -> dict[str, str]:
    """The ``filters`` argument of messaging's ``conversations``: only what was given."""
    return {key: query[key] for key in CONVERSATION_FILTERS if query.get(key) is not None}


class _ConversationFields(Schema):
    id = fields.String(required=True, metadata=_UUID)
    customer_id = fields.String(required=True, metadata=_UUID)
    channel = fields.String(required=True, metadata={"enum": list(CHANNELS)})
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    snoozed_until = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)
    priority = fields.String(required=True, metadata={"enum": list(PRIORITIES)})
    assignee_id = fields.String(required=True, allow_none=True, metadata=_UUID)
    team_id = fields.String(required=True, allow_none=True, metadata=_UUID)
    labels = fields.List(fields.String(), required=True)
    created_at = fields.String(required=True, metadata=_DATE_TIME)
    updated_at = fields.String(required=True, metadata=_DATE_TIME)
    last_message_at = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)
    unread = fields.Integer(required=True, metadata={"description": "Messages after the caller's read cursor."})


class ConversationSchema(_ConversationFields):
    """One conversation, with its subject opened (an audited read)."""

    subject = fields.String(required=True, allow_none=True, metadata={
        "description": "null when none was given, or when the customer's data was erased."})


class ConversationItemSchema(_ConversationFields):
    """A conversation as a list shows it: no subject, no message (nothing sealed is opened for a list)."""


class ConversationPageSchema(Schema):
    items = fields.List(fields.Nested(ConversationItemSchema), required=True,
                        metadata={"description": "By last activity, newest first."})
    next_cursor = fields.String(required=True, allow_none=True,
                                metadata={"description": "Pass as `cursor` for the next page; null at the end."})


# -- messages -------------------------------------------------------------------------------------------


class _NewMessageFields(Schema):
    body = Text(BODY_MAX, required=True, metadata={"description": f"1 to {BODY_MAX} characters (NFC)."})
    client_message_id = fields.String(validate=validate.Length(min=1, max=CLIENT_MESSAGE_ID_MAX), metadata={
        "description": "Your id for this message: sent again, the same message is answered (200) and nothing is "
                       "posted twice."})
    attachment_ids = _ids(10, metadata={"description": "Attachments uploaded to this conversation or chat and not "
                                                       "yet part of a message."})


class MessageCreateSchema(_NewMessageFields):
    direction = fields.String(required=True, validate=validate.OneOf(DIRECTIONS), metadata={
        "description": "incoming: the customer's (needs conversations.record_incoming; reopens a pending, snoozed "
                       "or resolved conversation); outgoing: staff's (needs conversations.write)."})
    private = fields.Boolean(load_default=False, metadata={
        "description": "A private note between staff (outgoing only): never in any customer-facing or "
                       "integration payload."})

    @validates_schema
    def _private_is_outgoing(self, data: dict, **kwargs: Any) -> None:
        if data.get("private") and data.get("direction") == "incoming":
            raise ValidationError("a private note is outgoing (staff's), never incoming", field_name="private")


class ChatMessageCreateSchema(_NewMessageFields):
    pass


def message_data(body: dict) -> dict:
    """``send_message``/``send_chat_message``'s ``data``: what was given."""
    return {key: value for key, value in body.items() if value is not None}


class MessagePatchSchema(Schema):
    body = Text(BODY_MAX, required=True, metadata={"description": "The new text (the former stays in the history)."})


class PageQuerySchema(Schema):
    before = QueryUuid(metadata={"description": "A message id: the messages before it."})
    after = QueryUuid(metadata={"description": "A message id: the messages after it."})
    limit = QueryInteger(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))

    @validates_schema
    def _one_cursor(self, data: dict, **kwargs: Any) -> None:
        if data.get("before") is not None and data.get("after") is not None:
            raise ValidationError("give before or after, not both", field_name="after")


class SearchQuerySchema(Schema):
    q = fields.String(required=True, validate=validate.Length(min=1, max=QUERY_MAX), metadata={
        "description": "Words, all required; case and accents ignored ('nao' finds 'não')."})
    conversation_id = QueryUuid()
    chat_id = QueryUuid()
    limit = QueryInteger(load_default=SEARCH_DEFAULT_LIMIT, validate=validate.Range(min=1, max=SEARCH_MAX_LIMIT))
    cursor = fields.String(validate=_CURSOR, metadata={"description": "next_cursor of the previous page."})

    @validates_schema
    def _words(self, data: dict, **kwargs: Any) -> None:
        q = data.get("q")
        if q is not None and not any(c.isalnum() for c in q):
            raise ValidationError("must hold at least one word", field_name="q")
        if data.get("conversation_id") is not None and data.get("chat_id") is not None:
            raise ValidationError("give conversation_id or chat_id, not both", field_name="chat_id")


class AttachmentSchema(Schema):
    id = fields.String(required=True, metadata=_UUID)
    name = fields.String(required=True, metadata={"description": "The file name given at upload."})
    content_type = fields.String(required=True, metadata={"description": "Sniffed from the bytes."})
    size = fields.Integer(required=True, metadata={"description": "Bytes."})
    sha256 = fields.String(required=True, metadata={"description": "Hex SHA-256 of the bytes."})


class MessageSchema(Schema):
    id = fields.String(required=True, metadata=_UUID)
    conversation_id = fields.String(required=True, allow_none=True, metadata=_UUID)
    chat_id = fields.String(required=True, allow_none=True, metadata=_UUID)
    author_id = fields.String(required=True, allow_none=True, metadata={
        **_UUID, "description": "The staff user who wrote or recorded it."})
    direction = fields.String(required=True, metadata={"enum": [*DIRECTIONS, "internal"]})
    private = fields.Boolean(required=True)
    body = fields.String(required=True, allow_none=True, metadata={
        "description": "null when deleted, or when its data subject's data was erased."})
    created_at = fields.String(required=True, metadata=_DATE_TIME)
    edited_at = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)
    deleted = fields.Boolean(required=True)
    attachments = fields.List(fields.Nested(AttachmentSchema), required=True)


class MessagePageSchema(Schema):
    items = fields.List(fields.Nested(MessageSchema), required=True, metadata={"description": "Oldest first."})
    has_more_before = fields.Boolean(required=True)
    has_more_after = fields.Boolean(required=True)


class MessageVersionSchema(Schema):
    version = fields.Integer(required=True, metadata={"description": "1 is the message as first sent."})
    body = fields.String(required=True, allow_none=True)
    edited_at = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)
    editor_id = fields.String(required=True, allow_none=True, metadata=_UUID)


class MessageHistorySchema(Schema):
    items = fields.List(fields.Nested(MessageVersionSchema), required=True,
                        metadata={"description": "Every version, first to last."})


class SearchPageSchema(Schema):
    items = fields.List(fields.Nested(MessageSchema), required=True, metadata={"description": "Newest first."})
    next_cursor = fields.String(required=True, allow_none=True)


# -- read cursors, unread counts, receipts ------------------------------------------------------------


class ReadUpToSchema(Schema):
    message_id = QueryUuid(required=True, metadata={
        "description": "The last message read; a cursor never moves back."})


class ReadCursorSchema(Schema):
    conversation_id = fields.String(allow_none=True, metadata=_UUID)
    chat_id = fields.String(allow_none=True, metadata=_UUID)
    user_id = fields.String(required=True, metadata=_UUID)
    message_id = fields.String(required=True, metadata=_UUID)
    read_at = fields.String(required=True, metadata=_DATE_TIME)


class UnreadItemSchema(Schema):
    conversation_id = fields.String(metadata=_UUID)
    chat_id = fields.String(metadata=_UUID)
    unread = fields.Integer(required=True)


class UnreadSchema(Schema):
    total = fields.Integer(required=True, metadata={"description": "Over every conversation and chat one sees."})
    items = fields.List(fields.Nested(UnreadItemSchema), required=True,
                        metadata={"description": "A conversation's (conversation_id) or a chat's (chat_id)."})


class ReceiptSchema(Schema):
    user_id = fields.String(required=True, metadata=_UUID)
    message_id = fields.String(required=True, metadata=_UUID)
    read_at = fields.String(required=True, metadata=_DATE_TIME)


class ReceiptListSchema(Schema):
    items = fields.List(fields.Nested(ReceiptSchema), required=True)


# -- staff chats ----------------------------------------------------------------------------------------


class ChatCreateSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(CHAT_KINDS))
    member_ids = _ids(CHAT_MEMBERS_MAX, min_items=1, required=True, metadata={
        "description": "The other members (the creator is always one): exactly one for a direct chat."})
    title = Text(TITLE_MAX, allow_none=True, metadata={"description": "A group's title (sealed)."})

    @validates_schema
    def _direct(self, data: dict, **kwargs: Any) -> None:
        if data.get("kind") == "direct":
            if len(data.get("member_ids") or ()) != 1:
                raise ValidationError("a direct chat has exactly one other member", field_name="member_ids")
            if data.get("title") is not None:
                raise ValidationError("a direct chat has no title", field_name="title")


class ChatMemberSchema(Schema):
    user_id = QueryUuid(required=True, metadata={"description": "An active staff user."})


class ChatSchema(Schema):
    id = fields.String(required=True, metadata=_UUID)
    kind = fields.String(required=True, metadata={"enum": list(CHAT_KINDS)})
    title = fields.String(required=True, allow_none=True)
    creator_id = fields.String(required=True, metadata=_UUID)
    member_ids = fields.List(fields.String(metadata=_UUID), required=True)
    created_at = fields.String(required=True, metadata=_DATE_TIME)
    updated_at = fields.String(required=True, metadata=_DATE_TIME)
    last_message_at = fields.String(required=True, allow_none=True, metadata=_DATE_TIME)
    unread = fields.Integer(required=True)


class ChatListSchema(Schema):
    items = fields.List(fields.Nested(ChatSchema), required=True)


# -- attachments ----------------------------------------------------------------------------------------


class AttachmentUploadQuerySchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=ATTACHMENT_NAME_MAX), metadata={
        "description": "The file's name (no path)."})
    conversation_id = QueryUuid(metadata={"description": "The conversation it is for (or chat_id)."})
    chat_id = QueryUuid(metadata={"description": "The staff chat it is for (or conversation_id)."})

    @validates_schema
    def _checked(self, data: dict, **kwargs: Any) -> None:
        name = data.get("name")
        if name is not None and (_BAD_NAME.search(name) or name.strip() in ("", ".", "..")):
            raise ValidationError("must be a file name: no path, no control character", field_name="name")
        if (data.get("conversation_id") is None) == (data.get("chat_id") is None):
            raise ValidationError("give conversation_id or chat_id (one of them)", field_name="conversation_id")


def upload_data(query: dict, content_b64: str) -> dict:
    """``upload_attachment``'s ``data``: the name, the bytes and the one container given."""
    data = {"name": unicodedata.normalize("NFC", query["name"]), "content_b64": content_b64}
    for key in ("conversation_id", "chat_id"):
        if query.get(key) is not None:
            data[key] = query[key]
    return data
