"""Delivery records for people with ``notifications.read``: per event, campaign, recipient, status,
and a campaign's counts per status (a breach campaign's progress, R6.1).

The answers hold ids, kinds, states, reply codes and short reasons: never an address or a body.
Each query is audited (``list``, purpose ``delivery tracking``); a refusal is audited as denied.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from upgestao_kernel.cursors import decode_time_cursor, encode_time_cursor
from upgestao_kernel.errors import ServiceError, invalid_field, not_found

from ..adapters.ports import FILTERS, Cursor, DeliveryRecord, NotifierUnitOfWork
from ..domain.deliveries import STATUSES

PERMISSION = "notifications.read"
RESOURCE = "delivery"
PURPOSE = "delivery tracking"
MAX_LIMIT = 200
SYSTEM = "system"
# privacy's broker user (RabbitMQ vouches for it) gathering one person's deliveries for their access bundle
PRIVACY = "privacy"
SUBJECT_ACCESS = "data subject access"

PermissionsOf = Callable[[str | None], frozenset[str]]


class DeliveryQueries:
    def __init__(self, unit_of_work: Callable[[], NotifierUnitOfWork], permissions_of: PermissionsOf) -> None:
        self._unit_of_work = unit_of_work
        self._permissions_of = permissions_of

    @contextmanager
    def _open(self, resource_id: str | None, subject_id: str | None = None) -> Iterator[NotifierUnitOfWork]:
        """``subject_id``: the query is one person's deliveries, which privacy may gather for their access
        request (LGPD art. 18 II) whatever the actor of the request it works for."""
        with self._unit_of_work() as uow:
            ctx = uow.context
            for_subject = subject_id is not None and ctx.caller_service == PRIVACY
            allowed = for_subject or (ctx.actor_id == SYSTEM and ctx.actor_role == SYSTEM) or (
                bool(ctx.actor_id) and PERMISSION in self._permissions_of(ctx.actor_role))
            if not allowed:
                uow.deny(action="list", resource_type=RESOURCE, resource_id=resource_id, subject_id=None,
                         fields=(), purpose="authorization")
                raise ServiceError("forbidden", f"Your role does not grant {PERMISSION}.", 403,
                                   {"permission": PERMISSION})
            uow.audit_access(action="list", resource_type=RESOURCE, resource_id=resource_id, subject_id=subject_id,
                             fields=(), purpose=SUBJECT_ACCESS if for_subject else PURPOSE)
            yield uow

    def deliveries(self, filters: Mapping[str, Any] | None, limit: int = 50, cursor: str | None = None) -> dict:
        clean = _filters(filters or {})
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise invalid_field("limit", f"must be an integer from 1 to {MAX_LIMIT}")
        after = _decode_cursor(cursor)
        only_subject = clean.get("recipient_id") if set(clean) == {"recipient_id"} else None
        with self._open(clean.get("event_id") or clean.get("campaign_id"), only_subject) as uow:
            rows = uow.deliveries.page(clean, limit + 1, after)
        more = len(rows) > limit
        rows = rows[:limit]
        return {"items": [view(r) for r in rows],
                "next_cursor": encode_time_cursor(rows[-1].created_at, rows[-1].id) if more else None}

    def campaign(self, campaign_id: str) -> dict:
        _uuid("campaign_id", campaign_id)
        with self._open(campaign_id) as uow:
            counts, first, last = uow.deliveries.counts(campaign_id)
        total = sum(counts.values())
        if total == 0:
            raise not_found("campaign")
        return {"campaign_id": campaign_id, "total": total, "counts": counts,
                "first_created_at": _iso(first), "last_updated_at": _iso(last)}


def view(r: DeliveryRecord) -> dict:
    return {"id": r.id, "event_id": r.event_id, "event_type": r.event_type, "kind": r.kind,
            "campaign_id": r.campaign_id, "recipient_id": r.recipient_id, "status": r.status,
            "attempts": r.attempts, "last_code": r.last_code, "last_error": r.last_error,
            "confirmed": r.confirmed, "message_id": r.message_id, "created_at": _iso(r.created_at),
            "updated_at": _iso(r.updated_at), "sent_at": _iso(r.sent_at),
            "next_attempt_at": _iso(r.next_attempt_at)}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _uuid(name: str, value: object) -> str:
    try:
        return str(uuid.UUID(str(value))) if isinstance(value, str) else _bad(name)
    except ValueError:
        return _bad(name)


def _bad(name: str) -> str:
    raise invalid_field(name, "must be a UUID")


def _filters(filters: Mapping[str, Any]) -> dict[str, str]:
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        raise invalid_field(unknown[0], "unknown filter")
    clean: dict[str, str] = {}
    for name, value in filters.items():
        if value is None:
            continue
        if name == "status":
            if value not in STATUSES:
                raise invalid_field("status", f"must be one of {', '.join(STATUSES)}")
            clean[name] = value
        else:
            clean[name] = _uuid(name, value)
    return clean


def _decode_cursor(cursor: str | None) -> Cursor | None:
    return None if cursor is None else decode_time_cursor(cursor)
