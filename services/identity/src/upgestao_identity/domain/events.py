"""Identity's events, each declared once: what the event log stores and what leaves the service.

The type strings (``identity.user_registered.v1``) derive from these classes; they and their
payloads are what the event store already holds, so nothing here may change what an existing
type stores or publishes (a new shape is a new version). Stored events keep sealed personal
values (vault ciphertext, by field name); published views carry ids and field names only.
``docs/events.md`` is generated from these declarations (``python scripts/event_catalogue.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from upgestao_kernel.events import DomainEvent


class IdentityEvent(DomainEvent, abstract=True, service="identity"):
    """An event of the identity service (published on ``identity.events``)."""


# -- staff users: stream ``user-<id>``


@dataclass(frozen=True)
class UserRegistered(IdentityEvent, subject="user_id", publishes=("user_id", "role", "fields")):
    """A staff user was created: an admin's ``create_user``, or the environment's first admin."""

    role: str
    fields: Mapping[str, str | None]  # sealed values by field name
    email_index: str  # the blind index of the e-mail


@dataclass(frozen=True)
class UserProfileChanged(IdentityEvent, subject="user_id", publishes=("user_id", "fields")):
    """Profile fields of a user changed (a ``None`` value cleared one)."""

    fields: Mapping[str, str | None]
    email_index: str | None = None  # set when the e-mail changed


@dataclass(frozen=True)
class UserRoleChanged(IdentityEvent, subject="user_id", publishes=("user_id", "role", "previous_role")):
    """A user was given another role (their sessions are revoked with it)."""

    role: str
    previous_role: str | None


@dataclass(frozen=True)
class UserPhotoChanged(IdentityEvent, subject="user_id", publishes=("user_id", "fields")):
    """A user's profile photo was replaced (the sanitised image is in the photo store)."""

    photo_id: str
    content_type: str
    size: int

    @property
    def fields(self) -> list[str]:
        """The changed field: always ``["photo"]``."""
        return ["photo"]


@dataclass(frozen=True)
class UserDeactivated(IdentityEvent, subject="user_id", publishes=("user_id",)):
    """A user can no longer log in; their sessions are revoked."""


@dataclass(frozen=True)
class UserPasswordChanged(IdentityEvent, subject="user_id", publishes=("user_id", "how")):
    """A user's password changed: ``how`` is ``changed`` (by them) or ``reset``. The hash is never in an event."""

    how: str


@dataclass(frozen=True)
class PasswordResetRequested(IdentityEvent, subject="user_id", publishes=("user_id", "expires_at")):
    """A password reset was asked for. Ids only: the token never travels on the broker. The notifier
    fetches what to send with `identity.notice(<this event's id>)` (an RPC only the notifier's broker
    user may call; the token is kept sealed under the user's data key until it expires or is spent)."""

    token_hash: str
    expires_at: str  # ISO 8601


@dataclass(frozen=True)
class UserEmailChanged(IdentityEvent, subject="user_id", publishes=("user_id",)):
    """A user's e-mail changed: the OLD address is to be told. Ids only; the notifier fetches the old
    address with `identity.notice(<this event's id>)` (kept sealed by identity for 7 days)."""


@dataclass(frozen=True)
class UserLocaleChanged(IdentityEvent, subject="user_id", publishes=("user_id", "locale")):
    """A user chose the language identity's messages to them are written in (``pt-BR`` or ``en``). A
    preference, not personal data: stored and published in clear."""

    locale: str


@dataclass(frozen=True)
class NewLoginDetected(IdentityEvent, subject="user_id", publishes=("user_id", "session_id")):
    """A user logged in from a network not seen for them lately (or their first login): the user is to
    be told. Ids only; the notifier fetches the address and the network with
    `identity.notice(<this event's id>)` (kept sealed by identity for 7 days)."""

    session_id: str


@dataclass(frozen=True)
class PasswordResetCompleted(IdentityEvent, subject="user_id", publishes=("user_id",)):
    """A reset token was spent on a new password."""

    token_hash: str


@dataclass(frozen=True)
class UserErased(IdentityEvent, subject="user_id", publishes=("user_id", "mode")):
    """A data subject's request (LGPD art. 18) ended a user's account: ``mode`` is ``deletion`` (the row goes),
    ``anonymisation`` (a row without any personal value stays) or ``blocking`` (the sealed values stay,
    refused to every reader but privacy's export). Their sessions are revoked with it."""

    mode: str
    previous_status: str | None = None  # what a blocking may restore (``UserUnblocked``)


