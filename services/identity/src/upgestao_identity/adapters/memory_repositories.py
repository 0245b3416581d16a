"""Identity's repositories and read models in memory, for unit tests of every use case.

Rows are dicts with the columns of :mod:`.tables`, kept in the unit of work's
:class:`~upgestao_kernel.fakes.MemoryTransaction` (so they commit and roll back with it). The
read models are folded from the recorded events by :func:`memory_projections`, which do what
:mod:`.projections` does in SQL; ``tests/unit/test_identity_memory_parity.py`` replays the same
events through both and compares every row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from upgestao_kernel.context import RequestContext
from upgestao_kernel.events import EventEnvelope
from upgestao_kernel.fakes import FakeUnitOfWork, FakeVault, MemoryRepository, MemoryStore, MemoryTransaction

from ..domain.subjects import DELETION, SHREDDING, STATUS_OF
from .ports import (
    ApiKeyRecord,
    Cursor,
    CustomerRecord,
    LoginCandidate,
    NoticeRecord,
    PasswordResetRecord,
    RoleRecord,
    SessionRecord,
    UserRecord,
)

SERVICE = "identity"


def _keyset(rows: list[dict], limit: int, after: Cursor | None) -> list[dict]:
    rows = sorted(rows, key=lambda r: (r["created_at"], r["id"]))
    if after is not None:
        rows = [r for r in rows if (r["created_at"], r["id"]) > after]
    return rows[:limit]


class MemoryUsers(MemoryRepository):
    def get(self, user_id: str) -> UserRecord | None:
        row = self.tx.get("users", user_id)
        return UserRecord(**row) if row else None

    def by_email_index(self, email_index: str) -> UserRecord | None:
        return next((UserRecord(**r) for r in self.tx.table("users").values() if r["email_index"] == email_index),
                    None)

    def email_taken(self, email_index: str, except_id: str | None = None) -> bool:
        return any(r["email_index"] == email_index and r["id"] != except_id for r in self.tx.table("users").values())

    def page(self, limit: int, after: Cursor | None) -> list[UserRecord]:
        listed = [r for r in self.tx.table("users").values() if r["status"] in ("active", "deactivated")]
        return [UserRecord(**r) for r in _keyset(listed, limit, after)]

    def ids_page(self, limit: int, after: Cursor | None) -> list[tuple[datetime, str]]:
        active = [r for r in self.tx.table("users").values() if r["status"] == "active"]
        return [(r["created_at"], r["id"]) for r in _keyset(active, limit, after)]

    def active_admin_exists(self) -> bool:
        return any(r["role"] == "admin" and r["status"] == "active" for r in self.tx.table("users").values())

    def active_ids_with_roles(self, roles: Iterable[str]) -> list[str]:
        wanted = set(roles)
        rows = sorted((r for r in self.tx.table("users").values() if r["status"] == "active" and r["role"] in wanted),
                      key=lambda r: (r["created_at"], r["id"]))
        return [r["id"] for r in rows]


class MemoryCustomers(MemoryRepository):
    def get(self, customer_id: str) -> CustomerRecord | None:
        row = self.tx.get("customers", customer_id)
        return CustomerRecord(**row) if row else None

    def id_with(self, index: str, value: str, except_id: str | None = None) -> str | None:
        return next((r["id"] for r in self.tx.table("customers").values()
                     if r[index] == value and r["id"] != except_id), None)

    def page(self, limit: int, after: Cursor | None, *, email_index: str | None = None,
             phone_index: str | None = None) -> list[CustomerRecord]:
        rows = [r for r in self.tx.table("customers").values() if r["status"] == "active"
                and (email_index is None or r["email_index"] == email_index)
                and (phone_index is None or r["phone_index"] == phone_index)]
        return [CustomerRecord(**r) for r in _keyset(rows, limit, after)]

    def ids_page(self, limit: int, after: Cursor | None) -> list[tuple[datetime, str]]:
        active = [r for r in self.tx.table("customers").values() if r["status"] == "active"]
        return [(r["created_at"], r["id"]) for r in _keyset(active, limit, after)]

    def get_many(self, customer_ids: Iterable[str]) -> dict[str, CustomerRecord]:
        found = {}
        for customer_id in customer_ids:
            row = self.tx.get("customers", customer_id)
            if row:
                found[customer_id] = CustomerRecord(**row)
        return found


class MemoryRoles(MemoryRepository):
    def get(self, name: str) -> RoleRecord | None:
        row = self.tx.get("roles", name)
        return RoleRecord(**row) if row else None

    def cached(self, name: str | None) -> RoleRecord | None:
        return self.get(name) if name else None

    def forget_cached(self) -> None:
        pass  # nothing cached in memory

    def all(self) -> list[RoleRecord]:
        return [RoleRecord(**r) for _, r in sorted(self.tx.table("roles").items())]


class MemorySessions(MemoryRepository):
    def active_ids_of(self, user_id: str) -> list[str]:
        return [r["id"] for r in self.tx.table("sessions").values()
                if r["user_id"] == user_id and r["status"] == "active"]

    def usable_of(self, user_id: str, now: datetime) -> list[SessionRecord]:
        rows = [r for r in self.tx.table("sessions").values()
                if r["user_id"] == user_id and r["status"] == "active" and r["expires_at"] > now]
        return [SessionRecord(**r) for r in sorted(rows, key=lambda r: r["created_at"], reverse=True)]

    def owner_of(self, session_id: str) -> str | None:
        row = self.tx.get("sessions", session_id)
        return row["user_id"] if row else None

    def of_user(self, user_id: str) -> list[SessionRecord]:
        rows = [r for r in self.tx.table("sessions").values() if r["user_id"] == user_id]
        return [SessionRecord(**r) for r in sorted(rows, key=lambda r: (r["created_at"], r["id"]))]


class MemoryApiKeys(MemoryRepository):
    def get(self, key_id: str) -> ApiKeyRecord | None:
        row = self.tx.get("api_keys", key_id)
        return ApiKeyRecord(**row) if row else None

    def page(self, limit: int, after: Cursor | None) -> list[ApiKeyRecord]:
        return [ApiKeyRecord(**r) for r in _keyset(list(self.tx.table("api_keys").values()), limit, after)]

    def usable(self, now: datetime) -> list[ApiKeyRecord]:
        rows = [r for r in self.tx.table("api_keys").values()
                if r["status"] == "active" and (r["expires_at"] is None or r["expires_at"] > now)]
        return [ApiKeyRecord(**r) for r in sorted(rows, key=lambda r: r["id"])]

    def last_used(self, key_ids: list[str]) -> dict[str, datetime]:
        usage = self.tx.table("api_key_usage")
        return {k: usage[k]["last_used_at"] for k in key_ids if k in usage}

    def touch(self, key_id: str, at: datetime, min_interval_s: float) -> bool:
        row = self.tx.get("api_key_usage", key_id)
        if row is not None and row["last_used_at"] > at - timedelta(seconds=min_interval_s):
            return False
        self.tx.put("api_key_usage", key_id, {"key_id": key_id, "last_used_at": at})
        return True


class MemoryPasswordResets(MemoryRepository):
    def get(self, token_hash: str) -> PasswordResetRecord | None:
        row = self.tx.get("password_resets", token_hash)
        return PasswordResetRecord(**row) if row else None


class MemoryCredentials(MemoryRepository):
    def add(self, user_id: str, password_hash: str, at: datetime) -> None:
        if self.tx.get("credentials", user_id) is not None:
            raise KeyError(f"credentials of {user_id} exist already")  # the primary key the table has
        self.tx.put("credentials", user_id, {"user_id": user_id, "password_hash": password_hash, "updated_at": at})

    def hash_of(self, user_id: str) -> str | None:
        row = self.tx.get("credentials", user_id)
        return row["password_hash"] if row else None

    def set(self, user_id: str, password_hash: str, at: datetime) -> None:
        self.tx.update("credentials", user_id, password_hash=password_hash, updated_at=at)

    def replace(self, user_id: str, old_hash: str, new_hash: str, at: datetime) -> None:
        if self.hash_of(user_id) == old_hash:
            self.set(user_id, new_hash, at)

    def login_candidate(self, email_index: str) -> LoginCandidate | None:
        user = MemoryUsers(self._uow).by_email_index(email_index)
        password_hash = self.hash_of(user.id) if user else None
        if user is None or password_hash is None:
            return None
        return LoginCandidate(id=user.id, role=user.role, status=user.status, password_hash=password_hash,
                              email=user.email)

    def delete(self, user_id: str) -> None:
        if self.tx.get("credentials", user_id) is not None:
            self.tx.delete("credentials", user_id)


class MemoryPhotos(MemoryRepository):
    def add(self, photo_id: str, subject_id: str, content: str, at: datetime) -> None:
        self.tx.put("photos", photo_id, {"id": photo_id, "subject_id": subject_id, "content": content,
                                         "created_at": at})

    def delete_others(self, subject_id: str, keep: str) -> None:
        for photo_id, row in self.tx.table("photos").items():
            if row["subject_id"] == subject_id and photo_id != keep:
                self.tx.delete("photos", photo_id)

    def content(self, photo_id: str) -> str | None:
        row = self.tx.get("photos", photo_id)
        return row["content"] if row else None

    def delete_of(self, subject_id: str) -> None:
        for photo_id, row in self.tx.table("photos").items():
            if row["subject_id"] == subject_id:
                self.tx.delete("photos", photo_id)


class MemoryLoginBudgets(MemoryRepository):
    """The SQL budgets' semantics on the transaction's rows (a fake unit of work is never concurrent)."""

    def charge(self, key: str, now: datetime, quiet_since: datetime) -> int | None:
        row = self.tx.get("login_budgets", key)
        if row is not None and row["blocked_until"] > now:
            return None
        attempts = 1 if row is None or row["last_at"] <= quiet_since else row["attempts"] + 1
        blocked = row["blocked_until"] if row is not None else now
        self.tx.put("login_budgets", key, {"key": key, "attempts": attempts, "last_at": now, "blocked_until": blocked})
        return attempts

    def block(self, key: str, until: datetime) -> None:
        self.tx.update("login_budgets", key, blocked_until=until)

    def blocked_until(self, key: str) -> datetime | None:
        row = self.tx.get("login_budgets", key)
        return row["blocked_until"] if row else None

    def refund(self, key: str) -> None:
        row = self.tx.get("login_budgets", key)
        if row is not None and row["attempts"] > 0:
            self.tx.update("login_budgets", key, attempts=row["attempts"] - 1)

    def clear(self, key: str) -> None:
        if self.tx.get("login_budgets", key) is not None:
            self.tx.delete("login_budgets", key)

    def forget_idle(self, idle_since: datetime, now: datetime) -> None:
        for key, row in list(self.tx.table("login_budgets").items()):
            if row["last_at"] <= idle_since and row["blocked_until"] <= now:
                self.tx.delete("login_budgets", key)


class MemoryNotices(MemoryRepository):
    def add(self, notice: NoticeRecord) -> None:
        self.tx.put("notices", notice.id, dict(notice.__dict__))

    def get(self, notice_id: str) -> NoticeRecord | None:
        row = self.tx.get("notices", notice_id)
        return NoticeRecord(**row) if row else None

    def mark_fetched(self, notice_id: str, at: datetime) -> None:
        self.tx.update("notices", notice_id, fetched_at=at)

    def forget_expired(self, now: datetime) -> None:
        for notice_id, row in list(self.tx.table("notices").items()):
            if row["expires_at"] <= now:
                self.tx.delete("notices", notice_id)

    def drop_of(self, user_id: str, kind: str) -> None:
        for notice_id, row in list(self.tx.table("notices").items()):
            if row["user_id"] == user_id and row["kind"] == kind:
                self.tx.delete("notices", notice_id)

    def drop_all_of(self, user_id: str) -> None:
        for notice_id, row in list(self.tx.table("notices").items()):
            if row["user_id"] == user_id:
                self.tx.delete("notices", notice_id)


class MemoryKnownNetworks(MemoryRepository):
    def seen(self, user_id: str, network_index: str, now: datetime) -> datetime | None:
        key = f"{user_id}:{network_index}"
        row = self.tx.get("known_networks", key)
        if row is None:
            self.tx.put("known_networks", key, {"user_id": user_id, "network_index": network_index,
                                                "first_seen": now, "last_seen": now, "previous_seen": None})
            return None
        self.tx.update("known_networks", key, previous_seen=row["last_seen"], last_seen=now)
        return row["last_seen"]

    def forget_before(self, user_id: str, before: datetime) -> None:
        for key, row in list(self.tx.table("known_networks").items()):
            if row["user_id"] == user_id and row["last_seen"] < before:
                self.tx.delete("known_networks", key)

    def forget_all(self, user_id: str) -> None:
        for key, row in list(self.tx.table("known_networks").items()):
            if row["user_id"] == user_id:
                self.tx.delete("known_networks", key)


class MemoryEventLog(MemoryRepository):
    """The rewrite on the store's events at once (the fake's event log is a list; its tests commit)."""

    def rewrite(self, stream_id: str, change: Callable[[str, Mapping[str, Any]], dict[str, Any] | None]) -> int:
        rewritten = 0
        for events in (self.tx.store.events, self.tx.events):
            for i, event in enumerate(events):
                data = change(event.type, event.data) if event.stream_id == stream_id else None
                if data is not None:
                    events[i] = replace(event, data=data)
                    rewritten += 1
        return rewritten


class MemoryRepositories:
    """Identity's repositories on a fake unit of work (the factory given to ``with_repositories``)."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow
        self.users = MemoryUsers(uow)
        self.customers = MemoryCustomers(uow)
        self.roles = MemoryRoles(uow)
        self.sessions = MemorySessions(uow)
        self.api_keys = MemoryApiKeys(uow)
        self.password_resets = MemoryPasswordResets(uow)
        self.credentials = MemoryCredentials(uow)
        self.photos = MemoryPhotos(uow)
        self.login_budgets = MemoryLoginBudgets(uow)
        self.notices = MemoryNotices(uow)
        self.known_networks = MemoryKnownNetworks(uow)
        self.event_log = MemoryEventLog(uow)


