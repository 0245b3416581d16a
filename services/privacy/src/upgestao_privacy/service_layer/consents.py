"""Cookie consents (R7.1): a signed-in user's (``privacy.self``) or an anonymous visitor's (by the random
visitor id the client keeps; issued here when it has none), per purpose, against a published policy version.

``choose`` records a change (``privacy.consents_changed.v1``, audited ``update`` of ``consent``, the changed
purposes as fields); the same choice again records nothing. ``history`` answers the current choice and every
change, newest first (the holder's stream). Nobody reads another's consents: a user reads their own (the
actor of their token), a visitor those of the visitor id they present (a random 122-bit id: knowing it is
being that visitor). ``revoke_for_request`` is a ``consent_revocation`` request's work: every optional
consent of the subject withdrawn, then the request completed (H3's ``complete_request``). Anonymous choices
are counted per client address (:data:`VISITOR_BUDGET`; 429 beyond, audited as denied).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from upgestao_kernel.errors import ServiceError, invalid_field
from upgestao_kernel.unit_of_work import UnitOfWorkPort

from ..adapters.consent_tables import consent_area
from ..domain.consents import (
    ESSENTIAL,
    OPTIONAL_PURPOSES,
    USER,
    VISITOR,
    ConsentHolder,
    ConsentsChanged,
    InvalidConsent,
    clean_purposes,
    clean_visitor_id,
    holder_id,
    new_visitor_id,
)
from ..domain.contact import Budget
from ..domain.policies import PolicyError, clean_version
from .corrections import SELF, AreaDeps, require
from .policies import ensure_seeded

RESOURCE = "consent"
BODY_FIELDS = ("purposes", "policy_version", "visitor_id")
# anonymous visitors' choices per client address (the contact channel's budgets table, keys of their own):
# enough for a busy office behind one address, not for filling the event log from a script
VISITOR_BUDGET = Budget(limit=300, window_s=600)


def _now(deps: AreaDeps) -> datetime:
    return deps.now() if deps.now is not None else datetime.now(UTC)


def _holder(uow: UnitOfWorkPort, deps: AreaDeps, visitor_id: Any, action: str, *, issue: bool
            ) -> tuple[str, str, str | None, str | None]:
    """``(kind, holder id, user id, visitor id)`` of the caller: the signed-in user, else the visitor."""
    if uow.context.actor_id is not None:
        user = require(uow, deps.permissions_of, SELF, action=action, resource_type=RESOURCE)
        return USER, holder_id(USER, user), user, None
    if visitor_id is None:
        if not issue:
            raise invalid_field("visitor_id", "is required without a signed-in user")
        visitor_id = new_visitor_id()
    try:
        visitor = clean_visitor_id(visitor_id)
    except InvalidConsent as exc:
        raise invalid_field(exc.field, exc.message) from None
    return VISITOR, holder_id(VISITOR, visitor), None, visitor


def _charge_visitor(uow: UnitOfWorkPort, now: datetime) -> None:
    """Count an anonymous choice against its client address (429 past the budget, audited as denied)."""
    repo = consent_area(uow)
    key = "consent-visitor:" + (uow.context.source_ip or "unknown")[:80]
    current = repo.budget(key)
    start = VISITOR_BUDGET.window_start(now, current[0] if current else None)
    count = current[1] if current and start == current[0] else 0
    if not VISITOR_BUDGET.allows(count):
        uow.deny(action="update", resource_type=RESOURCE, resource_id=None, subject_id=None, fields=(),
                 purpose="cookie consent (visitor, throttled)")
        raise ServiceError("too-many-requests", "Too many consent choices from this address; try again later.", 429,
                           {"retry_after": VISITOR_BUDGET.retry_after(start, now)})
    repo.set_budget(key, start, count + 1)


def _state(holder: ConsentHolder | None) -> dict[str, Any]:
    if holder is None:
        return {"purposes": {ESSENTIAL: True, **dict.fromkeys(OPTIONAL_PURPOSES, False)}, "policy_version": None}
    return {"purposes": dict(holder.purposes), "policy_version": holder.policy_version}


def choose(deps: AreaDeps, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise invalid_field("body", "must be an object")
    unknown = sorted(set(data) - set(BODY_FIELDS))
    if unknown:
        raise invalid_field(unknown[0], "unknown field")
    try:
        chosen = clean_purposes(data.get("purposes"))
    except InvalidConsent as exc:
        raise invalid_field(exc.field, exc.message) from None
    try:
        version = clean_version(data.get("policy_version"), "policy_version")
    except PolicyError as exc:
        raise invalid_field("policy_version", exc.message) from None
    with deps.unit_of_work() as uow:
        kind, hid, user_id, visitor_id = _holder(uow, deps, data.get("visitor_id"), "update", issue=True)
        if kind == VISITOR:
            _charge_visitor(uow, _now(deps))
        ensure_seeded(uow)
        policy = consent_area(uow).policy(version)
        if policy is None or policy.effective_at > _now(deps):
            raise invalid_field("policy_version", "is not a policy version in effect")
        holder = uow.load(ConsentHolder, hid) or ConsentHolder(hid)
        changed = holder.choose(kind=kind, user_id=user_id, chosen=chosen, policy_version=version)
        if changed:
            envelopes = uow.save(holder)
            uow.audit_access(action="update", resource_type=RESOURCE, resource_id=hid, subject_id=user_id,
                             fields=tuple(envelopes[-1].data["changed"]) or ("policy_version",),
                             purpose="cookie consent")
        elif user_id is not None:  # the same choice again: nothing recorded, but the user's choice was read back
            uow.audit_access(action="read", resource_type=RESOURCE, resource_id=hid, subject_id=user_id,
                             fields=("purposes",), purpose="cookie consent")
        answer = {"holder_kind": kind, **_state(holder), "recorded": changed}
        if visitor_id is not None:
            answer["visitor_id"] = visitor_id
        return answer


def history(deps: AreaDeps, visitor_id: Any = None) -> dict[str, Any]:
    with deps.unit_of_work() as uow:
        kind, hid, user_id, visitor = _holder(uow, deps, visitor_id, "read", issue=False)
        envelopes = consent_area(uow).stream(ConsentHolder.stream_id_for(hid))
        holder = ConsentHolder.replay(hid, envelopes) if envelopes else None
        items = [{"purposes": e.data["purposes"], "changed": e.data["changed"],
                  "policy_version": e.data["policy_version"], "source": e.data["source"],
                  "request_id": e.data.get("request_id"), "recorded_at": e.occurred_at.isoformat()}
                 for e in reversed(envelopes) if e.type == ConsentsChanged.type]
        if user_id is not None:
            uow.audit_access(action="read", resource_type=RESOURCE, resource_id=hid, subject_id=user_id,
                             fields=("purposes", "history"), purpose="own consents")
        answer = {"holder_kind": kind, **_state(holder), "history": items}
        if visitor is not None:
            answer["visitor_id"] = visitor
        return answer


def revoke_for_request(uow: UnitOfWorkPort, request_id: str, subject_id: str) -> list[str]:
    """Withdraw every optional consent of ``subject_id`` (a user; a customer has none), for the request
    ``request_id``; the purposes withdrawn."""
    hid = holder_id(USER, subject_id)
    holder = uow.load(ConsentHolder, hid)
    if holder is None:
        return []
    before = [k for k in OPTIONAL_PURPOSES if holder.purposes[k]]
    if holder.withdraw_all(kind=USER, user_id=subject_id, policy_version=holder.policy_version or "",
                           request_id=request_id):
        uow.save(holder)
        uow.audit_access(action="update", resource_type=RESOURCE, resource_id=hid, subject_id=subject_id,
                         fields=tuple(before), purpose=f"consent revocation request {request_id}")
    return before
