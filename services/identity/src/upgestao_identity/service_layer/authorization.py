"""Server-side authorisation (R2.1): the caller's role, looked up as data; deny by default.

Identity checks again what the gateway already checked (defence in depth). Role definitions
come from ``uow.roles.cached`` (a per-process cache, emptied when this process changes a role:
see ``adapters/sql_repositories.py``).
"""

from __future__ import annotations

from upgestao_kernel.errors import ServiceError

from ..adapters.ports import IdentityUnitOfWork
from ..domain.roles import effective_permissions

SYSTEM_ROLE = "system"


def is_system(uow: IdentityUnitOfWork) -> bool:
    """The caller is the system (start-up tasks, the CLI), not a person."""
    ctx = uow.context
    return ctx.actor_role == SYSTEM_ROLE and ctx.actor_id == SYSTEM_ROLE


def permissions_of(uow: IdentityUnitOfWork, role: str | None) -> frozenset[str]:
    record = uow.roles.cached(role)
    return effective_permissions(role, record.permissions) if record is not None else frozenset()


def self_editable_fields(uow: IdentityUnitOfWork, role: str | None) -> tuple[str, ...]:
    record = uow.roles.cached(role)
    return tuple(record.self_editable_fields) if record is not None else ()


def require(
    uow: IdentityUnitOfWork,
    permission: str,
    *,
    action: str,
    resource_type: str,
    resource_id: str | None = None,
    subject_id: str | None = None,
) -> None:
    """Refuse (403, audited as denied) unless the caller's role grants ``permission``."""
    ctx = uow.context
    if is_system(uow):
        return
    if ctx.actor_id and permission in permissions_of(uow, ctx.actor_role):
        return
    uow.deny(action=action, resource_type=resource_type, resource_id=resource_id, subject_id=subject_id,
             fields=(), purpose="authorization")
    raise ServiceError("forbidden", f"Your role does not grant {permission}.", 403, {"permission": permission})


def require_actor(uow: IdentityUnitOfWork) -> str:
    if not uow.context.actor_id:
        raise ServiceError("unauthenticated", "Authentication required.", 401)
    return uow.context.actor_id