# -- read models ----------------------------------------------------------------------


def _id(event: EventEnvelope, prefix: str) -> str:
    return event.stream_id.removeprefix(prefix + "-")


_USER_COLUMNS = ("full_name", "email", "phone", "birth_date", "address", "job_title", "gender")
_CUSTOMER_COLUMNS = ("full_name", "email", "phone", "birth_date", "address", "gender")


class MemoryUsersProjection:
    def apply(self, tx: MemoryTransaction, event: EventEnvelope) -> None:
        t, d, at = event.type, event.data, event.occurred_at
        if not t.startswith("identity.") or not event.stream_id.startswith("user-"):
            return
        user_id = _id(event, "user")
        if t == "identity.user_registered.v1":
            tx.put("users", user_id, {
                "id": user_id, "role": d["role"], "status": "active", "email_index": d["email_index"],
                **dict.fromkeys(_USER_COLUMNS), "photo_id": None, "photo_content_type": None,
                "created_at": at, "updated_at": at, "version": event.version, "locale": "pt-BR", **d["fields"],
            })
            return
        if t == "identity.user_erased.v1":
            _erase_user(tx, user_id, d["mode"], at, event.version)
            return
        values: dict = {"updated_at": at, "version": event.version}
        if t == "identity.user_profile_changed.v1":
            values.update(d["fields"])
            if d.get("email_index"):
                values["email_index"] = d["email_index"]
        elif t == "identity.user_role_changed.v1":
            values["role"] = d["role"]
        elif t == "identity.user_unblocked.v1":
            values["status"] = d["status"]
        elif t == "identity.user_locale_changed.v1":
            values["locale"] = d["locale"]
        elif t == "identity.user_photo_changed.v1":
            values.update(photo_id=d["photo_id"], photo_content_type=d["content_type"])
        elif t == "identity.user_deactivated.v1":
            values["status"] = "deactivated"
        elif t == "identity.password_reset_requested.v1":
            tx.put("password_resets", d["token_hash"], {
                "token_hash": d["token_hash"], "user_id": user_id,
                "expires_at": datetime.fromisoformat(d["expires_at"]), "used_at": None,
            })
        elif t == "identity.password_reset_completed.v1":
            tx.update("password_resets", d["token_hash"], used_at=at)
        elif t == "identity.user_password_changed.v1":  # a new password spends every reset still outstanding
            for token_hash, reset in tx.table("password_resets").items():
                if reset["user_id"] == user_id and reset["used_at"] is None:
                    tx.update("password_resets", token_hash, used_at=at)
        tx.update("users", user_id, **values)


