"""Data-subject requests (LGPD art. 18): filing, the DPO's queue and actions, the contact channel.

Who may do what (the caller's role's permissions, from identity, checked again after the gateway):

* ``privacy.self`` -- file for oneself (verified by the session: ``pending`` at once), list and read one's
  own requests, cancel one's own open request;
* ``privacy.review`` (the DPO) -- list every request (filters ``state``, ``type``), the overdue queue, read
  any, start, deny (a reason), cancel, extend the due date (a reason), complete one it answers by hand;
* nobody signed in -- the contact channel: file with an address (always 202), then give the code back.

Someone else's request is answered 404 (as a request that does not exist); a refusal is 403, audited as
denied. Every transition is an event of the ``request-<id>`` stream and an audit record (ids and field
names); free texts (a reason, the contact's address and message) are sealed in the vault.

Other areas use :func:`get_request`, :func:`complete_request` and :func:`fail_request` on their own unit of
work (an access bundle ready, an erasure confirmed, consents withdrawn).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from upgestao_kernel.config import int_setting
from upgestao_kernel.cursors import decode_time_cursor, encode_time_cursor
from upgestao_kernel.errors import ServiceError, invalid_field, not_found
from upgestao_kernel.events import new_id
from upgestao_kernel.unit_of_work import is_erased

from ..adapters.request_tables import NoticeRow, RequestRow, SqlRequests
from ..domain import requests as domain
from ..domain.contact import (
    CODE_TTL_S,
    MAX_ATTEMPTS,
    Budget,
    CodeExpired,
    code_material,
    is_code,
    is_email,
    new_code,
)
from ..domain.requests import (
    CONTACT,
    ROUTED_STATES,
    STATES,
    TYPES,
    Actor,
    DataSubjectRequest,
    InvalidValue,
    clean_text,
)
from . import notices

SELF = "privacy.self"
REVIEW = "privacy.review"
RESOURCE = "privacy_request"
SYSTEM = "system"
NOTIFIER_KIND_VERIFICATION = "privacy_request_verification"
NOTIFIER_KIND_COMPLETED = "privacy_request_completed"
DEFAULT_LOCALE = "pt-BR"
MAX_LIMIT = 100
ANSWERED_BY_PRIVACY = ("confirmation", "sharing_info", "consent_info")
THIRD_PARTY_POLICIES_VAR = "PRIVACY_THIRD_PARTY_POLICIES"
DOWNLOAD_NOTICE_TTL_S = 7 * 24 * 3600  # how long a completion's notice keeps its download link (the link's own life)

CONSENT_INFO = {
    "pt-BR": (
        "Você pode recusar ou retirar o seu consentimento a qualquer momento, sem custo. Os cookies e "
        "tratamentos essenciais (necessários para entrar, manter a sua sessão segura e cumprir a lei) não "
        "dependem de consentimento. Se você recusar os opcionais (estatísticas de uso e personalização), "
        "a plataforma continua funcionando por completo: apenas não mediremos como você a usa e não "
        "adaptaremos o conteúdo às suas preferências. A recusa não afeta o que foi feito antes dela."),
    "en": (
        "You may refuse or withdraw your consent at any time, at no cost. Essential cookies and processing "
        "(needed to sign in, keep your session safe and comply with the law) do not depend on consent. If "
        "you refuse the optional ones (usage statistics and personalisation), the platform keeps working in "
        "full: we only stop measuring how you use it and stop adapting content to your preferences. "
        "Refusing does not affect what was done before."),
}


class Throttled(Exception):
    def __init__(self, seconds: int) -> None:
        super().__init__(f"retry after {seconds} s")
        self.seconds = seconds


# -- settings -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestSettings:
    code_ttl_s: int = CODE_TTL_S  # PRIVACY_CONTACT_CODE_TTL_S
    per_address: Budget = Budget(10, 3600)  # PRIVACY_CONTACT_ADDRESS_LIMIT filings per client address an hour
    per_email: Budget = Budget(3, 3600)  # PRIVACY_CONTACT_EMAIL_LIMIT filings per e-mail address an hour
    # PRIVACY_THIRD_PARTY_POLICIES (the exports' setting too): {"<recipient>": "<privacy-policy URL>"} -- R9.1
    third_party_policies: Mapping[str, str] = field(default_factory=dict)


def load_request_settings(environ: Mapping[str, str] | None = None) -> RequestSettings:
    env = os.environ if environ is None else environ
    raw = (env.get(THIRD_PARTY_POLICIES_VAR) or "").strip()
    try:
        parties = json.loads(raw) if raw else {}
        if not isinstance(parties, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        from upgestao_kernel.config import ConfigError

        raise ConfigError(THIRD_PARTY_POLICIES_VAR, f"a JSON object of recipient -> policy URL: {exc}") from None
    return RequestSettings(
        code_ttl_s=int_setting(env, "PRIVACY_CONTACT_CODE_TTL_S", CODE_TTL_S, 1, 3600),
        per_address=Budget(int_setting(env, "PRIVACY_CONTACT_ADDRESS_LIMIT", 10, 1, 100_000), 3600),
        per_email=Budget(int_setting(env, "PRIVACY_CONTACT_EMAIL_LIMIT", 3, 1, 1000), 3600),
        third_party_policies={str(k): str(v) for k, v in parties.items()},
    )


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- functions for the other areas -------------------------------------------------------------------------


def get_request(uow: Any, request_id: str) -> DataSubjectRequest | None:
    """The request (type, subject_id, state, due_at, history...), or ``None``."""
    if not isinstance(request_id, str) or not request_id:
        return None
    return uow.load(DataSubjectRequest, request_id)


def complete_request(uow: Any, request_id: str, *, outcome: str = "completed", reason: str | None = None,
                     download_url: str | None = None, answer: dict | None = None,
                     now: datetime | None = None, download_ttl_s: int = DOWNLOAD_NOTICE_TTL_S) -> DataSubjectRequest:
    """Close an ``in_progress`` request as answered (``outcome`` completed; ``reason`` an optional note) or
    denied (``reason`` required), as the unit's actor (the system, for an event handler). Emits
    ``privacy.request_completed.v1`` (the requester is written to). Raises ``InvalidTransition`` (409),
    ``InvalidValue`` (422), 404 for no such request."""
    if outcome not in domain.OUTCOMES:
        raise InvalidValue("outcome", f"must be one of {', '.join(domain.OUTCOMES)}")
    now = now or utcnow()
    request = _load(uow, request_id)
    text = clean_text("reason", reason, domain.MAX_REASON, required=outcome == domain.DENIED)
    sealed = _seal_reason(uow, request, text)
    if outcome == domain.DENIED:
        request.deny(sealed_reason=str(sealed), by=_actor(uow), now=now)
    else:
        request.complete(by=_actor(uow), now=now, answer=answer, has_download=bool(download_url),
                         sealed_reason=sealed)
    _save(uow, request, action="update", fields=("state",) + (("reason",) if sealed else ()),
          purpose=f"data subject request {outcome}")
    if download_url and outcome == domain.COMPLETED:
        # the link is a credential: only the notice keeps it (sealed), for as long as the link may be used
        announced = uow.recorded[-1]
        sealed_url = uow.personal.seal(subject_id=request.vault_subject, resource_type="notice",
                                       resource_id=announced.event_id, values={"download_url": download_url},
                                       purpose="data subject request delivery")["download_url"]
        repo = SqlRequests(uow)
        repo.forget_expired_notices(now)
        repo.add_notice(NoticeRow(id=announced.event_id, kind=NOTIFIER_KIND_COMPLETED, request_id=request.id,
                                  vault_subject=request.vault_subject, sealed={"download_url": sealed_url},
                                  created_at=now, expires_at=now + timedelta(seconds=download_ttl_s)))
    return request


def fail_request(uow: Any, request_id: str, what_failed: str, *, now: datetime | None = None) -> DataSubjectRequest:
    """Put a request in ``error``, naming the step that failed (no personal value); the DPO may start it again."""
    now = now or utcnow()
    request = _load(uow, request_id)
    request.fail(what_failed, by=_actor(uow), now=now)
    _save(uow, request, action="update", fields=("state", "what_failed"), purpose="data subject request failed")
    return request


# -- helpers ----------------------------------------------------------------------------------------------


def _actor(uow: Any) -> Actor:
    return Actor(uow.context.actor_id, uow.context.actor_role)


def _load(uow: Any, request_id: Any) -> DataSubjectRequest:
    request = get_request(uow, request_id) if _is_uuid(request_id) else None
    if request is None:
        raise not_found("request")
    return request


def _is_uuid(value: Any) -> bool:
    import uuid

    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _save(uow: Any, request: DataSubjectRequest, *, action: str, fields: tuple[str, ...], purpose: str) -> None:
    """Append the request's new events, project them, and audit the transition (ids and field names)."""
    envelopes = uow.save(request)
    SqlRequests(uow).project(envelopes)
    uow.audit_access(action=action, resource_type=RESOURCE, resource_id=request.id, subject_id=request.subject_id,
                     fields=fields, purpose=purpose)


