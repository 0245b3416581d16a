"""The messaging routes of the gateway: teams, customer conversations, their messages, staff chats,
read cursors, search and attachments (issue 13).

Each handler shapes the request for one messaging RPC and its answer for the client. Messaging decides
everything about who sees what (R2.1: one visibility rule for every list, read, count and search; a
conversation or chat the caller may not see is a 404, as if absent) and audits every read of a body, a
subject, a title or an attachment; the gateway checks the permission first (again in messaging, with
the caller's verified token) and the shape of what is asked (a 422 naming the field).

``personal_data=True`` marks the routes whose request or answer holds message bodies, subjects, chat
titles or attachments. Lists of conversations, unread counts, read cursors, receipts and teams carry
ids, states and counts only.

Routes over both kinds of container (``/v1/messages/…``, search, unread counts, attachments) let a
caller in with either the conversation permission or ``chats.use`` (``alternatives``): a dpo reads and
edits their staff chat messages without seeing any customer conversation, an attendant whose role has
no staff chat still edits their replies; messaging applies the rule of the message's container.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import quote

from werkzeug.wrappers import Response

from ..http.bodies import BinaryResponse, RawBody
from ..http.dumping import compile_dump
from ..http.guards import deny
from ..http.request import GatewayRequest
from ..http.responses import Reply
from ..http.routing import route
from .schemas import (
    ATTACHMENT_MAX_BYTES,
    AttachmentSchema,
    AttachmentUploadQuerySchema,
    ChatCreateSchema,
    ChatListSchema,
    ChatMemberSchema,
    ChatMessageCreateSchema,
    ChatSchema,
    ConversationCreateSchema,
    ConversationPageSchema,
    ConversationPatchSchema,
    ConversationSchema,
    ConversationsQuerySchema,
    MessageCreateSchema,
    MessageHistorySchema,
    MessagePageSchema,
    MessagePatchSchema,
    MessageSchema,
    PageQuerySchema,
    ReadCursorSchema,
    ReadUpToSchema,
    ReceiptListSchema,
    SearchPageSchema,
    SearchQuerySchema,
    TeamCreateSchema,
    TeamListSchema,
    TeamPatchSchema,
    TeamSchema,
    UnreadSchema,
    conversation_changes,
    conversation_filters,
    message_data,
    upload_data,
)

TEAMS = ("teams",)
CONVERSATIONS = ("conversations",)
MESSAGES = ("messages",)
CHATS = ("chats",)
ATTACHMENTS = ("attachments",)
READ, WRITE, INCOMING = "conversations.read", "conversations.write", "conversations.record_incoming"
CHAT = "chats.use"
# the permission each direction of a customer conversation's message needs
DIRECTION_PERMISSIONS = {"incoming": INCOMING, "outgoing": WRITE}
# what a download may be labelled as: a media type messaging sniffed (anything else: octet-stream)
_MEDIA_TYPE = re.compile(r"^[a-z]+/[a-z0-9][a-z0-9.+-]{0,126}(?:; charset=utf-8)?$")
DOWNLOAD_DESCRIPTION = ("The attachment's bytes, labelled with the type sniffed from them at upload "
                        "(Content-Disposition: attachment; X-Content-Type-Options: nosniff).")
_VISIBLE = "A conversation or chat the caller may not see is 404, as if it did not exist."


_dump_message = compile_dump(MessageSchema())  # MessageSchema().dump, compiled once (not a schema per send)


def _sent(answer: dict, location: str) -> Reply:
    """A sent message: 201, or 200 when its ``client_message_id`` was seen before (the same message)."""
    message = _dump_message(answer["message"])
    created = bool(answer.get("created", True))
    return Reply(message, status=201 if created else 200, headers={"Location": location.format(**message)})


def download(attachment: dict) -> Response:
    """The attachment's bytes as a download that no browser renders in the API's origin."""
    content_type = attachment.get("content_type") or ""
    if not _MEDIA_TYPE.fullmatch(content_type):
        content_type = "application/octet-stream"
    name = attachment.get("name") or "attachment"
    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "attachment"
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
    return Response(base64.b64decode(attachment["content_b64"]), status=200, content_type=content_type, headers={
        "Content-Disposition": disposition, "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store", "Content-Security-Policy": "default-src 'none'; sandbox"})


class MessagingRoutes:
    """Mixed into the gateway service (which provides ``self.rpc``)."""

    # -- teams ----------------------------------------------------------------------------------------

    @route("POST", "/v1/teams", personal_data=False, body=TeamCreateSchema, response=TeamSchema, status=201,
           auth="required", permission="teams.manage", errors=(404, 503), tags=TEAMS,
           summary="Create a team (a name and its staff members)")
    def create_team(self, request: GatewayRequest, body: dict) -> Reply:
        team = self.rpc.messaging.create_team(body["name"], body["member_ids"])
        return Reply(team, headers={"Location": f"/v1/teams/{team['id']}"})

    @route("GET", "/v1/teams", personal_data=False, response=TeamListSchema, auth="required", permission=READ,
           errors=(503,), tags=TEAMS, summary="Every team")
    def list_teams(self, request: GatewayRequest) -> dict:
        return self.rpc.messaging.teams()

    @route("GET", "/v1/teams/<uuid:team_id>", personal_data=False, response=TeamSchema, auth="required",
           permission=READ, errors=(404, 503), tags=TEAMS, summary="A team")
    def get_team(self, request: GatewayRequest, team_id) -> dict:
        return self.rpc.messaging.team(str(team_id))

    @route("PATCH", "/v1/teams/<uuid:team_id>", personal_data=False, body=TeamPatchSchema, response=TeamSchema,
           auth="required", permission="teams.manage", errors=(404, 503), tags=TEAMS,
           summary="Rename a team or replace its members")
    def update_team(self, request: GatewayRequest, team_id, body: dict) -> dict:
        return self.rpc.messaging.update_team(str(team_id), body)

    # -- conversations --------------------------------------------------------------------------------

    @route("POST", "/v1/conversations", personal_data=True, body=ConversationCreateSchema,
           response=ConversationSchema, status=201, auth="required", permission=WRITE, errors=(404, 503),
           tags=CONVERSATIONS, summary="Open a conversation with a customer on a channel")
    def open_conversation(self, request: GatewayRequest, body: dict) -> Reply:
        conversation = self.rpc.messaging.open_conversation(body)
        return Reply(conversation, headers={"Location": f"/v1/conversations/{conversation['id']}"})

    @route("GET", "/v1/conversations", personal_data=False, query=ConversationsQuerySchema,
           response=ConversationPageSchema, auth="required", permission=READ, errors=(503,), tags=CONVERSATIONS,
           summary="The conversations one may see (by last activity, newest first; cursor pagination)",
           description="Filters combine (AND). Attendants see the conversations assigned to them and the "
                       "unassigned ones of their teams, supervisors their teams', admins all. No subject and no "
                       "message in a list.")
    def list_conversations(self, request: GatewayRequest, query: dict) -> dict:
        return self.rpc.messaging.conversations(conversation_filters(query), query["limit"], query.get("cursor"))

    @route("GET", "/v1/conversations/unread", personal_data=False, response=UnreadSchema, auth="required",
           permission=READ, alternatives=(CHAT,), errors=(503,), tags=CONVERSATIONS,
           summary="Unread messages per conversation and chat one may see, and in total")
    def unread_counts(self, request: GatewayRequest) -> dict:
        return self.rpc.messaging.unread()

    @route("GET", "/v1/conversations/<uuid:conversation_id>", personal_data=True, response=ConversationSchema,
           auth="required", permission=READ, errors=(404, 503), tags=CONVERSATIONS,
           summary="A conversation, its subject opened", description=_VISIBLE)
    def get_conversation(self, request: GatewayRequest, conversation_id) -> dict:
        return self.rpc.messaging.conversation(str(conversation_id))

    @route("PATCH", "/v1/conversations/<uuid:conversation_id>", personal_data=False, body=ConversationPatchSchema,
           response=ConversationSchema, auth="required", permission=WRITE, errors=(404, 503), tags=CONVERSATIONS,
           summary="Triage a conversation: status (snoozed until an instant), priority, assignee, team, labels",
           description=_VISIBLE + " The answer's subject is null (PATCH opens nothing sealed).")
    def update_conversation(self, request: GatewayRequest, conversation_id, body: dict) -> dict:
        return {**self.rpc.messaging.update_conversation(str(conversation_id), conversation_changes(body)),
                "subject": None}

    @route("POST", "/v1/conversations/<uuid:conversation_id>/messages", personal_data=True,
           body=MessageCreateSchema, response=MessageSchema, status=201, repeat_status=200, auth="required",
           permission=READ,
           errors=(404, 503), tags=CONVERSATIONS,
           summary="Send a reply or a private note (outgoing), or record the customer's message (incoming)",
           description="outgoing needs conversations.write, incoming conversations.record_incoming (403 "
                       "otherwise). 201 with the new message; 200 with the same message when client_message_id "
                       "was sent before. " + _VISIBLE)
    def send_message(self, request: GatewayRequest, conversation_id, body: dict) -> Reply:
        needed = DIRECTION_PERMISSIONS[body["direction"]]
        if not request.principal.can(needed):
            raise deny(self, request, needed)
        answer = self.rpc.messaging.send_message(str(conversation_id), message_data(body))
        return _sent(answer, "/v1/messages/{id}")

    @route("GET", "/v1/conversations/<uuid:conversation_id>/messages", personal_data=True, query=PageQuerySchema,
           response=MessagePageSchema, auth="required", permission=READ, errors=(404, 503), tags=CONVERSATIONS,
           summary="A page of a conversation's messages (oldest first within the page; no cursor: the latest)",
           description=_VISIBLE)
    def list_messages(self, request: GatewayRequest, conversation_id, query: dict) -> dict:
        return self.rpc.messaging.messages(str(conversation_id), query.get("before"), query.get("after"),
                                           query["limit"])

    @route("POST", "/v1/conversations/<uuid:conversation_id>/read", personal_data=False, body=ReadUpToSchema,
           response=ReadCursorSchema, auth="required", permission=WRITE, errors=(404, 503), tags=CONVERSATIONS,
           summary="Move one's read cursor up to a message (never back)", description=_VISIBLE)
    def mark_conversation_read(self, request: GatewayRequest, conversation_id, body: dict) -> dict:
        return self.rpc.messaging.mark_read(str(conversation_id), body["message_id"])

    @route("GET", "/v1/conversations/<uuid:conversation_id>/receipts", personal_data=False,
           response=ReceiptListSchema, auth="required", permission=READ, errors=(404, 503), tags=CONVERSATIONS,
           summary="Read receipts: which staff user has read up to which message", description=_VISIBLE)
    def conversation_receipts(self, request: GatewayRequest, conversation_id) -> dict:
        return self.rpc.messaging.read_receipts(str(conversation_id))

    # -- messages (of a conversation or a chat) -------------------------------------------------------

    @route("GET", "/v1/messages/search", personal_data=True, query=SearchQuerySchema, response=SearchPageSchema,
           auth="required", permission=READ, alternatives=(CHAT,), errors=(404, 503), tags=MESSAGES,
           summary="Search the messages one may see: every word, case and accents ignored (newest first)",
           description="conversation_id or chat_id narrows the search to one conversation or chat (404 if the "
                       "caller may not see it). A short page, even an empty one, with a next_cursor is not the "
                       "end: the search goes on from there.")
    def search_messages(self, request: GatewayRequest, query: dict) -> dict:
        return self.rpc.messaging.search(query["q"], query.get("conversation_id"), query.get("chat_id"),
                                         query["limit"], query.get("cursor"))

    @route("GET", "/v1/messages/<uuid:message_id>", personal_data=True, response=MessageSchema, auth="required",
           permission=READ, alternatives=(CHAT,), errors=(404, 503), tags=MESSAGES, summary="A message",
           description=_VISIBLE)
    def get_message(self, request: GatewayRequest, message_id) -> dict:
        return self.rpc.messaging.message(str(message_id))

    @route("PATCH", "/v1/messages/<uuid:message_id>", personal_data=True, body=MessagePatchSchema,
           response=MessageSchema, auth="required", permission=WRITE, alternatives=(CHAT,), errors=(404, 409, 503),
           tags=MESSAGES, summary="Edit a message (its author within the edit window; messages.moderate any time)",
           description="The former text stays in GET /v1/messages/{id}/history. " + _VISIBLE)
    def edit_message(self, request: GatewayRequest, message_id, body: dict) -> dict:
        return self.rpc.messaging.edit_message(str(message_id), body["body"])

    @route("DELETE", "/v1/messages/<uuid:message_id>", personal_data=True, response=MessageSchema,
           auth="required", permission=WRITE, alternatives=(CHAT,), errors=(404, 409, 503), tags=MESSAGES,
           summary="Delete a message (its author within the edit window; messages.moderate any time)",
           description="The message stays, deleted and without a body; its history stays readable. " + _VISIBLE)
    def delete_message(self, request: GatewayRequest, message_id) -> dict:
        return self.rpc.messaging.delete_message(str(message_id))

    @route("GET", "/v1/messages/<uuid:message_id>/history", personal_data=True, response=MessageHistorySchema,
           auth="required", permission=READ, alternatives=(CHAT,), errors=(404, 503), tags=MESSAGES,
           summary="Every version of a message, first to last", description=_VISIBLE)
    def message_history(self, request: GatewayRequest, message_id) -> dict:
        return self.rpc.messaging.message_history(str(message_id))

    # -- staff chats ----------------------------------------------------------------------------------

    @route("POST", "/v1/chats", personal_data=True, body=ChatCreateSchema, response=ChatSchema, status=201,
           repeat_status=200, auth="required", permission=CHAT, errors=(404, 503), tags=CHATS,
           summary="Start a direct or group chat with other staff (the creator is always a member)",
           description="201 with the new chat; a direct chat that exists already is answered as it is, with 200.")
    def create_chat(self, request: GatewayRequest, body: dict) -> Reply:
        chat = self.rpc.messaging.create_chat({k: v for k, v in body.items() if v is not None})
        created = bool(chat.pop("created", True))
        return Reply(chat, status=201 if created else 200, headers={"Location": f"/v1/chats/{chat['id']}"})

    @route("GET", "/v1/chats", personal_data=True, response=ChatListSchema, auth="required", permission=CHAT,
           errors=(503,), tags=CHATS, summary="The chats one is a member of")
    def list_chats(self, request: GatewayRequest) -> dict:
        return self.rpc.messaging.chats()

    @route("GET", "/v1/chats/<uuid:chat_id>", personal_data=True, response=ChatSchema, auth="required",
           permission=CHAT, errors=(404, 503), tags=CHATS, summary="A chat one is a member of",
           description=_VISIBLE)
    def get_chat(self, request: GatewayRequest, chat_id) -> dict:
        return self.rpc.messaging.chat(str(chat_id))

    @route("POST", "/v1/chats/<uuid:chat_id>/messages", personal_data=True, body=ChatMessageCreateSchema,
           response=MessageSchema, status=201, repeat_status=200, auth="required", permission=CHAT,
           errors=(404, 503), tags=CHATS,
           summary="Post in a chat one is a member of",
           description="201 with the new message; 200 with the same message when client_message_id was sent "
                       "before. " + _VISIBLE)
    def send_chat_message(self, request: GatewayRequest, chat_id, body: dict) -> Reply:
        answer = self.rpc.messaging.send_chat_message(str(chat_id), message_data(body))
        return _sent(answer, "/v1/messages/{id}")

    @route("GET", "/v1/chats/<uuid:chat_id>/messages", personal_data=True, query=PageQuerySchema,
           response=MessagePageSchema, auth="required", permission=CHAT, errors=(404, 503), tags=CHATS,
           summary="A page of a chat's messages (as a conversation's)", description=_VISIBLE)
    def list_chat_messages(self, request: GatewayRequest, chat_id, query: dict) -> dict:
        return self.rpc.messaging.chat_messages(str(chat_id), query.get("before"), query.get("after"),
                                                query["limit"])

    @route("POST", "/v1/chats/<uuid:chat_id>/members", personal_data=True, body=ChatMemberSchema,
           response=ChatSchema, auth="required", permission=CHAT, errors=(404, 409, 503), tags=CHATS,
           summary="Add a member to a group chat (its creator, or messages.moderate)", description=_VISIBLE)
    def add_chat_member(self, request: GatewayRequest, chat_id, body: dict) -> dict:
        return self.rpc.messaging.add_chat_member(str(chat_id), body["user_id"])

    @route("DELETE", "/v1/chats/<uuid:chat_id>/members/<uuid:user_id>", personal_data=True, response=ChatSchema,
           auth="required", permission=CHAT, errors=(404, 409, 503), tags=CHATS,
           summary="Remove a member from a group chat (its creator, or messages.moderate; anyone may leave)",
           description="The removed member keeps no access: the chat is 404 to them from then on. " + _VISIBLE)
    def remove_chat_member(self, request: GatewayRequest, chat_id, user_id) -> dict:
        return self.rpc.messaging.remove_chat_member(str(chat_id), str(user_id))

    @route("POST", "/v1/chats/<uuid:chat_id>/read", personal_data=False, body=ReadUpToSchema, response=ReadCursorSchema,
           auth="required", permission=CHAT, errors=(404, 503), tags=CHATS,
           summary="Move one's read cursor in a chat up to a message (never back)", description=_VISIBLE)
    def mark_chat_read(self, request: GatewayRequest, chat_id, body: dict) -> dict:
        return self.rpc.messaging.mark_chat_read(str(chat_id), body["message_id"])

    # -- attachments ----------------------------------------------------------------------------------

    @route("POST", "/v1/attachments", personal_data=True, query=AttachmentUploadQuerySchema,
           body=RawBody(("application/octet-stream",), ATTACHMENT_MAX_BYTES), response=AttachmentSchema,
           status=201, auth="required", permission=WRITE, alternatives=(CHAT,), errors=(404, 503), tags=ATTACHMENTS,
           summary="Upload an attachment (≤ 10 MiB; its type is sniffed from the bytes) to a conversation or chat",
           description="The raw bytes as application/octet-stream. A conversation's needs conversations.write, a "
                       "chat's chats.use. Name it in a message's attachment_ids to attach it. " + _VISIBLE)
    def upload_attachment(self, request: GatewayRequest, query: dict, body: bytes) -> Reply:
        needed = WRITE if query.get("conversation_id") is not None else CHAT
        if not request.principal.can(needed):
            raise deny(self, request, needed)
        attachment = self.rpc.messaging.upload_attachment(upload_data(query, base64.b64encode(body).decode("ascii")))
        return Reply(attachment, headers={"Location": f"/v1/attachments/{attachment['id']}"})

    @route("GET", "/v1/attachments/<uuid:attachment_id>", personal_data=True,
           response=BinaryResponse(("application/octet-stream",), DOWNLOAD_DESCRIPTION), auth="required",
           permission=READ, alternatives=(CHAT,), errors=(404, 503), tags=ATTACHMENTS,
           summary="Download an attachment of a conversation or chat one may see", description=_VISIBLE)
    def get_attachment(self, request: GatewayRequest, attachment_id) -> Response:
        return download(self.rpc.messaging.attachment(str(attachment_id)))
