"""What identity shares with the integrations a customer's data flows to (issue 15; R4.1, R4.2).

Answered to the integrations service's broker user alone (``uow.context.caller_service == "integrations"``,
the user RabbitMQ checked, never a header): anyone else gets 403, audited as denied.

* ``share_subjects`` -- the shareable fields (e-mail, name, phone: the policy's list, §4) of customers, for
  an integration's webhook deliveries. Only active customers are shared: a staff user, an unknown id, an
  erased, anonymised or blocked customer answer None. Every customer whose values are opened is audited
  as a ``share`` with the integration as ``recipient``, in the same transaction as the read (one audited
  opening of the batch); the record names the fields actually given, never a value.
* ``staff_ids`` -- the active staff users whose role holds a permission (the admins an integration's
  disabling is told to): ids only, nothing opened.
"""

from __future__ import annotations

import re
from typing import Any

from upgestao_kernel.errors import forbidden, invalid_field

from ..adapters.ports import IdentityUnitOfWork
from ..domain.customers import ACTIVE
from ..domain.roles import PERMISSIONS, effective_permissions
from ..domain.subjects import CUSTOMER
from .profiles import opened_to_view

INTEGRATIONS = "integrations"
MAX_SUBJECTS = 200
MAX_ID_LENGTH = 64
MAX_PURPOSE_LENGTH = 200
RECIPIENT = re.compile(r"^integration:[A-Za-z0-9_-]{1,64}$")
# an integration's field name -> identity's (the contract's names; conversations are messaging's)
SHAREABLE = {"email": "email", "name": "full_name", "phone": "phone"}


def only_integrations(uow: IdentityUnitOfWork, action: str, resource_type: str) -> None:
    """Refuse (403, audited as denied) any caller but the integrations service's broker user."""
    if uow.context.caller_service != INTEGRATIONS:
        uow.deny(action=action, resource_type=resource_type, resource_id=None, subject_id=None, fields=(),
                 purpose="authorization")
        raise forbidden("Only the integrations service asks this.")


def checked_ids(name: str, value: object, limit: int) -> list[str]:
    """``value`` as a list of unique id strings (at most ``limit``), else 422 naming ``name``."""
    if not isinstance(value, list | tuple) or not all(
            isinstance(i, str) and 0 < len(i) <= MAX_ID_LENGTH for i in value):
        raise invalid_field(name, f"must be a list of ids (strings of at most {MAX_ID_LENGTH} characters)")
    unique = list(dict.fromkeys(value))
    if len(unique) > limit:
        raise invalid_field(name, f"at most {limit} ids at a time")
    return unique


def checked_recipient(value: object) -> str:
    if not isinstance(value, str) or RECIPIENT.match(value) is None:
        raise invalid_field("recipient", "must be integration:<id>")
    return value


def checked_purpose(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_PURPOSE_LENGTH:
        raise invalid_field("purpose", f"must be a text of 1 to {MAX_PURPOSE_LENGTH} characters")
    return value


def _checked_fields(value: object) -> list[str]:
    if not isinstance(value, list | tuple) or not value or not all(isinstance(f, str) for f in value):
        raise invalid_field("fields", "must be a non-empty list of field names")
    refused = sorted(set(value) - set(SHAREABLE))
    if refused:
        raise invalid_field("fields", f"not shareable by identity: {', '.join(refused)[:200]}")
    return sorted(set(value))


def share_subjects(uow: IdentityUnitOfWork, subject_ids: object, fields: object, recipient: object,
                   purpose: object) -> dict[str, Any]:
    """``{"subjects": {id: {field: value|None} | None}}`` for ``subject_ids``, only the asked ``fields`` as
    keys; None for anyone but an active customer. One ``share`` audit record per customer opened."""
    only_integrations(uow, "share", CUSTOMER)
    wanted = checked_ids("subject_ids", subject_ids, MAX_SUBJECTS)
    asked = _checked_fields(fields)
    to = checked_recipient(recipient)
    why = checked_purpose(purpose)
    answer: dict[str, Any] = dict.fromkeys(wanted)
    found = uow.customers.get_many(wanted)
    opening: list[tuple[str, str, dict[str, str | None]]] = []
    for sid in wanted:
        customer = found.get(sid)
        if customer is None or customer.status != ACTIVE:
            continue  # unknown, a staff user (not a customer), anonymised or blocked: nothing shared
        answer[sid] = dict.fromkeys(asked)
        sealed = {SHAREABLE[f]: getattr(customer, SHAREABLE[f]) for f in asked}
        sealed = {name: value for name, value in sealed.items() if value is not None}
        if sealed:
            opening.append((sid, sid, sealed))
    opened = uow.personal.open_each(resource_type=CUSTOMER, items=opening, purpose=why, action="share",
                                    recipient=to)
    for (sid, _, _), values in zip(opening, opened, strict=True):
        view = opened_to_view(values)
        answer[sid] = {f: view.get(SHAREABLE[f]) for f in asked}
    return {"subjects": answer}


def staff_ids(uow: IdentityUnitOfWork, permission: object) -> dict[str, Any]:
    """``{"ids": [...]}``: the active staff users whose role holds ``permission`` (nothing personal)."""
    only_integrations(uow, "list", "user")
    if not isinstance(permission, str) or permission not in PERMISSIONS:
        raise invalid_field("permission", "unknown permission")
    holding = [role.name for role in uow.roles.all()
               if permission in effective_permissions(role.name, role.permissions)]
    return {"ids": uow.users.active_ids_with_roles(holding)}
