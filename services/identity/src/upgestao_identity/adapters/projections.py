"""Projections of the identity event log into the read models.

Each projection dispatches on the declared events (``domain/events.py``): one method per event type
that changes its tables, found through its ``on`` table, so a type string is never typed again here.
A method gets the stored envelope (stream id, version, time) and the event decoded from its data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection
from upgestao_kernel.events import EventEnvelope, EventHandlers

from ..domain.datamap import CUSTOMER_PROFILE_FIELDS, USER_PROFILE_FIELDS
from ..domain.events import (
    ApiKeyCreated,
    ApiKeyRevoked,
    CustomerChanged,
    CustomerErased,
    CustomerRegistered,
    CustomerUnblocked,
    NewLoginDetected,
    PasswordResetCompleted,
    PasswordResetRequested,
    RoleDefined,
    RolePermissionsChanged,
    SessionRefreshed,
    SessionRevoked,
    SessionStarted,
    UserDeactivated,
    UserEmailChanged,
    UserErased,
    UserLocaleChanged,
    UserPasswordChanged,
    UserPhotoChanged,
    UserProfileChanged,
    UserRegistered,
    UserRoleChanged,
    UserUnblocked,
)
from ..domain.subjects import DELETION, SHREDDING, STATUS_OF
from .tables import api_keys, customers, password_resets, roles, sessions, users


def _id(event: EventEnvelope, prefix: str) -> str:
    return event.stream_id.removeprefix(prefix + "-")


class UsersProjection:
    name = "users"
    tables = (users, password_resets)
    on = EventHandlers()

    def apply(self, conn: Connection, event: EventEnvelope) -> None:
        self.on.dispatch(self, event, conn)

    @staticmethod
    def _touch(conn: Connection, envelope: EventEnvelope, **values: Any) -> None:
        """Every event of a user after the first moves the row's version and time, with its own changes."""
        conn.execute(users.update().where(users.c.id == _id(envelope, "user"))
                     .values(updated_at=envelope.occurred_at, version=envelope.version, **values))

    @on(UserRegistered)
    def _registered(self, conn: Connection, envelope: EventEnvelope, event: UserRegistered) -> None:
        at = envelope.occurred_at
        conn.execute(users.insert().values(
            id=_id(envelope, "user"), role=event.role, status="active", email_index=event.email_index,
            created_at=at, updated_at=at, version=envelope.version, **event.fields,
        ))

    @on(UserProfileChanged)
    def _profile_changed(self, conn: Connection, envelope: EventEnvelope, event: UserProfileChanged) -> None:
        values: dict[str, Any] = dict(event.fields)
        if event.email_index:
            values["email_index"] = event.email_index
        self._touch(conn, envelope, **values)

    @on(UserRoleChanged)
    def _role_changed(self, conn: Connection, envelope: EventEnvelope, event: UserRoleChanged) -> None:
        self._touch(conn, envelope, role=event.role)

    @on(UserPhotoChanged)
    def _photo_changed(self, conn: Connection, envelope: EventEnvelope, event: UserPhotoChanged) -> None:
        self._touch(conn, envelope, photo_id=event.photo_id, photo_content_type=event.content_type)

    @on(UserEmailChanged)
    def _email_changed(self, conn: Connection, envelope: EventEnvelope, event: UserEmailChanged) -> None:
        self._touch(conn, envelope)  # the address itself changed with the profile event before it

    @on(UserLocaleChanged)
    def _locale_changed(self, conn: Connection, envelope: EventEnvelope, event: UserLocaleChanged) -> None:
        self._touch(conn, envelope, locale=event.locale)

    @on(NewLoginDetected)
    def _new_login(self, conn: Connection, envelope: EventEnvelope, event: NewLoginDetected) -> None:
        self._touch(conn, envelope)  # the session itself is the session stream's

    @on(UserDeactivated)
    def _deactivated(self, conn: Connection, envelope: EventEnvelope, event: UserDeactivated) -> None:
        self._touch(conn, envelope, status="deactivated")

    @on(UserErased)
    def _erased(self, conn: Connection, envelope: EventEnvelope, event: UserErased) -> None:
        """Deletion: the row, its reset tokens and its sessions (revoked just before) go; anonymisation: a row
        without any personal value (nor index) stays; blocking: the row stays as it is, its status refusing
        every reader."""
        user_id = _id(envelope, "user")
        if event.mode in SHREDDING:
            conn.execute(password_resets.delete().where(password_resets.c.user_id == user_id))
            conn.execute(sessions.delete().where(sessions.c.user_id == user_id))
        if event.mode == DELETION:
            conn.execute(users.delete().where(users.c.id == user_id))
            return
        values: dict[str, Any] = {"status": STATUS_OF[event.mode]}
        if event.mode in SHREDDING:
            values.update(dict.fromkeys(USER_PROFILE_FIELDS), email_index=None, photo_id=None,
                          photo_content_type=None)
        self._touch(conn, envelope, **values)

    @on(UserUnblocked)
    def _unblocked(self, conn: Connection, envelope: EventEnvelope, event: UserUnblocked) -> None:
        self._touch(conn, envelope, status=event.status)

    @on(PasswordResetRequested)
    def _reset_requested(self, conn: Connection, envelope: EventEnvelope, event: PasswordResetRequested) -> None:
        conn.execute(password_resets.insert().values(
            token_hash=event.token_hash, user_id=_id(envelope, "user"),
            expires_at=datetime.fromisoformat(event.expires_at),
        ))
        self._touch(conn, envelope)

    @on(PasswordResetCompleted)
    def _reset_completed(self, conn: Connection, envelope: EventEnvelope, event: PasswordResetCompleted) -> None:
        conn.execute(password_resets.update().where(password_resets.c.token_hash == event.token_hash)
                     .values(used_at=envelope.occurred_at))
        self._touch(conn, envelope)

    @on(UserPasswordChanged)
    def _password_changed(self, conn: Connection, envelope: EventEnvelope, event: UserPasswordChanged) -> None:
        # a new password spends every reset token still outstanding
        conn.execute(password_resets.update().where(password_resets.c.user_id == _id(envelope, "user"),
                                                    password_resets.c.used_at.is_(None))
                     .values(used_at=envelope.occurred_at))
        self._touch(conn, envelope)


