"""Correction requests (R5.1): file, list, read, approve, deny; and the notice of a decision.

Filing needs ``privacy.self`` and is always about oneself (the actor of the verified token); the new values
and the reason are sealed under the requester (audited ``create``, purpose ``correction request``).
Listing and reading: one's own corrections, or every one with ``privacy.review``; each opening of a value
is audited (purpose ``correction review`` for a reviewer, ``own correction`` for the requester). Deciding
needs ``privacy.review`` and is refused (403, audited as denied) to the requester themself; approving asks
identity to apply the change (``identity.apply_correction``, as the reviewer: their token travels in the
request's context, identity audits the ``update`` with purpose ``correction <id>``); denying needs a reason
(sealed under the requester). Each decision is audited here too and announced by
``privacy.correction_decided.v1``, whose notice (:func:`decision_notice`) e-mails the requester.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from upgestao_kernel.cursors import decode_time_cursor, encode_time_cursor
from upgestao_kernel.errors import ServiceError, conflict, forbidden, invalid_field, not_found
from upgestao_kernel.events import EventEnvelope, new_id
from upgestao_kernel.unit_of_work import UnitOfWorkPort, is_erased

from ..adapters import consent_tables as tables
from ..adapters.consent_tables import consent_area
from ..domain.corrections import (
    STATES,
    AlreadyDecided,
    Correction,
    CorrectionDecided,
    CorrectionError,
    InvalidCorrection,
    OwnCorrection,
    clean_changes,
    clean_reason,
)
from . import notices

SELF = "privacy.self"
REVIEW = "privacy.review"
RESOURCE = "correction"
MAX_LIMIT = 100
CARRIED = ("changes", "reason")  # what a correction's answer carries (the data map's names), besides each field


@dataclass(frozen=True)
class AreaDeps:
    """What the corrections, policies and consents use cases need (the mixin builds it per call)."""

    unit_of_work: Callable[[], Any]
    permissions_of: Callable[[str | None], frozenset[str]]
    identity: Any = None  # identity's RPC proxy (apply_correction, contacts, subject_ids)
    now: Callable[[], datetime] | None = None


def require(uow: UnitOfWorkPort, permissions_of: Callable[[str | None], frozenset[str]], permission: str, *,
            action: str, resource_type: str, resource_id: str | None = None, subject_id: str | None = None) -> str:
    """The actor's id, when they hold ``permission``; else 403, audited as denied."""
    actor = uow.context.actor_id
    if actor is None or permission not in permissions_of(uow.context.actor_role):
        uow.deny(action=action, resource_type=resource_type, resource_id=resource_id, subject_id=subject_id,
                 fields=(), purpose="authorization")
        raise forbidden(f"This needs the permission {permission}.")
    return actor


def check_uuid(field: str, value: Any, missing: str | None = None) -> str:
    try:
        text = str(uuid.UUID(value)) if isinstance(value, str) else None
    except ValueError:
        text = None
    if text is None or text != value:
        if missing:
            raise not_found(missing)
        raise invalid_field(field, "must be a UUID in canonical lowercase form")
    return text


def answer(exc: CorrectionError) -> ServiceError:
    if isinstance(exc, InvalidCorrection):
        return invalid_field(exc.field or "body", exc.message)
    if isinstance(exc, AlreadyDecided):
        return conflict(exc.message)
    return forbidden(exc.message)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _view(row: tables.CorrectionRow, opened: dict[str, Any] | None) -> dict[str, Any]:
    values = None
    reason = None
    if opened is not None:
        values = {name: json.loads(opened[name]) if isinstance(opened.get(name), str) else None
                  for name in row.fields}
        reason = opened.get("reason")
    return {"id": row.id, "requester_id": row.requester_id, "fields": row.fields, "status": row.status,
            "source": row.source, "changes": values, "reason": reason, "reviewer_id": row.reviewer_id,
            "decision_reason": opened.get("decision_reason") if opened is not None else None,
            "created_at": _iso(row.created_at), "decided_at": _iso(row.decided_at)}


def _open(uow: UnitOfWorkPort, rows: list[tables.CorrectionRow], purpose_of: Callable[[tables.CorrectionRow], str]
          ) -> list[dict[str, Any]]:
    """The rows' values opened (one audited opening per correction, by purpose)."""
    by_purpose: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_purpose.setdefault(purpose_of(row), []).append(index)
    opened: list[dict[str, Any] | None] = [None] * len(rows)
    for purpose, indexes in by_purpose.items():
        # a ciphertext opens only under the field name it was sealed with: the requester's reason and a
        # denial's reason are both sealed as "reason", so a denial's is its own item (and audited as read)
        items, owners = [], []
        for i in indexes:
            items.append((rows[i].requester_id, rows[i].id, dict(rows[i].sealed)))
            owners.append((i, "values"))
            if rows[i].decision_sealed.get("reason"):
                items.append((rows[i].requester_id, rows[i].id, {"reason": rows[i].decision_sealed["reason"]}))
                owners.append((i, "decision"))
        for (i, part), values in zip(owners, uow.personal.open_each(resource_type=RESOURCE, items=items,
                                                                    purpose=purpose), strict=True):
            if part == "values":
                opened[i] = {**(opened[i] or {}), **values}
            else:
                opened[i] = {**(opened[i] or {}), "decision_reason": values["reason"]}
    return [_view(row, values) for row, values in zip(rows, opened, strict=True)]


