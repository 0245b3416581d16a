"""A missing permission: refused with 403 and audited in the gateway's database.

The refusal is recorded with ``UnitOfWork.deny`` (outcome ``denied``,
purpose ``authorization``): ids and the permission's resource only, never
personal values. The record reaches the ``audit`` exchange through the
gateway's outbox relay. Routes get this automatically (``permission=``);
a handler making a finer check does the same::

    if not request.principal.can("users.update"):
        raise deny(self, request, "users.update")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from upgestao_kernel.logging import get_logger

from ..problems import Problem, missing_permission

if TYPE_CHECKING:
    from ..web import GatewayRequest, RouteSpec

log = get_logger(__name__)

PURPOSE = "authorization"
_METHOD_ACTIONS = {"GET": "read", "HEAD": "read", "POST": "create", "PUT": "update", "PATCH": "update",
                   "DELETE": "delete"}


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


def audit_action(spec: RouteSpec) -> str:
    """The audit action of a route: its HTTP method; a GET of a collection is ``list``."""
    action = _METHOD_ACTIONS.get(spec.method, "read")
    if action == "read":
        last = spec.path.rstrip("/").rsplit("/", 1)[-1]
        if not last.startswith("<") and singular(last) != last:
            return "list"
    return action


def subject_of(spec: RouteSpec, path_values: dict[str, Any]) -> str | None:
    """Whose data the route is about: the ``user_id`` path variable, else the first ``*_id`` one."""
    names = [name for name, _ in spec.path_variables if name.endswith("_id") and name in path_values]
    if not names:
        return None
    name = "user_id" if "user_id" in names else names[0]
    return str(path_values[name])


def deny(service: Any, request: GatewayRequest, permission: str | None = None) -> Problem:
    """Audit the refusal through ``service.db`` and return the 403 problem to raise or return."""
    spec = request.route
    permission = permission or spec.permission
    try:
        with service.db.unit_of_work() as uow:
            uow.deny(
                action=audit_action(spec), resource_type=resource_type(permission), resource_id=None,
                subject_id=subject_of(spec, getattr(request, "path_values", {})), fields=(), purpose=PURPOSE,
            )
    except Exception:  # refused all the same; the missing record must be seen
        log.error("access.denial_not_audited", permission=permission, route=spec.template, exc_info=True)
    log.info("access.denied", permission=permission, route=spec.template,
             role=request.principal.role if request.principal else None)
    return missing_permission(permission)
