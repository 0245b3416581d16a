"""A refused request, audited in the gateway's own database.

The refusal is recorded with ``UnitOfWork.deny`` (outcome ``denied``, purpose ``authorization``): ids
and the permission's resource only, never personal values (:mod:`upgestao_gateway.domain.permissions`
says what the record holds). It reaches the ``audit`` exchange through the gateway's outbox relay.
A record that cannot be written does not let the request through: the refusal stands, and the missing
record is logged as an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from upgestao_kernel.logging import get_logger

from ..domain.permissions import PURPOSE, RouteShape, audit_action, resource_type, subject_of

log = get_logger(__name__)


def record_denial(
    unit_of_work: Callable[[], AbstractContextManager[Any]],
    route: RouteShape,
    template: str,
    permission: str,
    path_values: Mapping[str, Any],
    role: str | None,
) -> None:
    """Audit that ``route`` (shown as ``template``) was refused for lack of ``permission``."""
    try:
        with unit_of_work() as uow:
            uow.deny(
                action=audit_action(route), resource_type=resource_type(permission), resource_id=None,
                subject_id=subject_of(route, path_values), fields=(), purpose=PURPOSE,
            )
    except Exception:  # refused all the same; the missing record must be seen
        log.error("access.denial_not_audited", permission=permission, route=template, exc_info=True)
    log.info("access.denied", permission=permission, route=template, role=role)