def _erase_user(tx: MemoryTransaction, user_id: str, mode: str, at, version: int) -> None:
    if mode in SHREDDING:
        for token_hash, reset in tx.table("password_resets").items():
            if reset["user_id"] == user_id:
                tx.delete("password_resets", token_hash)
        for session_id, session in tx.table("sessions").items():
            if session["user_id"] == user_id:
                tx.delete("sessions", session_id)
    if mode == DELETION:
        tx.delete("users", user_id)
        return
    values: dict = {"status": STATUS_OF[mode], "updated_at": at, "version": version}
    if mode in SHREDDING:
        values.update(dict.fromkeys(_USER_COLUMNS), email_index=None, photo_id=None, photo_content_type=None)
    tx.update("users", user_id, **values)


class MemoryCustomersProjection:
    def apply(self, tx: MemoryTransaction, event: EventEnvelope) -> None:
        t, d, at = event.type, event.data, event.occurred_at
        if t == "identity.customer_registered.v1":
            customer_id = _id(event, "customer")
            tx.put("customers", customer_id, {
                "id": customer_id, "email_index": d["email_index"], "phone_index": d["phone_index"],
                **dict.fromkeys(_CUSTOMER_COLUMNS), "created_at": at, "updated_at": at, "version": event.version,
                "status": "active", **d["fields"],
            })
        elif t == "identity.customer_changed.v1":
            tx.update("customers", _id(event, "customer"), updated_at=at, version=event.version, **d["fields"],
                      **d["indexes"])
        elif t == "identity.customer_unblocked.v1":
            tx.update("customers", _id(event, "customer"), updated_at=at, version=event.version, status="active")
        elif t == "identity.customer_erased.v1":
            customer_id, mode = _id(event, "customer"), d["mode"]
            if mode == DELETION:
                tx.delete("customers", customer_id)
                return
            values: dict = {"status": STATUS_OF[mode], "updated_at": at, "version": event.version}
            if mode in SHREDDING:
                values.update(dict.fromkeys(_CUSTOMER_COLUMNS), email_index=None, phone_index=None)
            tx.update("customers", customer_id, **values)