def _seal_reason(uow: Any, request: DataSubjectRequest, text: str | None) -> str | None:
    if text is None:
        return None
    return uow.personal.seal(subject_id=request.vault_subject, resource_type=RESOURCE, resource_id=request.id,
                             values={"reason": text}, purpose="data subject request reason",
                             action="update")["reason"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise invalid_field("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return value


def _when(name: str, value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        pass
    raise invalid_field(name, "must be an ISO-8601 date-time with a zone (years 1 to 9999 in UTC)")


def row_view(row: RequestRow | DataSubjectRequest, now: datetime) -> dict[str, Any]:
    """The list's item: ids, type, state, dates and days left (no personal value)."""
    assert row.due_at is not None and row.received_at is not None
    return {
        "id": row.id, "type": row.type, "state": row.state, "channel": row.channel, "subject_id": row.subject_id,
        "subject_kind": row.subject_kind, "requester_id": row.requester_id, "received_at": row.received_at.isoformat(),
        "due_at": row.due_at.isoformat(), "days_left": domain.days_left(row.due_at, now),
        "overdue": domain.is_overdue(row.state, row.due_at, now), "closed_at": _iso(row.closed_at),
    }


# -- the use cases ----------------------------------------------------------------------------------------


class RequestCases:
    """The requests area's use cases. ``identity``: what privacy asks of identity (``find_subject``,
    ``contacts``); ``now``: the clock (injected in tests)."""

    def __init__(self, unit_of_work: Callable[[], Any], permissions_of: Callable[[str | None], Any],
                 identity: Any = None, now: Callable[[], datetime] = utcnow,
                 settings: RequestSettings | None = None) -> None:
        self._unit_of_work = unit_of_work
        self._permissions_of = permissions_of
        self.identity = identity
        self.now = now
        self.settings = settings or RequestSettings()

    # -- access
    def _may(self, uow: Any, permission: str) -> bool:
        ctx = uow.context
        return bool(ctx.actor_id) and permission in self._permissions_of(ctx.actor_role)

    def _require(self, uow: Any, permission: str, *, action: str, request_id: str | None = None,
                 subject_id: str | None = None) -> None:
        if not self._may(uow, permission):
            uow.deny(action=action, resource_type=RESOURCE, resource_id=request_id, subject_id=subject_id,
                     fields=(), purpose="authorization")
            raise ServiceError("forbidden", f"Your role does not grant {permission}.", 403,
                               {"permission": permission})

    def _visible(self, uow: Any, request_id: Any, *, action: str = "read") -> tuple[DataSubjectRequest, bool]:
        """The request if the caller may see it (their own, or a reviewer's); 404 otherwise: another person's
        audited as denied (a refusal the answer does not reveal), a missing one not (nothing was refused)."""
        request = get_request(uow, request_id) if _is_uuid(request_id) else None
        if request is None:
            raise not_found("request")
        reviewer = self._may(uow, REVIEW)
        if reviewer or (self._may(uow, SELF) and request.concerns(uow.context.actor_id)):
            return request, reviewer
        uow.deny(action=action, resource_type=RESOURCE, resource_id=request.id, subject_id=None, fields=(),
                 purpose="authorization")
        raise not_found("request")

    # -- filing by a signed-in person
    def file(self, type: Any) -> dict:
        now = self.now()
        with self._unit_of_work() as uow:
            self._require(uow, SELF, action="create")
            request = DataSubjectRequest.file(new_id(), type=type, subject_id=uow.context.actor_id,
                                              by=_actor(uow), now=now)
            _save(uow, request, action="create", fields=("type",), purpose="data subject request filed")
            return row_view(request, now)

    # -- reading
    def list(self, filters: Mapping[str, Any] | None = None, limit: Any = 50, cursor: Any = None) -> dict:
        filters = dict(filters or {})
        unknown = sorted(set(filters) - {"state", "type", "mine"})
        if unknown:
            raise invalid_field(unknown[0], "is not a filter (state, type, mine)")
        state, type_ = filters.get("state"), filters.get("type")
        if state is not None and state not in STATES:
            raise invalid_field("state", f"must be one of {', '.join(STATES)}")
        if type_ is not None and type_ not in TYPES:
            raise invalid_field("type", f"must be one of {', '.join(TYPES)}")
        limit = _limit(limit)
        after = decode_time_cursor(cursor) if cursor else None
        now = self.now()
        with self._unit_of_work() as uow:
            self._require(uow, SELF, action="list")
            everyone = self._may(uow, REVIEW) and not filters.get("mine")
            rows = SqlRequests(uow).list(subject_id=None if everyone else uow.context.actor_id,
                                         states=(state,) if state else (), type=type_, limit=limit + 1, after=after)
            uow.audit_access(action="list", resource_type=RESOURCE, resource_id=None,
                             subject_id=None if everyone else uow.context.actor_id,
                             fields=tuple(sorted(k for k in ("state", "type") if filters.get(k))),
                             purpose="data subject requests")
        page = rows[:limit]
        return {"items": [row_view(r, now) for r in page],
                "next_cursor": encode_time_cursor(page[-1].due_at, page[-1].id) if len(rows) > limit else None}

    def overdue(self, limit: Any = 50, cursor: Any = None) -> dict:
        """The DPO's queue: the verified open requests by due date (so the most overdue first), and how many
        of them are overdue in all."""
        limit = _limit(limit)
        after = decode_time_cursor(cursor) if cursor else None
        now = self.now()
        with self._unit_of_work() as uow:
            self._require(uow, REVIEW, action="list")
            repo = SqlRequests(uow)
            rows = repo.list(states=ROUTED_STATES, limit=limit + 1, after=after)
            overdue_count = repo.count(states=ROUTED_STATES, due_by=now)
            uow.audit_access(action="list", resource_type=RESOURCE, resource_id=None, subject_id=None,
                             fields=("due_at",), purpose="overdue data subject requests")
        page = rows[:limit]
        items = [row_view(r, now) for r in page]
        return {"items": items, "overdue_count": overdue_count,
                "next_cursor": encode_time_cursor(page[-1].due_at, page[-1].id) if len(rows) > limit else None}

    def get(self, request_id: Any) -> dict:
        now = self.now()
        with self._unit_of_work() as uow:
            request, reviewer = self._visible(uow, request_id)
            view = self._detail(uow, request, now)
            if reviewer and request.sealed_contact:
                view["contact"] = _opened_contact(uow, request)
            return view

    def _detail(self, uow: Any, request: DataSubjectRequest, now: datetime) -> dict:
        """The request with its history (reasons opened: audited) and what was answered."""
        sealed = [(i, t.sealed_reason) for i, t in enumerate(request.history) if t.sealed_reason]
        reasons: dict[int, Any] = {}
        if sealed:
            opened = uow.personal.open_many(subject_id=request.vault_subject, resource_type=RESOURCE,
                                            items=[(request.id, {"reason": s}) for _, s in sealed],
                                            purpose="data subject request history")
            reasons = {i: None if is_erased(o.get("reason")) else o.get("reason")
                       for (i, _), o in zip(sealed, opened, strict=True)}
        else:
            uow.audit_access(action="read", resource_type=RESOURCE, resource_id=request.id,
                             subject_id=request.subject_id, fields=("state", "history"),
                             purpose="data subject request")
        view = row_view(request, now)
        view.update(
            outcome=request.outcome, answer=request.answer, what_failed=request.what_failed,
            history=[{"at": t.at.isoformat(), "by_id": t.by_id, "by_role": t.by_role, "from": t.previous,
                      "to": t.state, "event": t.event, "reason": reasons.get(i), "note": t.note}
                     for i, t in enumerate(request.history)],
        )
        progress = _erasure_progress(uow, request.id)
        if progress is not None:
            view["erasure_progress"] = progress
        return view

    # -- the DPO's actions (and the requester's cancel)
    def start(self, request_id: Any) -> dict:
        now = self.now()
        with self._unit_of_work() as uow:
            self._require(uow, REVIEW, action="update", request_id=request_id if _is_uuid(request_id) else None)
            request = _load(uow, request_id)
            request.start(by=_actor(uow), now=now)
            _save(uow, request, action="update", fields=("state",), purpose="data subject request started")
            if request.type in ANSWERED_BY_PRIVACY:
                answer = self._answer(uow, request)
                request.complete(by=_actor(uow), now=now, answer=answer)
                _save(uow, request, action="update", fields=("state", "answer"),
                      purpose="data subject request completed")
            return self._detail(uow, request, now)

    def complete(self, request_id: Any, note: Any = None) -> dict:
        """The DPO closes an ``in_progress`` request answered by hand (a correction), with an optional note."""
        now = self.now()
        with self._unit_of_work() as uow:
            self._require(uow, REVIEW, action="update", request_id=request_id if _is_uuid(request_id) else None)
            request = complete_request(uow, request_id, reason=note, now=now)
            return self._detail(uow, request, now)

    def deny(self, request_id: Any, reason: Any) -> dict:
        now = self.now()
        text = clean_text("reason", reason, domain.MAX_REASON)
        with self._unit_of_work() as uow:
            self._require(uow, REVIEW, action="update", request_id=request_id if _is_uuid(request_id) else None)
            request = _load(uow, request_id)
            request.deny(sealed_reason=str(_seal_reason(uow, request, text)), by=_actor(uow), now=now)
            _save(uow, request, action="update", fields=("state", "reason"), purpose="data subject request denied")
            return self._detail(uow, request, now)

    def cancel(self, request_id: Any, reason: Any = None) -> dict:
        now = self.now()
        text = clean_text("reason", reason, domain.MAX_REASON, required=False)
        with self._unit_of_work() as uow:
            request, _ = self._visible(uow, request_id, action="update")
            request.cancel(by=_actor(uow), now=now, sealed_reason=_seal_reason(uow, request, text))
            _save(uow, request, action="update", fields=("state",) + (("reason",) if text else ()),
                  purpose="data subject request canceled")
            return self._detail(uow, request, now)

    def extend(self, request_id: Any, due_at: Any, reason: Any) -> dict:
        now = self.now()
        when = _when("due_at", due_at)
        text = clean_text("reason", reason, domain.MAX_REASON)
        with self._unit_of_work() as uow:
            self._require(uow, REVIEW, action="update", request_id=request_id if _is_uuid(request_id) else None)
            request = _load(uow, request_id)
            request.extend(when, sealed_reason=str(_seal_reason(uow, request, text)), by=_actor(uow), now=now)
            _save(uow, request, action="update", fields=("due_at", "reason"),
                  purpose="data subject request due date extended")
            return self._detail(uow, request, now)

    # -- what privacy answers itself
    def _answer(self, uow: Any, request: DataSubjectRequest) -> dict:
        if request.type == "consent_info":
            return {"kind": "consent_info", "text": dict(CONSENT_INFO)}
        summary = self._summary(uow, request)
        if request.type == "confirmation":  # a known person (a user, a customer): the platform holds their data
            services = sorted({a["service"] for a in summary["accesses"]} if summary else set())
            return {"kind": "confirmation", "holds_data": request.subject_id is not None, "services": services}
        shares = (summary or {}).get("shared_with", [])
        return {"kind": "sharing_info", "recipients": [
            {"recipient": s["recipient"], "name": s.get("name"), "service": s["service"], "fields": list(s["fields"]),
             "count": s["count"], "first_at": s["first_at"], "last_at": s["last_at"],
             "privacy_policy_url": s.get("privacy_policy_url")} for s in shares]}

    def _summary(self, uow: Any, request: DataSubjectRequest) -> dict | None:
        """The audit log's summary of the subject (who accessed, with whom it was shared: each third party's
        name and privacy-policy URL, R9.1), audited."""
        if request.subject_id is None:
            return None
        from ..adapters.audit_store import records_of_subject
        from .audit_queries import summarise
        from .third_parties import describe_shares

        uow.audit_access(action="audit_query", resource_type="audit_log", resource_id=None,
                         subject_id=request.subject_id, fields=("subject_id",),
                         purpose=f"data subject request {request.type}")
        summary = summarise(request.subject_id, records_of_subject(uow.conn, request.subject_id))
        describe_shares(uow.conn, summary["shared_with"], self.settings.third_party_policies)
        for entry in (*summary["accesses"], *summary["shared_with"]):
            for key in ("first_at", "last_at"):
                if isinstance(entry.get(key), datetime):
                    entry[key] = entry[key].isoformat()
        return summary

    # -- the contact channel
    def contact(self, email: Any, type: Any, message: Any = None) -> dict:
        """File through the contact channel: always ``{"id", "status": "accepted"}`` (202), whether or not the
        address is anyone's; a 6-digit code goes to the address. 429 when the client address filed too often."""
        if not is_email(email):
            raise invalid_field("email", "must be an e-mail address")
        request_type = domain.clean_type(type)
        text = clean_text("message", message, domain.MAX_MESSAGE, required=False)
        address = str(email).strip()
        now = self.now()
        request_id = new_id()
        try:
            with self._unit_of_work() as uow:
                repo = SqlRequests(uow)
                if not self._charge(uow, repo, now, address):
                    return {"id": request_id, "status": "accepted"}  # said the same: nothing sent
                code = new_code()
                code_hash = uow.personal.blind_index("contact_code", code_material(request_id, code))
                values = {"email": address} | ({"message": text} if text else {})
                sealed = uow.personal.seal(subject_id=request_id, resource_type=RESOURCE, resource_id=request_id,
                                           values=values, purpose="data subject request (contact channel)")
                expires_at = now + timedelta(seconds=self.settings.code_ttl_s)
                request = DataSubjectRequest.file_by_contact(request_id, type=request_type, sealed=sealed,
                                                             code_hash=code_hash, code_expires_at=expires_at, now=now)
                envelopes = uow.save(request)
                repo.project(envelopes)
                announced = envelopes[-1]  # the verification requested: the notice's id
                sealed_code = uow.personal.seal(subject_id=request_id, resource_type="notice",
                                                resource_id=announced.event_id, values={"code": code},
                                                purpose="data subject request verification delivery")
                repo.forget_expired_notices(now)
                repo.add_notice(NoticeRow(id=announced.event_id, kind=NOTIFIER_KIND_VERIFICATION,
                                          request_id=request_id, vault_subject=request_id,
                                          sealed={"email": sealed["email"], "code": sealed_code["code"]},
                                          created_at=now, expires_at=expires_at))
                uow.audit_access(action="create", resource_type=RESOURCE, resource_id=request_id, subject_id=None,
                                 fields=("type", *sorted(values)), purpose="data subject request filed (contact)")
        except Throttled as exc:
            raise ServiceError("too-many-requests", "Too many requests from this address; try again later.", 429,
                               {"retry_after": exc.seconds}) from None
        return {"id": request_id, "status": "accepted"}

    def _charge(self, uow: Any, repo: SqlRequests, now: datetime, address: str) -> bool:
        """Count one filing of the client address (429 past its budget) and of the e-mail address
        (``False`` past its budget: accepted in words, nothing sent)."""
        repo.forget_idle_budgets(now - timedelta(seconds=max(self.settings.per_address.window_s,
                                                             self.settings.per_email.window_s)))
        keys = (("addr:" + (uow.context.source_ip or "unknown"), self.settings.per_address),
                ("email:" + uow.personal.blind_index("contact_email", address)[:90], self.settings.per_email))
        for n, (key, budget) in enumerate(keys):
            current = repo.budget(key)
            start = budget.window_start(now, current[0] if current else None)
            count = current[1] if current and start == current[0] else 0
            if not budget.allows(count):
                uow.deny(action="create", resource_type=RESOURCE, resource_id=None, subject_id=None, fields=(),
                         purpose="data subject request filed (contact, throttled)")
                if n == 0:
                    raise Throttled(budget.retry_after(start, now))
                return False
            repo.set_budget(key, start, count + 1)
        return True

    def verify_contact(self, request_id: Any, code: Any) -> dict:
        """Give the code back: ``pending`` and routed to the DPO. Wrong: 422 with the attempts left; the last
        wrong one kills the code (403 ``code-exhausted`` from then on); expired: 410; used: 409."""
        if not is_code(code):
            raise invalid_field("code", "must be the 6 digits sent by e-mail")
        now = self.now()
        failure: Exception | None = None
        with self._unit_of_work() as uow:
            request = get_request(uow, request_id) if _is_uuid(request_id) else None
            if request is None or request.channel != CONTACT:
                raise not_found("request")
            repo = SqlRequests(uow)
            try:
                outcome = request.verify(uow.personal.blind_index("contact_code", code_material(request.id, code)),
                                         now=now)
            except CodeExpired as exc:
                repo.drop_notices_of(request.id)  # the code's copy does not outlive it
                failure = exc
                outcome = "expired"
            if outcome == "wrong":
                repo.project(uow.save(request))
                uow.deny(action="update", resource_type=RESOURCE, resource_id=request.id, subject_id=None,
                         fields=("code",), purpose="data subject request verification (wrong code)")
                if request.verification.exhausted:
                    repo.drop_notices_of(request.id)
                    uow.audit_access(action="update", resource_type=RESOURCE, resource_id=request.id, subject_id=None,
                                     fields=("state",), purpose="data subject request canceled (code exhausted)")
                    failure = _exhausted()
                else:
                    failure = _wrong_code(request.verification.attempts_left)
            elif outcome == "verified":
                opened = uow.personal.open(subject_id=request.id, resource_type=RESOURCE, resource_id=request.id,
                                           sealed={"email": request.sealed_contact.get("email")},
                                           purpose="data subject request verification")
                found = self.identity.find_subject(opened["email"]) if not is_erased(opened.get("email")) else {}
                request.verified(subject_id=(found or {}).get("subject_id"), subject_kind=(found or {}).get("kind"),
                                 now=now)
                _save(uow, request, action="update", fields=("state", "subject_id"),
                      purpose="data subject request verified")
                repo.drop_notices_of(request.id)
                result = {"id": request.id, "state": request.state, "type": request.type,
                          "due_at": _iso(request.due_at), "days_left": request.days_left(now)}
        if failure is not None:
            raise failure
        return result

    # -- notices
    def notice(self, notice_id: Any, recipient_id: Any = None, cursor: Any = None) -> dict:
        with self._unit_of_work() as uow:
            return notices.fetch(uow, notice_id, recipient_id, cursor,
                                 notices.NoticeDeps(now=self.now(), identity=self.identity))


def _opened_contact(uow: Any, request: DataSubjectRequest) -> dict[str, Any]:
    """What the person wrote through the contact channel, for the DPO to answer (audited)."""
    sealed = {k: v for k, v in request.sealed_contact.items() if v is not None}
    opened = uow.personal.open(subject_id=request.id, resource_type=RESOURCE, resource_id=request.id, sealed=sealed,
                               purpose="data subject request review") if sealed else {}
    return {name: None if is_erased(opened.get(name)) else opened.get(name) for name in ("email", "message")}


def _wrong_code(attempts_left: int) -> ServiceError:
    return ServiceError("invalid-code", f"The code is wrong; {attempts_left} attempt(s) left.", 422,
                        {"errors": [{"field": "code", "message": "is wrong"}], "attempts_left": attempts_left})


def _exhausted() -> ServiceError:
    return ServiceError("code-exhausted", f"{MAX_ATTEMPTS} wrong codes: this code is dead; file the request again.",
                        403, {"attempts_left": 0})


def _erasure_progress(uow: Any, request_id: str) -> Any:
    """H6's erasure progress for the request, when that area provides it."""
    try:
        from . import erasures  # type: ignore[attr-defined]
    except ImportError:
        return None
    progress = getattr(erasures, "erasure_progress", None)
    return progress(uow, request_id) if progress is not None else None


# -- the notices of this area (privacy.notice dispatches on the event type) --------------------------------


def _verification_notice(uow: Any, envelope: Any, recipient_id: Any, cursor: Any, deps: notices.NoticeDeps) -> dict:
    repo = SqlRequests(uow)
    row = repo.notice(envelope.event_id)
    if row is None or row.expires_at <= deps.now:
        raise not_found("notice")
    if recipient_id is not None and recipient_id != row.request_id:
        raise not_found("recipient")
    opened = uow.personal.open(subject_id=row.vault_subject, resource_type="notice", resource_id=row.id,
                               sealed=row.sealed, purpose=notices.PURPOSE)
    if is_erased(opened.get("email")) or is_erased(opened.get("code")) or not opened.get("email"):
        raise not_found("notice")
    return {"id": envelope.event_id, "kind": NOTIFIER_KIND_VERIFICATION, "campaign_id": None,
            "data": {"code": opened["code"], "request_type": envelope.data["request_type"],
                     "expires_at": row.expires_at.isoformat()},
            "recipients": [{"id": row.request_id, "to": opened["email"], "locale": DEFAULT_LOCALE, "name": None,
                            "vars": {}}],
            "next": None}


def _completed_notice(uow: Any, envelope: Any, recipient_id: Any, cursor: Any, deps: notices.NoticeDeps) -> dict:
    request_id = envelope.stream_id.split("-", 1)[1]
    request = get_request(uow, request_id)
    if request is None:
        raise not_found("notice")
    data = envelope.data
    reason = None
    sealed_reason = (data.get("sealed") or {}).get("reason")
    download_url = None
    if data.get("has_download"):
        row = SqlRequests(uow).notice(envelope.event_id)
        if row is None or row.expires_at <= deps.now:
            raise not_found("notice")  # the link's time is over: an e-mail without it would mislead
        download_url = uow.personal.open(subject_id=row.vault_subject, resource_type="notice", resource_id=row.id,
                                         sealed=row.sealed, purpose=notices.PURPOSE)["download_url"]
        if is_erased(download_url):
            raise not_found("notice")
    if request.subject_id is not None:
        contact = ((deps.identity.contacts([request.subject_id]) or {}).get("items") or {}).get(request.subject_id)
        if not contact or not contact.get("to"):
            raise not_found("notice")  # erased, or nobody to write to
        uow.audit_access(action="read", resource_type="notice", resource_id=envelope.event_id,
                         subject_id=request.subject_id, fields=("to", "name", "locale"), purpose=notices.PURPOSE)
        recipient = {"id": request.subject_id, "to": contact["to"], "locale": contact.get("locale") or DEFAULT_LOCALE,
                     "name": contact.get("name"), "vars": {}}
        if sealed_reason:
            reason = uow.personal.open(subject_id=request.vault_subject, resource_type="notice",
                                       resource_id=envelope.event_id, sealed={"reason": sealed_reason},
                                       purpose=notices.PURPOSE)["reason"]
    else:
        sealed = {"email": request.sealed_contact.get("email")}
        if sealed_reason:
            sealed["reason"] = sealed_reason
        opened = uow.personal.open(subject_id=request.id, resource_type="notice", resource_id=envelope.event_id,
                                   sealed=sealed, purpose=notices.PURPOSE)
        if is_erased(opened.get("email")) or not opened.get("email"):
            raise not_found("notice")
        recipient = {"id": request.id, "to": opened["email"], "locale": DEFAULT_LOCALE, "name": None, "vars": {}}
        reason = opened.get("reason")
    if recipient_id is not None and recipient_id != recipient["id"]:
        raise not_found("recipient")
    return {"id": envelope.event_id, "kind": NOTIFIER_KIND_COMPLETED, "campaign_id": None,
            "data": {"request_id": request.id, "request_type": request.type, "outcome": data["outcome"],
                     "reason": None if is_erased(reason) else reason, "download_url": download_url,
                     "completed_at": data["at"], "due_at": _iso(request.due_at)},
            "recipients": [recipient], "next": None}


notices.register(domain.RequestVerificationRequested.type, _verification_notice)
notices.register(domain.RequestCompleted.type, _completed_notice)
