"""Server-side authorisation (R2.1): the caller's role, looked up as data; deny by default.

Identity checks again what the gateway already checked (defence in depth).
Role definitions are read through a per-process cache of ``ROLE_CACHE_S``
seconds, emptied when this process changes a role: the gateway applies a
change on the next request (it learns it from the event), identity at most
that long after.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.unit_of_work import UnitOfWork

from ..adapters.tables import roles

SYSTEM_ROLE = "system"


ROLE_CACHE_S = 1.0
_role_cache: dict[tuple[str, str], tuple[float, object]] = {}


def forget_roles() -> None:
    _role_cache.clear()


def role_row(conn: Connection, role: str | None):
    if not role:
        return None
    key = (str(conn.engine.url), role)
    hit = _role_cache.get(key)
    now = time.monotonic()
    if hit is not None and hit[0] > now:
        return hit[1]
    row = conn.execute(sa.select(roles).where(roles.c.name == role)).first()
    _role_cache[key] = (now + ROLE_CACHE_S, row)
    return row


def permissions_of(conn: Connection, role: str | None) -> frozenset[str]:
    row = role_row(conn, role)
    return frozenset(row.permissions) if row is not None else frozenset()


def self_editable_fields(conn: Connection, role: str | None) -> tuple[str, ...]:
    row = role_row(conn, role)
    return tuple(row.self_editable_fields) if row is not None else ()


def require(
    uow: UnitOfWork,
    permission: str,
    *,
    action: str,
    resource_type: str,
    resource_id: str | None = None,
    subject_id: str | None = None,
) -> None:
    """Refuse (403, audited as denied) unless the caller's role grants ``permission``."""
    ctx = uow.context
    if ctx.actor_role == SYSTEM_ROLE and ctx.actor_id == SYSTEM_ROLE:
        return
    if ctx.actor_id and permission in permissions_of(uow.conn, ctx.actor_role):
        return
    uow.deny(action=action, resource_type=resource_type, resource_id=resource_id, subject_id=subject_id,
             fields=(), purpose="authorization")
    raise ServiceError("forbidden", f"Your role does not grant {permission}.", 403, {"permission": permission})


def require_actor(uow: UnitOfWork) -> str:
    if not uow.context.actor_id:
        raise ServiceError("unauthenticated", "Authentication required.", 401)
    return uow.context.actor_id
