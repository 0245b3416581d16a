"""Roles as data: the built-in set, read and changed by admins."""

from __future__ import annotations

from collections.abc import Callable

from upgestao_kernel.errors import ServiceError
from upgestao_kernel.events import utcnow
from upgestao_kernel.eventstore import ConcurrencyError

from ..adapters.ports import IdentityUnitOfWork, RoleRecord
from ..domain.duties import check_role_edit
from ..domain.errors import OwnRoleChange
from ..domain.roles import (
    BUILT_IN_ROLES,
    INTRODUCED_PERMISSIONS,
    PERMISSIONS,
    Role,
    effective_permissions,
    is_compliance,
)
from .api_keys import permissions_document
from .authorization import current_role, is_system, require


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


def grant_introduced(uow_factory: Callable[[], IdentityUnitOfWork]) -> dict[str, list[str]]:
    """Give the built-in roles of a database defined before a permission existed that permission, once
    (``INTRODUCED_PERMISSIONS``; as the system, audited like an admin's change). Safe to run from many
    processes and at every start: a role that held it once is left as it is."""
    granted: dict[str, list[str]] = {}
    for name in sorted({role for roles in INTRODUCED_PERMISSIONS.values() for role in roles}):
        try:
            with uow_factory() as uow:
                role = uow.load(Role, name)
                added = role.introduce(INTRODUCED_PERMISSIONS) if role is not None else []
                if not added:
                    continue
                uow.save(role)
                uow.roles.forget_cached()
                uow.audit_access(action="update", resource_type="role", resource_id=name, subject_id=None,
                                 fields=("permissions",),
                                 purpose=f"role {name} changed: added [{', '.join(added)}], removed [] "
                                         "(permissions introduced since the role was defined)")
                granted[name] = added
        except ConcurrencyError:
            continue  # another process granted them first
    return granted


def _doc(record: RoleRecord) -> dict:
    return {"name": record.name, "compliance": is_compliance(record.name),
            "permissions": sorted(effective_permissions(record.name, record.permissions)),
            "self_editable_fields": sorted(record.self_editable_fields),
            "updated_at": record.updated_at.isoformat()}


def list_roles(uow: IdentityUnitOfWork) -> dict:
    require(uow, "roles.read", action="list", resource_type="role")
    return {"items": [_doc(r) for r in uow.roles.all()],
            "permissions": [{"name": k, "description": v} for k, v in PERMISSIONS.items()]}


def permissions_by_role(uow: IdentityUnitOfWork) -> dict:
    """What the gateway and the services cache to authorise each request: the roles, and the synthetic role
    of every usable API key (``apikey:<key id>``: its scopes; issue 15)."""
    document = {r.name: sorted(effective_permissions(r.name, r.permissions)) for r in uow.roles.all()}
    document.update(permissions_document(uow, utcnow()))
    return {"roles": document}


def update_role(uow: IdentityUnitOfWork, name: str, permissions: list[str],
                self_editable_fields: list[str]) -> dict:
    """Change what a role may do: never the role one holds (separation of duties), never a compliance
    permission for a role that is not a compliance one; audited as an update naming the role and the
    permissions added and removed (role and permission names are no one's personal data)."""
    require(uow, "roles.update", action="update", resource_type="role", resource_id=name)
    try:
        check_role_edit(actor_role=current_role(uow), role=name, system=is_system(uow))
    except OwnRoleChange:
        uow.deny(action="update", resource_type="role", resource_id=name, subject_id=None,
                 fields=("permissions",), purpose="separation of duties: the role one holds")
        raise
    role = uow.load(Role, name)
    if role is None:
        raise ServiceError("not-found", f"No such role: {name}.", 404)
    before = set(role.permissions)
    if role.change(permissions, self_editable_fields):
        uow.save(role)
        uow.roles.forget_cached()
        added, removed = sorted(set(role.permissions) - before), sorted(before - set(role.permissions))
        uow.audit_access(action="update", resource_type="role", resource_id=name, subject_id=None,
                         fields=("permissions", "self_editable_fields"),
                         purpose=f"role {name} changed: added [{', '.join(added)}], removed [{', '.join(removed)}]")
    return _doc(uow.roles.get(name))
