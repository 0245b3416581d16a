"""Roles as data: the built-in set, read and changed by admins."""

from __future__ import annotations

import sqlalchemy as sa
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.eventstore import ConcurrencyError
from upgestao_kernel.unit_of_work import UnitOfWork

from ..adapters.tables import roles
from ..domain.roles import BUILT_IN_ROLES, PERMISSIONS, Role
from .authorization import forget_roles, require


def ensure_built_in(uow_factory) -> list[str]:
    """Define every built-in role that is not defined yet (safe to run from many processes)."""
    created = []
    for name, spec in BUILT_IN_ROLES.items():
        try:
            with uow_factory() as uow:
                if uow.load(Role, name) is not None:
                    continue
                uow.save(Role.define(name, spec["permissions"], spec["self_editable_fields"]))
                created.append(name)
        except ConcurrencyError:
            continue  # another process defined it first
    return created


def _doc(row) -> dict:
    return {"name": row.name, "permissions": sorted(row.permissions),
            "self_editable_fields": sorted(row.self_editable_fields), "updated_at": row.updated_at.isoformat()}


def list_roles(uow: UnitOfWork) -> dict:
    require(uow, "roles.read", action="list", resource_type="role")
    rows = uow.conn.execute(sa.select(roles).order_by(roles.c.name)).all()
    return {"items": [_doc(r) for r in rows],
            "permissions": [{"name": k, "description": v} for k, v in PERMISSIONS.items()]}


def permissions_by_role(uow: UnitOfWork) -> dict:
    """What the gateway caches to authorise each request."""
    rows = uow.conn.execute(sa.select(roles.c.name, roles.c.permissions)).all()
    return {"roles": {r.name: sorted(r.permissions) for r in rows}}


def update_role(uow: UnitOfWork, name: str, permissions: list[str], self_editable_fields: list[str]) -> dict:
    require(uow, "roles.update", action="update", resource_type="role", resource_id=name)
    role = uow.load(Role, name)
    if role is None:
        raise ServiceError("not-found", f"No such role: {name}.", 404)
    if role.change(permissions, self_editable_fields):
        uow.save(role)
        forget_roles()
    row = uow.conn.execute(sa.select(roles).where(roles.c.name == name)).first()
    return _doc(row)

