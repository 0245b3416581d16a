"""Projections of the identity event log into the read models."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection
from upgestao_kernel.events import EventEnvelope

from .tables import customers, password_resets, roles, sessions, users


def _id(event: EventEnvelope, prefix: str) -> str:
    return event.stream_id.removeprefix(prefix + "-")


class UsersProjection:
    name = "users"
    tables = (users, password_resets)

    def apply(self, conn: Connection, event: EventEnvelope) -> None:
        t, d, at = event.type, event.data, event.occurred_at
        if not t.startswith("identity.") or not event.stream_id.startswith("user-"):
            return
        user_id = _id(event, "user")
        where = users.c.id == user_id
        if t == "identity.user_registered.v1":
            conn.execute(users.insert().values(
                id=user_id, role=d["role"], status="active", email_index=d["email_index"],
                created_at=at, updated_at=at, version=event.version, **d["fields"],
            ))
            return
        values: dict = {"updated_at": at, "version": event.version}
        if t == "identity.user_profile_changed.v1":
            values.update(d["fields"])
            if d.get("email_index"):
                values["email_index"] = d["email_index"]
        elif t == "identity.user_role_changed.v1":
            values["role"] = d["role"]
        elif t == "identity.user_photo_changed.v1":
            values.update(photo_id=d["photo_id"], photo_content_type=d["content_type"])
        elif t == "identity.user_deactivated.v1":
            values["status"] = "deactivated"
        elif t == "identity.password_reset_requested.v1":
            conn.execute(password_resets.insert().values(
                token_hash=d["token_hash"], user_id=user_id, expires_at=datetime.fromisoformat(d["expires_at"]),
            ))
        elif t == "identity.password_reset_completed.v1":
            conn.execute(password_resets.update().where(password_resets.c.token_hash == d["token_hash"])
                         .values(used_at=at))
        elif t == "identity.user_password_changed.v1":
            # a new password spends every reset token still outstanding
            conn.execute(password_resets.update().where(password_resets.c.user_id == user_id,
                                                        password_resets.c.used_at.is_(None)).values(used_at=at))
        conn.execute(users.update().where(where).values(**values))


class CustomersProjection:
    name = "customers"
    tables = (customers,)

    def apply(self, conn: Connection, event: EventEnvelope) -> None:
        t, d, at = event.type, event.data, event.occurred_at
        if t == "identity.customer_registered.v1":
            conn.execute(customers.insert().values(
                id=_id(event, "customer"), email_index=d["email_index"], phone_index=d["phone_index"],
                created_at=at, updated_at=at, version=event.version, **d["fields"],
            ))
        elif t == "identity.customer_changed.v1":
            conn.execute(customers.update().where(customers.c.id == _id(event, "customer")).values(
                updated_at=at, version=event.version, **d["fields"], **d["indexes"],
            ))


class RolesProjection:
    name = "roles"
    tables = (roles,)

    def apply(self, conn: Connection, event: EventEnvelope) -> None:
        t, d = event.type, event.data
        if t == "identity.role_defined.v1":
            conn.execute(roles.insert().values(
                name=_id(event, "role"), permissions=list(d["permissions"]),
                self_editable_fields=list(d["self_editable_fields"]), updated_at=event.occurred_at,
                version=event.version,
            ))
        elif t == "identity.role_permissions_changed.v1":
            conn.execute(roles.update().where(roles.c.name == _id(event, "role")).values(
                permissions=list(d["permissions"]), self_editable_fields=list(d["self_editable_fields"]),
                updated_at=event.occurred_at, version=event.version,
            ))


class SessionsProjection:
    name = "sessions"
    tables = (sessions,)

    def apply(self, conn: Connection, event: EventEnvelope) -> None:
        t, d, at = event.type, event.data, event.occurred_at
        if not event.stream_id.startswith("session-"):
            return
        session_id = _id(event, "session")
        if t == "identity.session_started.v1":
            conn.execute(sessions.insert().values(
                id=session_id, user_id=d["user_id"], status="active", created_at=at,
                expires_at=datetime.fromisoformat(d["expires_at"]),
            ))
        elif t == "identity.session_refreshed.v1":
            conn.execute(sessions.update().where(sessions.c.id == session_id).values(last_refreshed_at=at))
        elif t == "identity.session_revoked.v1":
            conn.execute(sessions.update().where(sessions.c.id == session_id).values(
                status="revoked", revoked_at=at, revoked_reason=d["reason"],
            ))


def projections() -> list:
    return [UsersProjection(), CustomersProjection(), RolesProjection(), SessionsProjection()]