class MemoryRolesProjection:
    def apply(self, tx: MemoryTransaction, event: EventEnvelope) -> None:
        t, d = event.type, event.data
        if t == "identity.role_defined.v1":
            name = _id(event, "role")
            tx.put("roles", name, {
                "name": name, "permissions": list(d["permissions"]),
                "self_editable_fields": list(d["self_editable_fields"]), "updated_at": event.occurred_at,
                "version": event.version,
            })
        elif t == "identity.role_permissions_changed.v1":
            tx.update("roles", _id(event, "role"), permissions=list(d["permissions"]),
                      self_editable_fields=list(d["self_editable_fields"]), updated_at=event.occurred_at,
                      version=event.version)


class MemorySessionsProjection:
    def apply(self, tx: MemoryTransaction, event: EventEnvelope) -> None:
        t, d, at = event.type, event.data, event.occurred_at
        if not event.stream_id.startswith("session-"):
            return
        session_id = _id(event, "session")
        if t == "identity.session_started.v1":
            tx.put("sessions", session_id, {
                "id": session_id, "user_id": d["user_id"], "status": "active", "created_at": at,
                "last_refreshed_at": None, "expires_at": datetime.fromisoformat(d["expires_at"]),
                "revoked_at": None, "revoked_reason": None,
            })
        elif t == "identity.session_refreshed.v1":
            tx.update("sessions", session_id, last_refreshed_at=at)
        elif t == "identity.session_revoked.v1":
            tx.update("sessions", session_id, status="revoked", revoked_at=at, revoked_reason=d["reason"])


