"""Roles as data: the built-in set, read and changed by admins."""

from __future__ import annotations

from collections.abc import Callable

from upgestao_kernel.errors import ServiceError
from upgestao_kernel.eventstore import ConcurrencyError

from ..adapters.ports import IdentityUnitOfWork, RoleRecord
from ..domain.roles import BUILT_IN_ROLES, PERMISSIONS, Role
from .authorization import require


def ensure_built_in(uow_factory: Callable[[], IdentityUnitOfWork]) -> list[str]:
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


def _doc(record: RoleRecord) -> dict:
    return {"name": record.name, "permissions": sorted(record.permissions),
            "self_editable_fields": sorted(record.self_editable_fields),
            "updated_at": record.updated_at.isoformat()}


def list_roles(uow: IdentityUnitOfWork) -> dict:
    require(uow, "roles.read", action="list", resource_type="role")
    return {"items": [_doc(r) for r in uow.roles.all()],
            "permissions": [{"name": k, "description": v} for k, v in PERMISSIONS.items()]}


def permissions_by_role(uow: IdentityUnitOfWork) -> dict:
    """What the gateway caches to authorise each request."""
    return {"roles": {r.name: sorted(r.permissions) for r in uow.roles.all()}}


def update_role(uow: IdentityUnitOfWork, name: str, permissions: list[str],
                self_editable_fields: list[str]) -> dict:
    require(uow, "roles.update", action="update", resource_type="role", resource_id=name)
    role = uow.load(Role, name)
    if role is None:
        raise ServiceError("not-found", f"No such role: {name}.", 404)
    if role.change(permissions, self_editable_fields):
        uow.save(role)
        uow.roles.forget_cached()
    return _doc(uow.roles.get(name))
