"""Messaging's events, each declared once: what its event log stores and what leaves the service.

Streams: ``team-<id>``, ``conversation-<id>``, ``message-<id>``, ``chat-<id>``, ``read-<container>-<user>``
(a read cursor) and ``erasure-<subject>`` (a data subject's erasure requests and purge).

Stored data may hold vault ciphertext (a message body, a conversation's subject, a chat's title) in a
``sealed`` mapping, so ``rebuild`` gives the read models back; a published view carries ids, states and
field *names* only (a sealed mapping is published as its sorted keys, or not at all): never a body, a
subject or a title. ``docs/events.md`` is generated from these declarations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from upgestao_kernel.events import DomainEvent


class MessagingEvent(DomainEvent, abstract=True, service="messaging"):
    """An event of messaging (published on ``messaging.events``)."""


# -- teams: stream ``team-<id>`` (team names are not personal data)


@dataclass(frozen=True)
class TeamCreated(MessagingEvent, subject="team_id", publishes=("team_id", "member_ids")):
    """A team was made (by someone with ``teams.manage``)."""

    name: str
    member_ids: list[str]


@dataclass(frozen=True)
class TeamUpdated(MessagingEvent, subject="team_id", publishes=("team_id", "member_ids", "changed")):
    """A team's name or members changed; ``changed`` names the fields."""

    name: str
    member_ids: list[str]
    changed: list[str]


# -- conversations: stream ``conversation-<id>``


@dataclass(frozen=True)
class ConversationOpened(MessagingEvent, subject="conversation_id",
                         publishes=("conversation_id", "customer_id", "channel", "team_id", "assignee_id")):
    """A conversation with a customer was opened; ``sealed`` holds the subject sealed under the customer."""

    customer_id: str
    channel: str
    team_id: str | None
    assignee_id: str | None
    priority: str
    labels: list[str]
    sealed: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class ConversationStatusChanged(MessagingEvent, subject="conversation_id",
                                publishes=("conversation_id", "customer_id", "status", "previous",
                                           "snoozed_until", "reason")):
    """The status moved (``reason``: ``requested``, ``incoming_message`` or ``snooze_expired``)."""

    customer_id: str
    status: str
    previous: str
    snoozed_until: str | None
    reason: str


@dataclass(frozen=True)
class ConversationAssigned(MessagingEvent, subject="conversation_id",
                           publishes=("conversation_id", "assignee_id", "previous_assignee_id", "team_id",
                                      "previous_team_id")):
    """The assignee or the team changed (``assignee_id`` None: unassigned)."""

    assignee_id: str | None
    previous_assignee_id: str | None
    team_id: str | None
    previous_team_id: str | None


@dataclass(frozen=True)
class ConversationUpdated(MessagingEvent, subject="conversation_id", publishes=("conversation_id", "changed")):
    """Priority or labels changed (labels are staff's tags, not the customer's words)."""

    changed: list[str]
    priority: str
    labels: list[str]


# -- messages: stream ``message-<id>``


@dataclass(frozen=True)
class MessageCreated(MessagingEvent, subject="message_id",
                     publishes=("message_id", "conversation_id", "chat_id", "customer_id", "author_id",
                                "direction", "private", "attachment_count")):
    """A message in a conversation or a chat; ``sealed`` holds the body sealed under ``key_subject_id``
    (the customer in a conversation, the author in a chat). Never published: the body."""

    conversation_id: str | None
    chat_id: str | None
    customer_id: str | None
    author_id: str
    direction: str
    private: bool
    key_subject_id: str
    attachment_ids: list[str]
    attachment_count: int
    client_message_id: str | None = None
    sealed: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class MessageEdited(MessagingEvent, subject="message_id",
                    publishes=("message_id", "conversation_id", "chat_id", "editor_id", "body_version")):
    """A new version of the body (sealed as the first was); every version stays in the log.
    (``body_version``, not ``version``: that name is the event type's own version.)"""

    conversation_id: str | None
    chat_id: str | None
    editor_id: str
    body_version: int
    key_subject_id: str
    sealed: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class MessageDeleted(MessagingEvent, subject="message_id",
                     publishes=("message_id", "conversation_id", "chat_id", "editor_id")):
    """The message is shown deleted; its versions stay readable in its history."""

    conversation_id: str | None
    chat_id: str | None
    editor_id: str


# -- read cursors: stream ``read-<container id>-<user id>``


@dataclass(frozen=True)
class ConversationRead(MessagingEvent, publishes=("conversation_id", "chat_id", "user_id", "message_id")):
    """A user read a conversation or chat up to ``message_id`` (a cursor only moves forward)."""

    conversation_id: str | None
    chat_id: str | None
    user_id: str
    message_id: str
    position: int


# -- staff chat: stream ``chat-<id>``


@dataclass(frozen=True)
class ChatCreated(MessagingEvent, subject="chat_id", publishes=("chat_id", "kind", "creator_id", "member_ids")):
    """A direct or group chat; ``sealed`` holds the title sealed under the creator."""

    kind: str
    creator_id: str
    member_ids: list[str]
    sealed: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatMemberAdded(MessagingEvent, subject="chat_id", publishes=("chat_id", "user_id", "by_id")):
    """A staff user joined a group chat (added by its creator or a moderator)."""

    user_id: str
    by_id: str


@dataclass(frozen=True)
class ChatMemberRemoved(MessagingEvent, subject="chat_id", publishes=("chat_id", "user_id", "by_id")):
    """A member left or was removed: from now on they see nothing of the chat."""

    user_id: str
    by_id: str


# -- data subjects: stream ``erasure-<subject id>``


@dataclass(frozen=True)
class SubjectErased(MessagingEvent, subject="subject_id",
                    publishes=("subject_id", "messages", "request_id", "mode", "shredded")):
    """Privacy's erasure request answered (the confirmation privacy waits for). ``mode``: ``deletion`` or
    ``anonymisation`` (both shred: ``messages`` bodies sealed under the subject are gone for good, and the read
    models drop them, the conversations' subjects and the chats' titles when they fold this event), or
    ``blocking`` (nothing changes in messaging: see ``service_layer/subjects.py``). ``shredded``: this event's
    request shredded the key; False for a repeated request (nothing erased twice) and for a block.
    ``messages``: how many bodies were sealed under the subject, once counted: None when this event shreds (the
    count is the purge's, ``subject_purged``: counting would make the answer wait on the person's number of
    messages) and in a repeat before the purge. ``request_id``: privacy's request (None: an erasure asked by RPC
    without one)."""

    messages: int | None
    request_id: str | None = None
    mode: str = "deletion"
    shredded: bool = True


@dataclass(frozen=True)
class SubjectPurged(MessagingEvent, subject="subject_id",
                    publishes=("subject_id", "messages", "search_entries", "attachments")):
    """After ``subject_erased`` (which shreds): the read models no longer hold the ciphertexts of the subject's
    ``messages`` (bodies and versions), their ``search_entries`` are deleted and their ``attachments``' sealed
    values dropped. Done by the sweep, in set-based statements, so that the erasure's answer does not wait on
    the person's number of messages (nothing of theirs was readable meanwhile: the key was shredded, and the
    search leaves out what it cannot open)."""

    messages: int
    search_entries: int
    attachments: int
