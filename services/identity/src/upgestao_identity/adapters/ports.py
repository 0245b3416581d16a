"""What identity's use cases ask of storage: the records they read and the repositories that keep them.

Two implementations: :mod:`.sql_repositories` (the service's tables, on the unit of work's
connection) and :mod:`.memory_repositories` (dicts in a :class:`~upgestao_kernel.fakes.MemoryStore`,
for unit tests). The read models (users, customers, roles, sessions, password resets) are written
only by projections of the events a unit of work records; their repositories only read. The
operational stores (credentials, photos, login failures) are written through their repositories.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from upgestao_kernel.unit_of_work import UnitOfWorkPort

Cursor = tuple[datetime, str]  # (created_at, id) of the last row of the previous page


@dataclass(frozen=True)
class UserRecord:
    """A row of the users read model: personal values are vault ciphertexts."""

    id: str
    role: str
    status: str  # active, deactivated; after a data subject's request anonymised or blocked
    email_index: str | None  # None once anonymised
    full_name: str | None
    email: str | None
    phone: str | None
    birth_date: str | None
    address: str | None
    job_title: str | None
    gender: str | None
    photo_id: str | None
    photo_content_type: str | None
    created_at: datetime
    updated_at: datetime
    version: int
    locale: str = "pt-BR"  # a preference, in clear


@dataclass(frozen=True)
class CustomerRecord:
    id: str
    email_index: str | None
    phone_index: str | None
    full_name: str | None
    email: str | None
    phone: str | None
    birth_date: str | None
    address: str | None
    gender: str | None
    created_at: datetime
    updated_at: datetime
    version: int
    status: str = "active"  # or anonymised, blocked (an erased customer has no row)


@dataclass(frozen=True)
class RoleRecord:
    name: str
    permissions: list[str]
    self_editable_fields: list[str]
    updated_at: datetime
    version: int


@dataclass(frozen=True)
class SessionRecord:
    id: str
    user_id: str
    status: str
    created_at: datetime
    last_refreshed_at: datetime | None
    expires_at: datetime
    revoked_at: datetime | None
    revoked_reason: str | None


@dataclass(frozen=True)
class ApiKeyRecord:
    """A row of the API keys read model (issue 15): the key's SHA-256, never the key."""

    id: str
    name: str
    scopes: list[str]
    status: str  # active, revoked
    secret_hash: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    version: int


@dataclass(frozen=True)
class PasswordResetRecord:
    token_hash: str
    user_id: str
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True)
class LoginCandidate:
    """The user an e-mail names, with the hash to check the password against."""

    id: str
    role: str
    status: str
    password_hash: str
    email: str | None = None  # sealed: the address a new-login alert goes to


class UserRepository(Protocol):
    def get(self, user_id: str) -> UserRecord | None: ...

    def by_email_index(self, email_index: str) -> UserRecord | None: ...

    def email_taken(self, email_index: str, except_id: str | None = None) -> bool: ...

    def page(self, limit: int, after: Cursor | None) -> list[UserRecord]:
        """Up to ``limit`` users in ``(created_at, id)`` order, after ``after``."""

    def active_admin_exists(self) -> bool: ...

    def ids_page(self, limit: int, after: Cursor | None) -> list[tuple[datetime, str]]:
        """``(created_at, id)`` of up to ``limit`` active users after ``after`` (a breach's "every user")."""

    def active_ids_with_roles(self, roles: Iterable[str]) -> list[str]:
        """The ids of the active users whose role is one of ``roles``, in ``(created_at, id)`` order."""


class CustomerRepository(Protocol):
    def get(self, customer_id: str) -> CustomerRecord | None: ...

    def id_with(self, index: str, value: str, except_id: str | None = None) -> str | None:
        """The customer whose ``index`` (``email_index`` or ``phone_index``) is ``value``."""

    def page(self, limit: int, after: Cursor | None, *, email_index: str | None = None,
             phone_index: str | None = None) -> list[CustomerRecord]:
        """Up to ``limit`` customers after ``after``, the blocked ones left out (nobody may read them)."""

    def ids_page(self, limit: int, after: Cursor | None) -> list[tuple[datetime, str]]:
        """``(created_at, id)`` of up to ``limit`` active customers after ``after``."""

    def get_many(self, customer_ids: Iterable[str]) -> dict[str, CustomerRecord]:
        """The customers among ``customer_ids`` (one query), by id; an unknown id is absent."""


class RoleRepository(Protocol):
    def get(self, name: str) -> RoleRecord | None: ...

    def cached(self, name: str | None) -> RoleRecord | None:
        """For authorising: may be a little old (see ``sql_repositories.ROLE_CACHE_S``)."""

    def forget_cached(self) -> None: ...

    def all(self) -> list[RoleRecord]:
        """Every role, by name."""


class SessionRepository(Protocol):
    def active_ids_of(self, user_id: str) -> list[str]: ...

    def usable_of(self, user_id: str, now: datetime) -> list[SessionRecord]:
        """Active and not expired, newest first."""

    def owner_of(self, session_id: str) -> str | None: ...

    def of_user(self, user_id: str) -> list[SessionRecord]:
        """Every session of ``user_id``, usable or not, oldest first (a data subject's export)."""


