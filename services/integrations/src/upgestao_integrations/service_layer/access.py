"""Who may use the integrations RPCs: a person whose role grants ``integrations.manage`` (checked again here
after the gateway), or the system. Every use is audited (``list``/``read``/``create``/``update`` on
``integration``, no personal data); a refusal is audited as denied."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from upgestao_kernel.errors import ServiceError, invalid_field

PERMISSION = "integrations.manage"
RESOURCE = "integration"
PURPOSE = "integration management"
SYSTEM = "system"
MAX_LIMIT = 200

PermissionsOf = Callable[[str | None], frozenset[str]]


@contextmanager
def managed(unit_of_work: Callable[[], Any], permissions_of: PermissionsOf, action: str,
            resource_id: str | None) -> Iterator[Any]:
    with unit_of_work() as uow:
        ctx = uow.context
        allowed = (ctx.actor_id == SYSTEM and ctx.actor_role == SYSTEM) or (
            bool(ctx.actor_id) and PERMISSION in permissions_of(ctx.actor_role))
        if not allowed:
            uow.deny(action=action, resource_type=RESOURCE, resource_id=resource_id, subject_id=None, fields=(),
                     purpose="authorization")
            raise ServiceError("forbidden", f"Your role does not grant {PERMISSION}.", 403,
                               {"permission": PERMISSION})
        uow.audit_access(action=action, resource_type=RESOURCE, resource_id=resource_id, subject_id=None,
                         fields=(), purpose=PURPOSE)
        yield uow


def check_limit(limit: Any) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise invalid_field("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return limit


def encode_cursor(at: datetime, id_: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), id_]).encode()).decode().rstrip("=")


def decode_cursor(cursor: Any) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        text = str(cursor)
        at, id_ = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None or not isinstance(id_, str) or len(id_) > 40:
            raise ValueError
        return moment, id_
    except (ValueError, TypeError, json.JSONDecodeError):
        raise invalid_field("cursor", "not a cursor this list gave") from None


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def text_id(name: str, value: Any, prefix: str) -> str:
    """An id of ours (``int_…``, ``msg_…``, ``rec_…``); anything else is a 404 (no such thing)."""
    if not isinstance(value, str) or not value.startswith(prefix) or not 5 <= len(value) <= 40 \
            or not value.replace("_", "").isalnum():
        from upgestao_kernel.errors import not_found

        raise not_found(name)
    return value