class CustomersProjection:
    name = "customers"
    tables = (customers,)
    on = EventHandlers()

    def apply(self, conn: Connection, event: EventEnvelope) -> None:
        self.on.dispatch(self, event, conn)

    @on(CustomerRegistered)
    def _registered(self, conn: Connection, envelope: EventEnvelope, event: CustomerRegistered) -> None:
        at = envelope.occurred_at
        conn.execute(customers.insert().values(
            id=_id(envelope, "customer"), email_index=event.email_index, phone_index=event.phone_index,
            created_at=at, updated_at=at, version=envelope.version, **event.fields,
        ))

    @on(CustomerChanged)
    def _changed(self, conn: Connection, envelope: EventEnvelope, event: CustomerChanged) -> None:
        conn.execute(customers.update().where(customers.c.id == _id(envelope, "customer")).values(
            updated_at=envelope.occurred_at, version=envelope.version, **event.fields, **event.indexes,
        ))


    @on(CustomerErased)
    def _erased(self, conn: Connection, envelope: EventEnvelope, event: CustomerErased) -> None:
        customer_id = _id(envelope, "customer")
        if event.mode == DELETION:
            conn.execute(customers.delete().where(customers.c.id == customer_id))
            return
        values: dict[str, Any] = {"status": STATUS_OF[event.mode]}
        if event.mode in SHREDDING:
            values.update(dict.fromkeys(CUSTOMER_PROFILE_FIELDS), email_index=None, phone_index=None)
        conn.execute(customers.update().where(customers.c.id == customer_id).values(
            updated_at=envelope.occurred_at, version=envelope.version, **values))


    @on(CustomerUnblocked)
    def _unblocked(self, conn: Connection, envelope: EventEnvelope, event: CustomerUnblocked) -> None:
        conn.execute(customers.update().where(customers.c.id == _id(envelope, "customer")).values(
            updated_at=envelope.occurred_at, version=envelope.version, status="active"))