class MemoryApiKeysProjection:
    def apply(self, tx: MemoryTransaction, event: EventEnvelope) -> None:
        t, d, at = event.type, event.data, event.occurred_at
        if t == "identity.api_key_created.v1":
            key_id = _id(event, "api_key")
            tx.put("api_keys", key_id, {
                "id": key_id, "name": d["name"], "scopes": list(d["scopes"]), "status": "active",
                "secret_hash": d["secret_hash"], "created_by": d["created_by"], "created_at": at,
                "expires_at": datetime.fromisoformat(d["expires_at"]) if d["expires_at"] else None,
                "revoked_at": None, "revoked_by": None, "version": event.version,
            })
        elif t == "identity.api_key_revoked.v1":
            tx.update("api_keys", _id(event, "api_key"), status="revoked", revoked_at=at,
                      revoked_by=d["revoked_by"], version=event.version)


def memory_projections() -> list:
    return [MemoryUsersProjection(), MemoryCustomersProjection(), MemoryRolesProjection(),
            MemorySessionsProjection(), MemoryApiKeysProjection()]


def memory_units(store: MemoryStore | None = None,
                 vault: FakeVault | None = None) -> tuple[MemoryStore, Callable[[RequestContext], FakeUnitOfWork]]:
    """A store for identity and a factory of its fake units of work (``make(context)``)."""
    store = store if store is not None else MemoryStore(service=SERVICE)
    vault = vault if vault is not None else FakeVault()

    def make(context: RequestContext) -> FakeUnitOfWork:
        return FakeUnitOfWork(store, context, projections=memory_projections(), vault=vault,
                              repositories=MemoryRepositories)

    return store, make
