"""What a role may do, and what the audit record of a refused request says.

Identity owns the role → permissions map (``identity.role_permissions()``
answers ``{"roles": {"admin": ["users.read", ...], ...}}``); the gateway
reads it with :func:`parse_role_permissions` and checks each authenticated
route's permission (``"<resource>.<action>"``) against it. A role absent
from the map has no permissions.

A refusal is audited (``UnitOfWork.deny``, purpose ``authorization``) with
ids and the permission's resource only, never personal values: the action
comes from the route's HTTP method (:func:`audit_action`), the resource type
from the permission (:func:`resource_type`), the subject from a ``*_id``
path variable (:func:`subject_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

RoleMap = dict[str, frozenset[str]]

PURPOSE = "authorization"
_METHOD_ACTIONS = {"GET": "read", "HEAD": "read", "POST": "create", "PUT": "update", "PATCH": "update",
                   "DELETE": "delete"}


def parse_role_permissions(document: Any) -> RoleMap:
    """``{role: permissions}`` of identity's answer; ``ValueError`` says what is wrong with it."""
    if not isinstance(document, Mapping) or not isinstance(document.get("roles"), Mapping):
        raise ValueError('expected {"roles": {role: [permission, ...]}}')
    roles: RoleMap = {}
    for role, permissions in document["roles"].items():
        if not isinstance(role, str) or not isinstance(permissions, list | tuple):
            raise ValueError("each role must map to a list of permissions")
        if not all(isinstance(p, str) for p in permissions):
            raise ValueError(f"role {role}: permissions must be strings")
        roles[role] = frozenset(permissions)
    return roles


class RouteShape(Protocol):
    """What the audit vocabulary needs of a route (the HTTP layer's ``RouteSpec`` has it)."""

    method: str
    path: str

    @property
    def path_variables(self) -> list[tuple[str, str]]: ...


def singular(word: str) -> str:
    """``users`` → ``user``, ``categories`` → ``category``, ``addresses`` → ``address``."""
    if word.endswith("ies") and len(word) > 3:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us")):
        return word[:-1]
    return word


def resource_type(permission: str) -> str:
    return singular(permission.partition(".")[0])


def audit_action(spec: RouteShape) -> str:
    """The audit action of a route: its HTTP method; a GET of a collection is ``list``."""
    action = _METHOD_ACTIONS.get(spec.method, "read")
    if action == "read":
        last = spec.path.rstrip("/").rsplit("/", 1)[-1]
        if not last.startswith("<") and singular(last) != last:
            return "list"
    return action


def subject_of(spec: RouteShape, path_values: Mapping[str, Any]) -> str | None:
    """Whose data the route is about: the ``user_id`` path variable, else the first ``*_id`` one."""
    names = [name for name, _ in spec.path_variables if name.endswith("_id") and name in path_values]
    if not names:
        return None
    name = "user_id" if "user_id" in names else names[0]
    return str(path_values[name])