class RolesProjection:
    name = "roles"
    tables = (roles,)
    on = EventHandlers()

    def apply(self, conn: Connection, event: EventEnvelope) -> None:
        self.on.dispatch(self, event, conn)

    @on(RoleDefined)
    def _defined(self, conn: Connection, envelope: EventEnvelope, event: RoleDefined) -> None:
        conn.execute(roles.insert().values(
            name=_id(envelope, "role"), permissions=list(event.permissions),
            self_editable_fields=list(event.self_editable_fields), updated_at=envelope.occurred_at,
            version=envelope.version,
        ))

    @on(RolePermissionsChanged)
    def _changed(self, conn: Connection, envelope: EventEnvelope, event: RolePermissionsChanged) -> None:
        conn.execute(roles.update().where(roles.c.name == _id(envelope, "role")).values(
            permissions=list(event.permissions), self_editable_fields=list(event.self_editable_fields),
            updated_at=envelope.occurred_at, version=envelope.version,
        ))


class SessionsProjection:
    name = "sessions"
    tables = (sessions,)
    on = EventHandlers()

    def apply(self, conn: Connection, event: EventEnvelope) -> None:
        self.on.dispatch(self, event, conn)

    @on(SessionStarted)
    def _started(self, conn: Connection, envelope: EventEnvelope, event: SessionStarted) -> None:
        conn.execute(sessions.insert().values(
            id=_id(envelope, "session"), user_id=event.user_id, status="active", created_at=envelope.occurred_at,
            expires_at=datetime.fromisoformat(event.expires_at),
        ))

    @on(SessionRefreshed)
    def _refreshed(self, conn: Connection, envelope: EventEnvelope, event: SessionRefreshed) -> None:
        conn.execute(sessions.update().where(sessions.c.id == _id(envelope, "session"))
                     .values(last_refreshed_at=envelope.occurred_at))

    @on(SessionRevoked)
    def _revoked(self, conn: Connection, envelope: EventEnvelope, event: SessionRevoked) -> None:
        conn.execute(sessions.update().where(sessions.c.id == _id(envelope, "session")).values(
            status="revoked", revoked_at=envelope.occurred_at, revoked_reason=event.reason,
        ))


class ApiKeysProjection:
    name = "api_keys"
    tables = (api_keys,)
    on = EventHandlers()

    def apply(self, conn: Connection, event: EventEnvelope) -> None:
        self.on.dispatch(self, event, conn)

    @on(ApiKeyCreated)
    def _created(self, conn: Connection, envelope: EventEnvelope, event: ApiKeyCreated) -> None:
        conn.execute(api_keys.insert().values(
            id=_id(envelope, "api_key"), name=event.name, scopes=list(event.scopes), status="active",
            secret_hash=event.secret_hash, created_by=event.created_by, created_at=envelope.occurred_at,
            expires_at=datetime.fromisoformat(event.expires_at) if event.expires_at else None,
            version=envelope.version,
        ))

    @on(ApiKeyRevoked)
    def _revoked(self, conn: Connection, envelope: EventEnvelope, event: ApiKeyRevoked) -> None:
        conn.execute(api_keys.update().where(api_keys.c.id == _id(envelope, "api_key")).values(
            status="revoked", revoked_at=envelope.occurred_at, revoked_by=event.revoked_by, version=envelope.version,
        ))


def projections() -> list:
    return [UsersProjection(), CustomersProjection(), RolesProjection(), SessionsProjection(), ApiKeysProjection()]
