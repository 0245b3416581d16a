"""marshmallow schemas of the messaging routes: requests checked precisely here (a 422 naming the field
or parameter, before messaging is asked), answers shaped as messaging gives them (only the documented
members reach the client).

The gateway checks shape and bounds, each stated in the OpenAPI document (a body the document allows is
loaded: the fuzz suite holds the gateway to it); messaging checks meaning and the rules between members,
each a 422 naming the field as well: that a customer, a team or a staff user exists and is active, who
may see which conversation (R2.1), a snooze with its time in the future, a private note only outgoing, a
direct chat of exactly one other member and no title, a change naming something.

Bodies, subjects, chat titles and attachment names are personal data: they travel in request bodies
(never in a URL, except the search words the issue names ``GET /v1/messages/search?q=``, which no log
line records: the access log shows the route, not the query).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..audit.schemas import QueryInteger
from ..http.schemas import Pattern
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
# a label: no control character, not blank (messaging keeps it stripped and lower-cased)
LABEL_PATTERN = r"^(?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*)?$"
# a file name as a client names it: no path, no control character, not "." or ".."
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


# a person's text: at least one character that is not a space, and no control character but newlines and
# tabs (a NUL, an escape sequence or a bell has no place in a message, and would reach every client)
# (the empty text is left to the length, so it is named once)
TEXT_PATTERN = r"^(?:[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*)?$"
TEXT_ERROR = "must hold a character that is not a space, and no control character (newlines and tabs are fine)"


class Text(fields.String):
    """A text typed by a person (a body, a subject, a title), passed on in Unicode NFC (the same words the
    same code points: search and history compare them)."""

    def __init__(self, max_length: int, **kwargs: Any) -> None:
        super().__init__(validate=[validate.Length(min=1, max=max_length), Pattern(TEXT_PATTERN, error=TEXT_ERROR)],
                         **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return unicodedata.normalize("NFC", super()._deserialize(value, attr, data, **kwargs))


def _ids(max_items: int, **kwargs: Any) -> fields.List:
    """A list of UUIDs (an id named twice counts once: messaging keeps the first)."""
    return fields.List(QueryUuid(), validate=validate.Length(max=max_items), **kwargs)


def _labels(**kwargs: Any) -> fields.List:
    label = fields.String(validate=[validate.Length(min=1, max=LABEL_MAX),
                                    Pattern(LABEL_PATTERN, error="must hold a character that is not a space, and "
                                                                 "no control character")])
    description = kwargs.pop("metadata", {}).get("description", "")
    return fields.List(label, validate=validate.Length(max=LABELS_MAX), metadata={
        "description": f"{description} Kept stripped and lower-cased, each once.".strip()}, **kwargs)


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
    """name and/or member_ids (an empty change is messaging's 422)."""

    name = fields.String(validate=validate.Length(min=1, max=TEAM_NAME_MAX))
    member_ids = _ids(TEAM_MEMBERS_MAX, metadata={"description": "The whole new list of members."})


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
    """Any of the members; messaging refuses an empty change, status snoozed without a future
    snoozed_until, and snoozed_until with another status (422 naming the field)."""

    status = fields.String(validate=validate.OneOf(STATUSES))
    snoozed_until = fields.AwareDateTime(allow_none=True, metadata={
        "description": "With status snoozed, and only then (required, in the future): the conversation reopens by "
                       "itself at this instant."})
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    assignee_id = QueryUuid(allow_none=True, metadata={"description": "null unassigns."})
    team_id = QueryUuid(allow_none=True)
    labels = _labels(metadata={"description": "The whole new set of labels."})


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
    label = fields.String(validate=[validate.Length(min=1, max=LABEL_MAX),
                                    Pattern(LABEL_PATTERN, error="must not be blank")])
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
    private = fields.Boolean(load_default=False, truthy={True}, falsy={False}, metadata={
        "description": "A private note between staff (outgoing only: an incoming one is messaging's 422): never "
                       "in any customer-facing or integration payload."})


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
    member_ids = _ids(CHAT_MEMBERS_MAX, required=True, metadata={
        "description": "The other members (the creator is always one): exactly one for a direct chat, one or more "
                       "for a group (messaging's 422 otherwise)."})
    title = Text(TITLE_MAX, allow_none=True, metadata={"description": "A group's title (sealed)."})


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