def file(deps: AreaDeps, changes: Any, reason: Any = None, source: str = "request") -> dict[str, Any]:
    """File a correction of one's own profile: ``{id, fields, status, ...}``."""
    with deps.unit_of_work() as uow:
        actor = require(uow, deps.permissions_of, SELF, action="create", resource_type=RESOURCE)
        try:
            cleaned = clean_changes(changes)
            text = clean_reason(reason)
            if source not in ("request", "profile_edit"):
                raise InvalidCorrection("source", "must be request or profile_edit")
        except CorrectionError as exc:
            raise answer(exc) from None
        correction_id = new_id()
        values: dict[str, str | None] = {name: json.dumps(value) for name, value in cleaned.items()}
        if text is not None:
            values["reason"] = text
        sealed = uow.personal.seal(subject_id=actor, resource_type=RESOURCE, resource_id=correction_id, values=values,
                                   purpose="correction request")
        correction = Correction.file(correction_id, requester_id=actor, fields=list(cleaned), source=source,
                                     sealed=sealed)
        consent_area(uow).project(uow.save(correction))
        return _view(consent_area(uow).correction(correction_id), None)  # the values are not echoed back


def list_page(deps: AreaDeps, status: Any = None, limit: Any = 50, cursor: Any = None) -> dict[str, Any]:
    """One's own corrections (every one's, with ``privacy.review``), newest first, values opened."""
    if status is not None and status not in STATES:
        raise invalid_field("status", f"must be one of {', '.join(STATES)}")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise invalid_field("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    before = decode_time_cursor(cursor) if cursor is not None else None
    with deps.unit_of_work() as uow:
        actor = require(uow, deps.permissions_of, SELF, action="list", resource_type=RESOURCE)
        reviewer = REVIEW in deps.permissions_of(uow.context.actor_role)
        rows = consent_area(uow).corrections(requester_id=None if reviewer else actor, status=status,
                                       limit=limit + 1, before=before)
        page, more = rows[:limit], len(rows) > limit
        uow.audit_access(action="list", resource_type=RESOURCE, resource_id=None,
                         subject_id=None if reviewer else actor, fields=CARRIED if page else (),
                         purpose="correction review" if reviewer else "own corrections")
        items = _open(uow, page, lambda r: "own correction" if r.requester_id == actor else "correction review")
        return {"items": items,
                "next_cursor": encode_time_cursor(page[-1].created_at, page[-1].id) if more and page else None}


def _visible(uow: UnitOfWorkPort, deps: AreaDeps, correction_id: Any, action: str) -> tuple[str, bool,
                                                                                           tables.CorrectionRow]:
    actor = require(uow, deps.permissions_of, SELF, action=action, resource_type=RESOURCE)
    cid = check_uuid("correction_id", correction_id, missing="correction")
    reviewer = REVIEW in deps.permissions_of(uow.context.actor_role)
    row = consent_area(uow).correction(cid)
    if row is None or not (reviewer or row.requester_id == actor):
        if row is not None:
            uow.deny(action=action, resource_type=RESOURCE, resource_id=cid, subject_id=row.requester_id, fields=(),
                     purpose="visibility")
        raise not_found("correction")
    return actor, reviewer, row


def get(deps: AreaDeps, correction_id: Any) -> dict[str, Any]:
    with deps.unit_of_work() as uow:
        actor, _, row = _visible(uow, deps, correction_id, "read")
        purpose = "own correction" if row.requester_id == actor else "correction review"
        uow.audit_access(action="read", resource_type=RESOURCE, resource_id=row.id, subject_id=row.requester_id,
                         fields=CARRIED, purpose=purpose)
        return _open(uow, [row], lambda r: purpose)[0]


def _reviewable(uow: UnitOfWorkPort, deps: AreaDeps, correction_id: Any) -> tuple[str, Correction]:
    reviewer = require(uow, deps.permissions_of, REVIEW, action="update", resource_type=RESOURCE,
                       resource_id=correction_id if isinstance(correction_id, str) else None)
    cid = check_uuid("correction_id", correction_id, missing="correction")
    correction = uow.load(Correction, cid)
    if correction is None:
        raise not_found("correction")
    return reviewer, correction


def _refuse_own(uow: UnitOfWorkPort, correction: Correction, exc: CorrectionError) -> ServiceError:
    if isinstance(exc, OwnCorrection):
        uow.deny(action="update", resource_type=RESOURCE, resource_id=correction.id,
                 subject_id=correction.requester_id, fields=tuple(correction.fields),
                 purpose="separation of duties: one's own correction")
    return answer(exc)


def approve(deps: AreaDeps, correction_id: Any) -> dict[str, Any]:
    """Apply the correction through identity (as the reviewer), then record the approval."""
    with deps.unit_of_work() as uow:
        reviewer, correction = _reviewable(uow, deps, correction_id)
        try:
            correction.check_approval(reviewer_id=reviewer)
        except CorrectionError as exc:
            raise _refuse_own(uow, correction, exc) from None
        sealed = {name: correction.sealed[name] for name in correction.fields}
        opened = uow.personal.open(subject_id=correction.requester_id, resource_type=RESOURCE,
                                   resource_id=correction.id, sealed=sealed, purpose=f"correction {correction.id}")
        if any(not isinstance(value, str) or is_erased(value) for value in opened.values()):
            raise conflict("The values of this correction are no longer readable (the person was erased).")
        changes = {name: json.loads(value) for name, value in opened.items()}
        deps.identity.apply_correction(correction.requester_id, changes, correction.id)
        correction.approve(reviewer_id=reviewer)
        consent_area(uow).project(uow.save(correction))
        uow.audit_access(action="update", resource_type=RESOURCE, resource_id=correction.id,
                         subject_id=correction.requester_id, fields=tuple(correction.fields),
                         purpose="correction approved")
        return _view(consent_area(uow).correction(correction.id), None)


def deny(deps: AreaDeps, correction_id: Any, reason: Any) -> dict[str, Any]:
    """Deny the correction with a reason (required; sealed under the requester)."""
    with deps.unit_of_work() as uow:
        reviewer, correction = _reviewable(uow, deps, correction_id)
        try:
            correction.check_denial(reviewer_id=reviewer)
            text = clean_reason(reason, required=True)
        except CorrectionError as exc:
            raise _refuse_own(uow, correction, exc) from None
        sealed = uow.personal.seal(subject_id=correction.requester_id, resource_type=RESOURCE,
                                   resource_id=correction.id, values={"reason": text}, purpose="correction denied")
        correction.deny(reviewer_id=reviewer, sealed_reason=sealed["reason"])
        consent_area(uow).project(uow.save(correction))
        uow.audit_access(action="update", resource_type=RESOURCE, resource_id=correction.id,
                         subject_id=correction.requester_id, fields=tuple(correction.fields),
                         purpose="correction denied")
        return {**_view(consent_area(uow).correction(correction.id), None), "decision_reason": text}


# -- the notice of a decision (the notifier asks privacy.notice) ---------------------------------------------


def contacts_of(identity: Any, ids: list[str]) -> dict[str, dict]:
    """identity.contacts(ids): ``{id: {"to", "name", "locale"}}`` (identity audits the reading)."""
    if not ids:
        return {}
    found = identity.contacts(ids) or {}
    return dict(found.get("items") or {})


def recipient(subject_id: str, contact: dict | None) -> dict[str, Any] | None:
    if not contact or not contact.get("to"):
        return None
    return {"id": subject_id, "to": contact["to"], "locale": contact.get("locale"), "name": contact.get("name"),
            "vars": {}}


def decision_notice(uow: UnitOfWorkPort, event: EventEnvelope, recipient_id: str | None, cursor: str | None,
                    deps: Any) -> dict[str, Any]:
    """The e-mail to the requester of a decided correction (kind ``correction_decided``)."""
    data = event.data
    requester = data["requester_id"]
    if recipient_id is not None and recipient_id != requester:
        raise not_found("recipient")
    reason = None
    sealed = data.get("sealed") or {}
    if sealed.get("reason"):
        reason = uow.personal.open(subject_id=requester, resource_type=RESOURCE,
                                   resource_id=event.stream_id.split("-", 1)[1], sealed={"reason": sealed["reason"]},
                                   purpose="notification")["reason"]
    identity = deps.identity
    person = recipient(requester, contacts_of(identity, [requester]).get(requester))
    if person is None:
        raise not_found("notice")
    return {"id": event.event_id, "kind": "correction_decided", "campaign_id": None,
            "data": {"correction_id": event.stream_id.split("-", 1)[1], "fields": list(data["fields"]),
                     "decision": data["decision"], "reason": reason},
            "recipients": [person], "next": None}


notices.register(CorrectionDecided.type, decision_notice)