class ApiKeyRepository(Protocol):
    def get(self, key_id: str) -> ApiKeyRecord | None: ...

    def page(self, limit: int, after: Cursor | None) -> list[ApiKeyRecord]:
        """Up to ``limit`` keys (active or revoked) in ``(created_at, id)`` order, after ``after``."""

    def usable(self, now: datetime) -> list[ApiKeyRecord]:
        """Every active key not expired at ``now`` (their roles are in the role-permissions document)."""

    def last_used(self, key_ids: list[str]) -> dict[str, datetime]:
        """When each of ``key_ids`` was last used (absent: never)."""

    def touch(self, key_id: str, at: datetime, min_interval_s: float) -> bool:
        """Record a use of ``key_id`` at ``at`` unless one was recorded less than ``min_interval_s`` before,
        in one statement; whether it was recorded."""


class PasswordResetRepository(Protocol):
    def get(self, token_hash: str) -> PasswordResetRecord | None: ...


class CredentialRepository(Protocol):
    def add(self, user_id: str, password_hash: str, at: datetime) -> None: ...

    def hash_of(self, user_id: str) -> str | None: ...

    def set(self, user_id: str, password_hash: str, at: datetime) -> None: ...

    def replace(self, user_id: str, old_hash: str, new_hash: str, at: datetime) -> None:
        """Only if the stored hash is still ``old_hash`` (a password changed meanwhile stays changed)."""

    def login_candidate(self, email_index: str) -> LoginCandidate | None: ...

    def delete(self, user_id: str) -> None: ...


class PhotoRepository(Protocol):
    def add(self, photo_id: str, subject_id: str, content: str, at: datetime) -> None: ...

    def delete_others(self, subject_id: str, keep: str) -> None: ...

    def content(self, photo_id: str) -> str | None: ...

    def delete_of(self, subject_id: str) -> None: ...


class LoginBudgetRepository(Protocol):
    """The attempt budgets of ``domain/throttle.py``: one row per key, changed only atomically."""

    def charge(self, key: str, now: datetime, quiet_since: datetime) -> int | None:
        """Count one attempt of ``key`` unless it is blocked at ``now``, in one statement (two requests
        at once are counted one after the other, never both against the same old count): the key's
        attempts in its window including this one, or None when it is blocked. A key whose last
        attempt is at or before ``quiet_since`` starts a new window."""

    def block(self, key: str, until: datetime) -> None:
        """No attempt of ``key`` is counted (nor let through) before ``until``."""

    def blocked_until(self, key: str) -> datetime | None: ...

    def refund(self, key: str) -> None:
        """Give ``key`` its last attempt back (a successful login does not use up its address's budget)."""

    def clear(self, key: str) -> None: ...

    def forget_idle(self, idle_since: datetime, now: datetime) -> None:
        """Drop the keys whose last attempt is at or before ``idle_since`` and that are not blocked."""


@dataclass(frozen=True)
class NoticeRecord:
    """Something the notifier must send to a user (``kind``), with its sealed values by name."""

    id: str
    kind: str
    user_id: str
    sealed: dict[str, str]
    created_at: datetime
    expires_at: datetime
    fetched_at: datetime | None


class NoticeRepository(Protocol):
    def add(self, notice: NoticeRecord) -> None: ...

    def get(self, notice_id: str) -> NoticeRecord | None: ...

    def mark_fetched(self, notice_id: str, at: datetime) -> None: ...

    def forget_expired(self, now: datetime) -> None: ...

    def drop_of(self, user_id: str, kind: str) -> None:
        """Forget every notice of ``kind`` for ``user_id`` (a spent reset token is nothing to send)."""

    def drop_all_of(self, user_id: str) -> None:
        """Forget every notice of ``user_id`` (an erasure)."""


class KnownNetworkRepository(Protocol):
    """The networks each user logged in from, by blind index (``known_networks``)."""

    def seen(self, user_id: str, network_index: str, now: datetime) -> datetime | None:
        """Record a login of ``user_id`` from the network ``network_index`` at ``now``, in one statement
        (two logins at once are recorded one after the other), and return when the user last logged in
        from there before (None: never)."""

    def forget_before(self, user_id: str, before: datetime) -> None:
        """Forget the networks ``user_id`` last logged in from before ``before``."""

    def forget_all(self, user_id: str) -> None: ...


class EventLog(Protocol):
    """The one rewrite of identity's event log: an erasure blanks a subject's blind indexes in its stream."""

    def rewrite(self, stream_id: str, change: Callable[[str, Mapping[str, Any]], dict[str, Any] | None]) -> int:
        """Store ``change(type, data)`` as the data of each event of ``stream_id`` for which it is not None;
        returns how many events were rewritten."""


class IdentityUnitOfWork(UnitOfWorkPort, Protocol):
    """The unit of work identity's use cases get: the kernel's port plus identity's repositories."""

    users: UserRepository
    customers: CustomerRepository
    roles: RoleRepository
    sessions: SessionRepository
    api_keys: ApiKeyRepository
    password_resets: PasswordResetRepository
    credentials: CredentialRepository
    photos: PhotoRepository
    login_budgets: LoginBudgetRepository
    notices: NoticeRepository
    known_networks: KnownNetworkRepository
    event_log: EventLog