@dataclass(frozen=True)
class UserUnblocked(IdentityEvent, subject="user_id", publishes=("user_id", "status")):
    """The DPO lifted a user's blocking: their data may be processed again, with the status they had before
    (``active`` or ``deactivated``); their old sessions stay revoked."""

    status: str


# -- customers: stream ``customer-<id>``


@dataclass(frozen=True)
class CustomerRegistered(IdentityEvent, subject="customer_id", publishes=("customer_id", "fields")):
    """Staff created a customer."""

    fields: Mapping[str, str | None]  # sealed values by field name
    email_index: str | None
    phone_index: str | None


@dataclass(frozen=True)
class CustomerChanged(IdentityEvent, subject="customer_id", publishes=("customer_id", "fields")):
    """Staff changed a customer's fields (a ``None`` value cleared one)."""

    fields: Mapping[str, str | None]
    indexes: Mapping[str, str | None]  # the new blind indexes of the changed keys


@dataclass(frozen=True)
class CustomerErased(IdentityEvent, subject="customer_id", publishes=("customer_id", "mode")):
    """A data subject's request erased (``deletion``, ``anonymisation``) or blocked (``blocking``) a customer."""

    mode: str


@dataclass(frozen=True)
class CustomerUnblocked(IdentityEvent, subject="customer_id", publishes=("customer_id",)):
    """The DPO lifted a customer's blocking."""


# -- data subjects' erasures: stream ``erasure-<subject id>``


@dataclass(frozen=True)
class SubjectErased(IdentityEvent, subject="subject_id", publishes=("request_id", "subject_id", "mode")):
    """Identity did what privacy's erasure request asked (``privacy.erasure_requested.v1``, or the
    ``erase_subject`` RPC): the confirmation privacy waits for. ``kind`` is ``user``, ``customer`` or None (a
    subject identity never held). A request repeated is confirmed again; nothing is erased twice."""

    request_id: str | None
    mode: str
    kind: str | None


@dataclass(frozen=True)
class SubjectUnblocked(IdentityEvent, subject="subject_id", publishes=("request_id", "subject_id")):
    """The DPO lifted a blocking (``unblock_subject``): the subject's data is processed again. ``request_id``:
    privacy's reference of the decision, if any (its reasons stay with privacy)."""

    request_id: str | None


# -- roles: stream ``role-<name>``


@dataclass(frozen=True)
class RoleDefined(IdentityEvent, publishes=True):
    """A built-in role was defined with its default permissions (at the first start)."""

    permissions: list[str]
    self_editable_fields: list[str]


@dataclass(frozen=True)
class RolePermissionsChanged(IdentityEvent, subject="role", publishes=("role",)):
    """An admin changed what a role may do: every gateway refetches that role's permissions."""

    permissions: list[str]
    self_editable_fields: list[str]
    previous_permissions: list[str]


# -- sessions: stream ``session-<id>``


@dataclass(frozen=True)
class SessionStarted(IdentityEvent, subject="session_id", publishes=("session_id", "user_id")):
    """A user logged in: a session with its first refresh token (only the token's hash is kept)."""

    user_id: str
    refresh_hash: str
    expires_at: str  # ISO 8601


@dataclass(frozen=True)
class SessionRefreshed(IdentityEvent, publishes=False):
    """A refresh token was spent for the next one (rotation)."""

    spent_hash: str
    refresh_hash: str


@dataclass(frozen=True)
class SessionRevoked(IdentityEvent, subject="session_id", publishes=("session_id", "user_id", "reason")):
    """A session ended before its expiry (``reason``: one of ``sessions.REASONS``): every gateway refuses its
    access tokens from then on."""

    user_id: str | None
    reason: str


# -- API keys (issue 15): stream ``api_key-<id>``; a revocation also records ``SessionRevoked`` (session id =
# the key id) in the key's stream, so that every gateway refuses the key's tokens at once


@dataclass(frozen=True)
class ApiKeyCreated(IdentityEvent, subject="key_id", publishes=("key_id", "scopes", "expires_at", "created_by")):
    """An admin issued a key for an integrated tool (only the SHA-256 of the key is kept; the tool's name
    is not published)."""

    name: str
    scopes: list[str]
    expires_at: str | None  # ISO 8601; None: the key does not expire
    created_by: str
    secret_hash: str


@dataclass(frozen=True)
class ApiKeyRevoked(IdentityEvent, subject="key_id", publishes=("key_id", "revoked_by")):
    """A key was revoked: from then on nothing it presents is accepted."""

    revoked_by: str | None


# -- start-up: stream ``bootstrap-admin``


@dataclass(frozen=True)
class AdminBootstrapped(IdentityEvent, publishes=False):
    """A process claimed the creation of the environment's first admin (serialises racing processes)."""
