"""The directory: which ids are staff users or customers, for the services that must check an id they are given.

Messaging checks that a conversation's customer is a customer, that an assignee, a team member or a chat member
is an active staff user, without reading identity's tables (D1). The answer holds ids, the kind, the role and
whether the person is active: no personal value, so nothing is opened and there is no audited read. It is
answered only to the services listed in :data:`SERVED` (the broker user RabbitMQ checked,
``uow.context.caller_service``); any other caller is refused and the refusal audited.
"""

from __future__ import annotations

from collections.abc import Iterable

from upgestao_kernel.errors import ServiceError, field_error, validation_error

from ..adapters.ports import IdentityUnitOfWork
from ..domain.users import ACTIVE

SERVED = frozenset({"messaging"})
MAX_IDS = 200
RESOURCE = "directory"


def lookup(uow: IdentityUnitOfWork, ids: Iterable[str]) -> dict:
    """``{"items": {id: {"kind": "staff"|"customer", "role", "active"}}}`` for the ids that exist (others absent)."""
    if uow.context.caller_service not in SERVED:
        uow.deny(action="read", resource_type=RESOURCE, resource_id=None, subject_id=None, fields=(),
                 purpose="directory")
        raise ServiceError("forbidden", "The directory answers only the services that check ids.", 403)
    wanted = _checked(ids)
    items: dict[str, dict] = {}
    for person_id in wanted:
        user = uow.users.get(person_id)
        if user is not None:
            items[person_id] = {"kind": "staff", "role": user.role, "active": user.status == ACTIVE}
            continue
        if uow.customers.get(person_id) is not None:
            items[person_id] = {"kind": "customer", "role": None, "active": True}
    return {"items": items}


def _checked(ids: Iterable[str]) -> list[str]:
    if not isinstance(ids, list | tuple) or not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids):
        raise validation_error([field_error("ids", "must be a list of ids")])
    unique = list(dict.fromkeys(ids))
    if len(unique) > MAX_IDS:
        raise validation_error([field_error("ids", f"at most {MAX_IDS} ids at a time")])
    return unique
