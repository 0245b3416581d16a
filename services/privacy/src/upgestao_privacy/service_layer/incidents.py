"""The breach procedure's use cases (R6.1; LGPD art. 48, ANPD Resolution 15/2024): record, list, show (with the
notice's progress per recipient), confirm; and the breach notice the notifier asks for.

Who: every use case but the notice needs ``privacy.incidents`` (the DPO); anyone else gets 403, audited as
denied. The notice answers the notifier's broker user only (``uow.context.caller_service``, never a header).

Audit: recording seals the texts (one ``create`` record, field names only), showing opens them (``read``),
listing is a ``list``, confirming an ``update`` of ``state`` (and a ``create`` of ``delay_reasons`` when given
then); the notice opens the texts (purpose ``notification``) and records each address handed out
(``read`` of the recipient's ``email``, purpose ``notification``). Every record holds ids and field names only.

Confirming resolves the affected people *outside* any transaction (identity and messaging are asked page by
page), then appends the confirmation at the version the incident was read at: two confirmations at once make
one notice, the other is answered 409. A second confirmation is a 409 too: nothing is ever sent twice.
Progress comes from the notifier's delivery records (``notifier.campaign`` / ``notifier.deliveries``), read
with the DPO's own token (they need ``notifications.read``, which the DPO holds).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from upgestao_kernel.cursors import decode_time_cursor, encode_time_cursor
from upgestao_kernel.errors import ServiceError, conflict, invalid_field, not_found
from upgestao_kernel.events import new_id
from upgestao_kernel.eventstore import ConcurrencyError

from ..adapters.incident_repository import incidents_of
from ..domain.business_days import deadline_status
from ..domain.incidents import (
    CHANNEL_CUSTOMERS,
    CONFIRMED,
    EVERY_CUSTOMER,
    EVERY_USER,
    IDS,
    LISTS,
    RETENTION_YEARS,
    SEALED_FIELDS,
    BreachNoticeRequested,
    Incident,
    IncidentError,
    check_uuid,
    parse_input,
)
from .notices import register

PERMISSION = "privacy.incidents"
RESOURCE = "incident"
PURPOSE = "breach procedure"
NOTICE_PURPOSE = "notification"
NOTIFIER = "notifier"
RESOLVE_PAGE = 1_000  # ids asked of identity / messaging at a time
NOTICE_PAGE = 200  # recipients per page of the notice
MAX_LIMIT = 200
PROGRESS_PAGE = 200

PermissionsOf = Callable[[str | None], frozenset[str]]


@dataclass
class IncidentDeps:
    """What the use cases reach: a unit of work with ``uow.incidents``, the role table, the clock, and the
    other services (nameko proxies in the service, fakes in the tests)."""

    unit_of_work: Callable[[], Any]
    permissions_of: PermissionsOf
    now: Callable[[], datetime]
    identity: Any
    messaging: Any
    notifier: Any


def _error(exc: IncidentError) -> ServiceError:
    if exc.field is None:
        return conflict(exc.message)
    return invalid_field(exc.field, exc.message)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _add_years(value: datetime, years: int) -> datetime:
    try:
        return value.replace(year=value.year + years)
    except ValueError:  # 29 February
        return value.replace(year=value.year + years, day=28)


def _page_of(answer: Any) -> tuple[list[str], str | None]:
    """The ids and next cursor of a page of identity's ``subject_ids`` or messaging's ``customer_ids``."""
    if not isinstance(answer, Mapping):
        raise ServiceError("unexpected-answer", "A directory answered something that is not a page.", 502)
    items = answer.get("items", answer.get("ids"))
    if not isinstance(items, list):
        raise ServiceError("unexpected-answer", "A directory answered a page without items.", 502)
    following = answer.get("next", answer.get("next_cursor"))
    return [str(i) for i in items], following


class IncidentCases:
    def __init__(self, deps: IncidentDeps) -> None:
        self.deps = deps

    # -- who may

    def _check(self, uow: Any, action: str, resource_id: str | None) -> None:
        ctx = uow.context
        if not (ctx.actor_id and PERMISSION in self.deps.permissions_of(ctx.actor_role)):
            uow.deny(action=action, resource_type=RESOURCE, resource_id=resource_id, subject_id=None, fields=(),
                     purpose="authorization")
            raise ServiceError("forbidden", f"Your role does not grant {PERMISSION}.", 403,
                               {"permission": PERMISSION})

    @staticmethod
    def _id(value: Any) -> str:
        try:
            return check_uuid("incident_id", value)
        except IncidentError:
            raise not_found("incident") from None

    # -- record

    def record(self, body: Any) -> dict:
        now = self.deps.now()
        with self.deps.unit_of_work() as uow:
            self._check(uow, "create", None)
            try:
                data = parse_input(body, now)
            except IncidentError as exc:
                raise _error(exc) from None
            incident_id = new_id()
            values = {name: json.dumps(data.texts[name], ensure_ascii=False) if name in LISTS else data.texts[name]
                      for name in SEALED_FIELDS}
            sealed = uow.personal.seal(subject_id=incident_id, resource_type=RESOURCE, resource_id=incident_id,
                                       values=values, purpose=PURPOSE)
            incident = Incident.record(incident_id, data, sealed)
            uow.incidents.project(uow.save(incident))
            row = uow.incidents.get(incident_id)
            return self._view(row, now, texts=self._opened(values))

    # -- read

    def list(self, limit: Any = 50, cursor: Any = None) -> dict:
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise invalid_field("limit", f"must be an integer from 1 to {MAX_LIMIT}")
        before = decode_time_cursor(cursor) if cursor is not None else None
        now = self.deps.now()
        with self.deps.unit_of_work() as uow:
            self._check(uow, "list", None)
            rows = uow.incidents.page(limit + 1, before)
            uow.audit_access(action="list", resource_type=RESOURCE, resource_id=None, subject_id=None, fields=(),
                             purpose=PURPOSE)
        more = len(rows) > limit
        rows = rows[:limit]
        return {"items": [self._view(r, now) for r in rows],
                "next_cursor": encode_time_cursor(rows[-1]["recorded_at"], rows[-1]["id"]) if more else None}

    def get(self, incident_id: Any, progress_cursor: Any = None, progress_limit: Any = PROGRESS_PAGE) -> dict:
        if not isinstance(progress_limit, int) or isinstance(progress_limit, bool) or not (
                1 <= progress_limit <= MAX_LIMIT):
            raise invalid_field("limit", f"must be an integer from 1 to {MAX_LIMIT}")
        now = self.deps.now()
        with self.deps.unit_of_work() as uow:
            self._check(uow, "read", incident_id if isinstance(incident_id, str) else None)
            iid = self._id(incident_id)
            row = uow.incidents.get(iid)
            if row is None:
                raise not_found("incident")
            opened = uow.personal.open(subject_id=iid, resource_type=RESOURCE, resource_id=iid,
                                       sealed=row["sealed"], purpose=PURPOSE)
        view = self._view(row, now, texts=self._opened(opened))
        view["progress"] = self._progress(row, progress_cursor, progress_limit)
        return view

    def _progress(self, row: Mapping[str, Any], cursor: Any, limit: int) -> dict:
        """The notice's progress: counts by delivery state and a page of per-recipient states, from the
        notifier's delivery records (ids and states only)."""
        total = row["affected_count"] or 0
        empty = {"queued": 0, "sending": 0, "sent": 0, "soft_failed": 0, "hard_failed": 0, "suppressed": 0}
        if row["state"] != CONFIRMED or not row["campaign_id"]:
            return {"campaign_id": None, "recipients_total": total, "deliveries_total": 0, "not_yet_queued": total,
                    "counts": empty, "recipients": [], "next_cursor": None}
        try:
            campaign = self.deps.notifier.campaign(row["campaign_id"])
            counts, delivered = {**empty, **campaign.get("counts", {})}, int(campaign.get("total", 0))
        except ServiceError as exc:
            if exc.status != 404:  # no delivery queued yet
                raise
            counts, delivered = empty, 0
        page = self.deps.notifier.deliveries({"campaign_id": row["campaign_id"]}, limit, cursor)
        recipients = [{"recipient_id": d["recipient_id"], "status": d["status"], "attempts": d["attempts"],
                       "last_code": d.get("last_code"), "sent_at": d.get("sent_at"),
                       "updated_at": d.get("updated_at")} for d in page.get("items", [])]
        return {"campaign_id": row["campaign_id"], "recipients_total": total, "deliveries_total": delivered,
                "not_yet_queued": max(total - delivered, 0), "counts": counts, "recipients": recipients,
                "next_cursor": page.get("next_cursor")}

    @staticmethod
    def _opened(values: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in SEALED_FIELDS:
            value = values.get(name)
            if name in LISTS and isinstance(value, str):
                value = json.loads(value)
            elif not isinstance(value, str | list) and value is not None:
                value = None  # a shredded key (never expected: incidents are kept)
            out[name] = value
        return out

    def _view(self, row: Mapping[str, Any], now: datetime, texts: Mapping[str, Any] | None = None) -> dict:
        view = {
            "id": row["id"], "state": row["state"], "categories": list(row["categories"]),
            "affected": {"kind": row["affected_kind"], "channel": row["affected_channel"],
                         "ids_count": row["explicit_count"]},
            "affected_count": row["affected_count"],
            "occurred_at": _iso(row["occurred_at"]), "detected_at": _iso(row["detected_at"]),
            "recorded_at": _iso(row["recorded_at"]), "recorded_by": row["recorded_by"],
            "confirmed_at": _iso(row["confirmed_at"]), "confirmed_by": row["confirmed_by"],
            "campaign_id": row["campaign_id"], "notice_id": row["notice_id"],
            "deadline": deadline_status(row["deadline_at"], now, row["confirmed_at"]),
            "keep_until": _iso(_add_years(row["recorded_at"], RETENTION_YEARS)),
        }
        if texts is not None:
            view.update(texts)
        return view

    # -- confirm

    def confirm(self, incident_id: Any, delay_reasons: Any = None) -> dict:
        now = self.deps.now()
        with self.deps.unit_of_work() as uow:
            self._check(uow, "update", incident_id if isinstance(incident_id, str) else None)
            iid = self._id(incident_id)
            incident = uow.load(Incident, iid)
            if incident is None:
                raise not_found("incident")
            if incident.state == CONFIRMED:
                raise conflict("The incident is confirmed already: its notice was requested once.")
            if delay_reasons is not None and (not isinstance(delay_reasons, str) or not delay_reasons.strip()
                                              or len(delay_reasons) > 4000):
                raise invalid_field("delay_reasons", "must be a non-empty text of at most 4000 characters")
            assert incident.deadline_at is not None
            if now > incident.deadline_at and delay_reasons is None and incident.sealed.get("delay_reasons") is None:
                raise _error(IncidentError("delay_reasons", "is required: the 3 business days to notify have "
                                                            "passed (LGPD art. 48 §1 VI: the reasons of the delay)"))
            affected = incident.affected
            version = incident.version
        people = self._resolve(affected)
        with self.deps.unit_of_work() as uow:
            incident = uow.load(Incident, iid)
            if incident is None or incident.version != version or incident.state == CONFIRMED:
                raise conflict("The incident is confirmed already: its notice was requested once.")
            delay_sealed = None
            if delay_reasons is not None:
                delay_sealed = uow.personal.seal(subject_id=iid, resource_type=RESOURCE, resource_id=iid,
                                                 values={"delay_reasons": delay_reasons.strip()},
                                                 purpose=PURPOSE)["delay_reasons"]
            try:
                incident.confirm(people, new_id(), now, delay_sealed=delay_sealed)
            except IncidentError as exc:
                raise _error(exc) from None
            try:
                uow.incidents.project(uow.save(incident))
            except ConcurrencyError:
                raise conflict("The incident is confirmed already: its notice was requested once.") from None
            uow.audit_access(action="update", resource_type=RESOURCE, resource_id=iid, subject_id=None,
                             fields=("state",), purpose=PURPOSE)
            row = uow.incidents.get(iid)
        return self._view(row, now)

    def _resolve(self, affected: Any) -> list[str]:
        """The affected people's ids: as recorded, or every page of the criterion's directory."""
        if affected.kind == IDS:
            return list(affected.ids)
        people: list[str] = []
        cursor = None
        while True:
            if affected.kind == EVERY_USER:
                answer = self.deps.identity.subject_ids({"kind": "every_user"}, RESOLVE_PAGE, cursor)
            elif affected.kind == EVERY_CUSTOMER:
                answer = self.deps.identity.subject_ids({"kind": "every_customer"}, RESOLVE_PAGE, cursor)
            elif affected.kind == CHANNEL_CUSTOMERS:
                answer = self.deps.messaging.customer_ids(affected.channel, RESOLVE_PAGE, cursor)
            else:  # pragma: no cover - the domain admits no other kind
                raise ValueError(affected.kind)
            ids, cursor = _page_of(answer)
            people.extend(ids)
            if not cursor or not ids:
                return list(dict.fromkeys(people))

    # -- the notice (for the notifier)

    def notice(self, uow: Any, notice_id: Any, recipient_id: Any = None, cursor: Any = None) -> dict:
        """The ``breach_notice`` of the notice event ``notice_id`` (a BreachNoticeRequested), in the notice
        protocol: a page of recipients from ``cursor`` (an offset), or ``recipient_id`` alone."""
        if uow.context.caller_service != NOTIFIER:
            uow.deny(action="read", resource_type="notice", resource_id=str(notice_id)[:64], subject_id=None,
                     fields=(), purpose=NOTICE_PURPOSE)
            raise ServiceError("forbidden", "Only the notifier may fetch a notice.", 403)
        incidents = incidents_of(uow)
        row = incidents.by_notice(notice_id) if isinstance(notice_id, str) else None
        if row is None:
            raise not_found("notice")
        iid = row["id"]
        if recipient_id is not None:
            if not isinstance(recipient_id, str) or not incidents.affects(iid, recipient_id):
                raise not_found("recipient")
            ids = [recipient_id]
            following = None
        else:
            try:
                offset = int(cursor) if cursor is not None else 0
            except (TypeError, ValueError):
                raise invalid_field("cursor", "not a cursor this notice gave") from None
            if offset < 0:
                raise invalid_field("cursor", "not a cursor this notice gave")
            ids = incidents.people(iid, offset, NOTICE_PAGE + 1)
            following = str(offset + NOTICE_PAGE) if len(ids) > NOTICE_PAGE else None
            ids = ids[:NOTICE_PAGE]
        texts = self._opened(uow.personal.open(subject_id=iid, resource_type=RESOURCE, resource_id=iid,
                                               sealed=row["sealed"], purpose=NOTICE_PURPOSE))
        contacts = (self.deps.identity.contacts(ids) or {}).get("items", {}) if ids else {}
        recipients = []
        for sid in ids:
            contact = contacts.get(sid)
            if not contact or not contact.get("to"):
                continue  # erased, or no address: nobody to write to
            uow.audit_access(action="read", resource_type="notice", resource_id=str(notice_id), subject_id=sid,
                             fields=("email",), purpose=NOTICE_PURPOSE)
            recipients.append({"id": sid, "to": contact["to"], "locale": contact.get("locale"),
                               "name": contact.get("name"), "vars": {}})
        data = {"incident_id": iid, "occurred_at": _iso(row["occurred_at"]), "detected_at": _iso(row["detected_at"]),
                "nature_of_data": texts["nature_of_data"] or [], "people_affected": texts["people_affected"] or "",
                "technical_measures": texts["technical_measures"] or "", "risks": texts["risks"] or "",
                "delay_reasons": texts["delay_reasons"], "measures_taken": texts["measures_taken"] or "",
                "what_to_do": texts["what_to_do"] or [], "dpo_contact": texts["dpo_contact"]}
        return {"id": str(notice_id), "kind": "breach_notice", "campaign_id": row["campaign_id"], "data": data,
                "recipients": recipients, "next": following}


def _deps_identity(deps: Any) -> Any:
    if isinstance(deps, Mapping):
        return deps["identity"]
    return deps.identity


def build_breach_notice(uow: Any, event: Any, recipient_id: Any = None, cursor: Any = None, deps: Any = None) -> dict:
    """The registered builder of ``privacy.breach_notice_requested.v1`` (:mod:`.notices`): ``event`` the notice
    event (an envelope, its message, or its id), ``deps`` anything with the identity proxy (``.identity`` or
    ``["identity"]``)."""
    notice_id = getattr(event, "event_id", None) or (event.get("event_id") if isinstance(event, Mapping) else event)
    cases = IncidentCases(IncidentDeps(unit_of_work=lambda: None, permissions_of=lambda _: frozenset(),
                                       now=lambda: datetime.now(UTC), identity=_deps_identity(deps), messaging=None,
                                       notifier=None))
    return cases.notice(uow, notice_id, recipient_id, cursor)


register(BreachNoticeRequested.type, build_breach_notice)
