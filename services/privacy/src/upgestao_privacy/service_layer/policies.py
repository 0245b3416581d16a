"""Privacy-policy versions (R11.1) and their acceptances (R7.1).

* ``publish`` (``privacy.policies``): a new version; every user is e-mailed (``privacy.policy_published.v1``, a
  campaign paged over ``identity.subject_ids({"kind": "every_user"})``: :func:`published_notice`).
* ``current`` (public) and ``versions`` (the list, texts left out): no one's data, not audited.
* ``status`` (``GET /v1/me`` asks it: one statement for the versions, one for the caller's acceptances):
  ``{"current_version", "policy_acceptance_required": {"version"} | None}``.
* ``accept`` (``privacy.self``): the caller accepts a version in effect; recorded once (an event, audited
  ``update`` of ``policy_acceptance``), a second acceptance answers the first.
* ``acceptances``: the caller's history.

The first version (2023-09-05) is seeded as an event, by the system and without a campaign, the first time
any of these runs on a database that has none (:func:`ensure_seeded`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from upgestao_kernel.context import system_context
from upgestao_kernel.errors import ServiceError, conflict, invalid_field, not_found
from upgestao_kernel.events import EventEnvelope
from upgestao_kernel.eventstore import ConcurrencyError
from upgestao_kernel.unit_of_work import UnitOfWorkPort

from ..adapters import consent_tables as tables
from ..adapters.consent_tables import consent_area
from ..domain.policies import (
    SEED_EFFECTIVE_AT,
    SEED_SUMMARY,
    SEED_TEXT,
    SEED_VERSION,
    Acceptances,
    PolicyError,
    PolicyExists,
    PolicyPublished,
    PolicyVersion,
    acceptance_required,
    clean_effective_at,
    clean_version,
    current_of,
)
from . import notices
from .corrections import SELF, AreaDeps, contacts_of, recipient, require

PUBLISH = "privacy.policies"
RESOURCE = "privacy_policy"
CAMPAIGN_PAGE = 100
_CAMPAIGNS = uuid.UUID("0b6f0c1e-34d5-4e0c-b1f8-5d7f3f0a9e21")


def _now(deps: AreaDeps) -> datetime:
    return deps.now() if deps.now is not None else datetime.now(UTC)


def answer(exc: PolicyError) -> ServiceError:
    if isinstance(exc, PolicyExists):
        return conflict(exc.message)
    return invalid_field(exc.field or "body", exc.message)


def ensure_seeded(uow: UnitOfWorkPort) -> None:
    """Version 2023-09-05 (the text of ``shared/seed``) as the first version, when there is none yet."""
    area = consent_area(uow)
    if area.has_policies():
        return
    policy = PolicyVersion.publish(SEED_VERSION, effective_at=datetime.fromisoformat(SEED_EFFECTIVE_AT),
                                   text=SEED_TEXT, summary=SEED_SUMMARY, published_by=None,
                                   campaign_id=str(uuid.uuid5(_CAMPAIGNS, SEED_VERSION)), announced=False)
    area.first_time(lambda: area.project(uow.save(policy)))  # (another process may seed it at the same moment)


def seed(unit_of_work: Any) -> None:
    """Seed at start (the system acts)."""
    with unit_of_work(system_context()) as uow:
        ensure_seeded(uow)


def _summary(row: tables.PolicyRow, *, text: bool) -> dict[str, Any]:
    view = {"version": row.version, "effective_at": row.effective_at.isoformat(), "summary": row.summary,
            "published_at": row.published_at.isoformat(), "announced": row.announced}
    if text:
        view["text"] = row.text
    return view


def publish(deps: AreaDeps, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise invalid_field("body", "must be an object")
    unknown = sorted(set(data) - {"version", "effective_at", "text", "summary"})
    if unknown:
        raise invalid_field(unknown[0], "unknown field")
    with deps.unit_of_work() as uow:
        actor = require(uow, deps.permissions_of, PUBLISH, action="create", resource_type=RESOURCE)
        ensure_seeded(uow)
        try:
            version = clean_version(data.get("version"))
            effective_at = clean_effective_at(data.get("effective_at"))
            if consent_area(uow).policy(version) is not None:
                raise PolicyExists("version", f"Version {version} was published already; a version is never "
                                              "rewritten: publish a new one.")
            policy = PolicyVersion.publish(version, effective_at=effective_at, text=data.get("text"),
                                           summary=data.get("summary"), published_by=actor,
                                           campaign_id=str(uuid.uuid5(_CAMPAIGNS, version)))
        except PolicyError as exc:
            raise answer(exc) from None
        try:
            consent_area(uow).project(uow.save(policy))
        except ConcurrencyError:
            raise conflict(f"Version {version} was published already.") from None
        uow.audit_access(action="create", resource_type=RESOURCE, resource_id=version, subject_id=None,
                         fields=("version", "effective_at", "text", "summary"), purpose="privacy policy publication")
        return _summary(consent_area(uow).policy(version), text=False) | {"campaign_id": policy.campaign_id}


def _current_row(uow: UnitOfWorkPort, now: datetime) -> tables.PolicyRow | None:
    version = current_of(consent_area(uow).policy_versions(), now)
    return consent_area(uow).policy(version) if version is not None else None


def current(deps: AreaDeps) -> dict[str, Any]:
    with deps.unit_of_work() as uow:
        ensure_seeded(uow)
        row = _current_row(uow, _now(deps))
        if row is None:
            raise not_found("policy version in effect")
        return _summary(row, text=True)


def versions(deps: AreaDeps) -> dict[str, Any]:
    with deps.unit_of_work() as uow:
        ensure_seeded(uow)
        now = _now(deps)
        current_version = current_of(consent_area(uow).policy_versions(), now)
        return {"items": [{**_summary(row, text=False), "current": row.version == current_version}
                          for row in consent_area(uow).policies()]}


def version(deps: AreaDeps, version_label: Any) -> dict[str, Any]:
    with deps.unit_of_work() as uow:
        ensure_seeded(uow)
        try:
            label = clean_version(version_label)
        except PolicyError:
            raise not_found("policy version") from None
        row = consent_area(uow).policy(label)
        if row is None:
            raise not_found("policy version")
        return _summary(row, text=True)


def status(deps: AreaDeps) -> dict[str, Any]:
    """Whether the caller must accept the current version (``GET /v1/me``)."""
    with deps.unit_of_work() as uow:
        actor = uow.context.actor_id
        ensure_seeded(uow)
        current_version = current_of(consent_area(uow).policy_versions(), _now(deps))
        accepted = consent_area(uow).accepted_versions(actor) if actor is not None else set()
        return {"current_version": current_version,
                "policy_acceptance_required": acceptance_required(current_version, accepted) if actor else None}


def accept(deps: AreaDeps, version_label: Any) -> dict[str, Any]:
    with deps.unit_of_work() as uow:
        actor = require(uow, deps.permissions_of, SELF, action="update", resource_type="policy_acceptance")
        ensure_seeded(uow)
        try:
            label = clean_version(version_label)
        except PolicyError:
            raise not_found("policy version") from None
        row = consent_area(uow).policy(label)
        now = _now(deps)
        if row is None:
            raise not_found("policy version")
        if row.effective_at > now:
            raise conflict(f"Version {label} takes effect at {row.effective_at.isoformat()}: it cannot be "
                           "accepted before.")
        acceptances = uow.load(Acceptances, actor) or Acceptances(actor)
        recorded = acceptances.accept(label, now)
        if recorded:
            consent_area(uow).project(uow.save(acceptances))
        uow.audit_access(action="update" if recorded else "read", resource_type="policy_acceptance",
                         resource_id=label, subject_id=actor, fields=("version",), purpose="privacy policy acceptance")
        return {"version": label, "accepted_at": acceptances.accepted[label], "recorded": recorded}


def acceptances_of(deps: AreaDeps) -> dict[str, Any]:
    with deps.unit_of_work() as uow:
        actor = require(uow, deps.permissions_of, SELF, action="read", resource_type="policy_acceptance")
        history = uow.load(Acceptances, actor)
        uow.audit_access(action="read", resource_type="policy_acceptance", resource_id=None, subject_id=actor,
                         fields=("version", "accepted_at"), purpose="own policy acceptances")
        items = [{"version": v, "accepted_at": at} for v, at in (history.accepted.items() if history else ())]
        return {"items": list(reversed(items))}


# -- the announcement of a new version (a campaign to every user) -------------------------------------------


def _page_of(answer: Any) -> tuple[list[str], str | None]:
    answer = answer or {}
    ids = answer.get("ids", answer.get("items", answer.get("subject_ids"))) or []
    return [str(i) for i in ids], answer.get("next", answer.get("next_cursor"))


def published_notice(uow: UnitOfWorkPort, event: EventEnvelope, recipient_id: str | None, cursor: str | None,
                     deps: Any) -> dict[str, Any]:
    """Every user (a page of them; ``next`` the cursor of the next page), or ``recipient_id`` alone."""
    data = event.data
    if not data.get("announced"):
        raise not_found("notice")
    identity = deps.identity
    if recipient_id is not None:
        ids, next_cursor = [recipient_id], None
    else:
        ids, next_cursor = _page_of(identity.subject_ids({"kind": "every_user"}, CAMPAIGN_PAGE, cursor))
    found = contacts_of(identity, ids)
    recipients = [r for r in (recipient(i, found.get(i)) for i in ids) if r is not None]
    if recipient_id is not None and not recipients:
        raise not_found("recipient")
    version_label = event.stream_id.split("-", 1)[1]
    return {"id": event.event_id, "kind": "policy_published", "campaign_id": data["campaign_id"],
            "data": {"version": version_label, "effective_at": data["effective_at"], "summary": data["summary"],
                     "policy_url": None},
            "recipients": recipients, "next": next_cursor}


notices.register(PolicyPublished.type, published_notice)
