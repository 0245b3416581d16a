"""Data subjects (LGPD art. 18): what identity holds about a person, and their erasure, for privacy only.

Every method here answers privacy's broker user alone (``uow.context.caller_service == "privacy"``, the
user RabbitMQ checked, never a header; ``contacts`` integrations' too): anyone else gets 403, audited as
denied. Privacy calls them while it works a data subject's request, the DPO's token (when a person is
behind the call) riding along.

* ``export_subject`` -- the profile opened (audited ``export``, purpose ``data subject access``), the photo,
  the role and its permissions, the sessions; a blocked subject's data too (the one read blocking allows).
* ``erase_subject`` / ``privacy.erasure_requested.v1`` -- deletion, anonymisation or blocking
  (``domain/subjects.py`` says what each leaves), confirmed with ``identity.subject_erased.v1``;
  ``unblock_subject`` -- the DPO lifts a blocking.
* ``contacts`` -- address, name and language of users and customers (audited, purpose ``notification``);
  the integrations service may ask it too (issue 15: the admins told of an integration's disabling).
* ``find_subject`` -- whose an e-mail address is (through the blind index).
* ``apply_correction`` -- a correction the DPO approved, applied as that reviewer (``privacy.review``).
* ``subject_ids`` -- the ids a breach criterion names (``every_user``, ``every_customer``).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from datetime import date
from typing import Any

from upgestao_kernel.errors import conflict, field_error, forbidden, invalid_field, not_found, validation_error

from ..adapters.ports import IdentityUnitOfWork, UserRecord
from ..domain import people
from ..domain.customers import Customer
from ..domain.datamap import CUSTOMER_PROFILE_FIELDS, USER_PROFILE_FIELDS
from ..domain.locales import DEFAULT_LOCALE
from ..domain.subjects import BLOCKING, CUSTOMER, MODES, SHREDDING, STATUS_OF, USER, Erasure, without_indexes
from ..domain.users import User
from . import customers as customer_cases
from . import sessions as session_cases
from . import users as user_cases
from .auth import ACCOUNT, RESET_ACCOUNT
from .authorization import require
from .profiles import open_row, opened_to_view

PRIVACY = "privacy"
INTEGRATIONS = "integrations"  # may ask for contacts (issue 15)
RESOURCE = "data_subject"
ACCESS = "data subject access"
NOTIFICATION = "notification"
MAX_CONTACTS = 500
MAX_IDS_PAGE = 1000
CRITERIA = {"every_user": USER, "every_customer": CUSTOMER}


def only_privacy(uow: IdentityUnitOfWork, action: str, subject_id: object = None) -> None:
    """Refuse (403, audited as denied) any caller but privacy's broker user."""
    if uow.context.caller_service != PRIVACY:
        uow.deny(action=action, resource_type=RESOURCE, resource_id=_loggable(subject_id),
                 subject_id=_loggable(subject_id), fields=(), purpose="authorization")
        raise forbidden("Only the privacy service asks this.")


def _loggable(value: object) -> str | None:
    """An id worth writing in an audit record (a UUID), else nothing: a caller's junk is not recorded."""
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def checked_id(name: str, value: object) -> str:
    checked = _loggable(value)
    if checked is None:
        raise invalid_field(name, "must be a UUID")
    return checked


def _checked_reference(name: str, value: object, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise invalid_field(name, "must be an id of at most 64 characters")
    return value


# -- export --------------------------------------------------------------------------


def export(uow: IdentityUnitOfWork, subject_id: object) -> dict[str, Any]:
    only_privacy(uow, "export", subject_id)
    sid = checked_id("subject_id", subject_id)
    out: dict[str, Any] = {"service": "identity", "subject_id": sid, "kind": None}
    row = uow.users.get(sid)
    if row is not None:
        out.update(_export_user(uow, row))
    else:
        customer = uow.customers.get(sid)
        if customer is not None:
            profile = open_row(uow, customer, CUSTOMER_PROFILE_FIELDS, resource_type=CUSTOMER, purpose=ACCESS,
                               action="export")
            out.update(kind=CUSTOMER, status=customer.status, profile=profile,
                       created_at=customer.created_at.isoformat(), updated_at=customer.updated_at.isoformat())
    uow.audit_access(action="export", resource_type=RESOURCE, resource_id=sid, subject_id=sid,
                     fields=sorted(k for k in out if k not in ("service", "subject_id", "kind")), purpose=ACCESS)
    return out


def _export_user(uow: IdentityUnitOfWork, row: UserRecord) -> dict[str, Any]:
    profile = open_row(uow, row, USER_PROFILE_FIELDS, resource_type=USER, purpose=ACCESS, action="export")
    photo = None
    if row.photo_id is not None:
        blob = uow.photos.content(row.photo_id)
        opened = uow.personal.open(subject_id=row.id, resource_type=USER, resource_id=row.id,
                                   sealed={"photo": blob}, purpose=ACCESS, action="export")
        if isinstance(opened["photo"], str):
            photo = {"content_type": row.photo_content_type, "content_b64": opened["photo"]}
    role = uow.roles.get(row.role)
    sessions = [{"id": s.id, "status": s.status, "created_at": s.created_at.isoformat(),
                 "last_refreshed_at": s.last_refreshed_at.isoformat() if s.last_refreshed_at else None,
                 "expires_at": s.expires_at.isoformat(),
                 "revoked_at": s.revoked_at.isoformat() if s.revoked_at else None,
                 "revoked_reason": s.revoked_reason} for s in uow.sessions.of_user(row.id)]
    return {"kind": USER, "status": row.status, "role": row.role,
            "permissions": sorted(role.permissions) if role is not None else [], "locale": row.locale,
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
            "profile": profile, "photo": photo, "sessions": sessions}


# -- erasure ---------------------------------------------------------------------------


def erase(uow: IdentityUnitOfWork, subject_id: object, mode: object = "deletion",
          request_id: object = None) -> dict[str, Any]:
    """The ``erase_subject`` RPC: privacy's broker user only, checked, then :func:`perform`."""
    only_privacy(uow, "erase", subject_id)
    return _erase_checked(uow, subject_id, mode, _checked_reference("request_id", request_id, required=False))


def erase_requested(uow: IdentityUnitOfWork, data: Mapping[str, Any]) -> dict[str, Any]:
    """``privacy.erasure_requested.v1`` (request_id, subject_id, mode), which the handler's entrypoint took from
    privacy's events exchange after checking its sender was privacy's broker user (``reliable_handler``): a
    malformed one is refused (the handler's error parks it after its retries)."""
    return _erase_checked(uow, data.get("subject_id"), data.get("mode"),
                          _checked_reference("request_id", data.get("request_id"), required=True))


def _erase_checked(uow: IdentityUnitOfWork, subject_id: object, mode: object,
                   request_id: str | None) -> dict[str, Any]:
    sid = checked_id("subject_id", subject_id)
    if mode not in MODES:
        raise invalid_field("mode", f"must be one of {', '.join(MODES)}")
    return perform(uow, sid, str(mode), request_id)


def perform(uow: IdentityUnitOfWork, sid: str, mode: str, request_id: str | None) -> dict[str, Any]:
    """Erase (or block) ``sid`` as ``mode`` asks unless that was done already (or something stronger), and
    confirm: ``identity.subject_erased.v1`` with every request, even one answered before."""
    erasure = uow.load(Erasure, sid) or Erasure.start(sid)
    user = uow.load(User, sid)
    customer = uow.load(Customer, sid) if user is None else None
    kind = USER if user is not None else CUSTOMER if customer is not None else erasure.kind
    revoked: list[str] = []
    if erasure.does(mode):
        status = STATUS_OF[mode]
        if mode in SHREDDING:
            uow.personal.shred(subject_id=sid, resource_type=RESOURCE, purpose=f"erasure ({mode})")
            for aggregate in (user, customer):
                if aggregate is not None:
                    uow.event_log.rewrite(aggregate.stream_id, without_indexes)
            if user is not None:
                _forget_user(uow, sid)
        else:
            uow.audit_access(action="update", resource_type=kind or RESOURCE, resource_id=sid, subject_id=sid,
                             fields=["status"], purpose="blocking at the data subject's request")
        if user is not None:
            revoked = session_cases.revoke_all(uow, sid, "blocked" if mode == BLOCKING else "erased")
            if user.erase(mode, status):
                uow.save(user)
        if customer is not None and customer.erase(mode, status):
            uow.save(customer)
    erasure.confirm(request_id, mode, kind)
    uow.save(erasure)
    return {"subject_id": sid, "kind": kind, "mode": mode, "erased": True, "revoked_session_ids": revoked}


def unblock(uow: IdentityUnitOfWork, subject_id: object, request_id: object = None) -> dict[str, Any]:
    """The DPO lifts a blocking (privacy's broker user, for an actor holding ``privacy.review``): the subject's
    data is processed again, their status back to what it was; ``identity.subject_unblocked.v1``. A subject
    not blocked (never, or erased or anonymised since) is 409."""
    only_privacy(uow, "update", subject_id)
    sid = checked_id("subject_id", subject_id)
    reference = _checked_reference("request_id", request_id, required=False)
    require(uow, "privacy.review", action="update", resource_type=RESOURCE, resource_id=sid, subject_id=sid)
    erasure = uow.load(Erasure, sid)
    if erasure is None or not erasure.unblock(reference):
        raise conflict("This person's data is not blocked.")
    for aggregate in (uow.load(User, sid), uow.load(Customer, sid)):
        if aggregate is not None and aggregate.unblock():
            uow.save(aggregate)
    uow.save(erasure)
    uow.audit_access(action="update", resource_type=erasure.kind or RESOURCE, resource_id=sid, subject_id=sid,
                     fields=["status"], purpose="blocking lifted by the DPO")
    return {"subject_id": sid, "kind": erasure.kind, "blocked": False}


def _forget_user(uow: IdentityUnitOfWork, user_id: str) -> None:
    """The operational rows of a user (outside the event log): password hash, photo, notices, the networks
    they logged in from, and the login budgets keyed by the blind index of their e-mail."""
    row = uow.users.get(user_id)
    if row is not None and row.email_index:
        for prefix in (ACCOUNT, RESET_ACCOUNT):
            uow.login_budgets.clear(prefix + row.email_index)
    uow.credentials.delete(user_id)
    uow.photos.delete_of(user_id)
    uow.notices.drop_all_of(user_id)
    uow.known_networks.forget_all(user_id)


# -- contacts and identification -----------------------------------------------------------


def contacts(uow: IdentityUnitOfWork, subject_ids: object) -> dict[str, Any]:
    """``{"items": {id: {"to", "name", "locale"}}}`` for the subjects identity can write to (an erased or
    anonymised one, or an id it never held, is absent). One audited opening per subject, purpose
    ``notification``. A blocked subject is still told (of their own request's answer, of a breach). Asked by
    privacy, and by integrations (the admins told of an integration's disabling, issue 15)."""
    if uow.context.caller_service != INTEGRATIONS:
        only_privacy(uow, "read")
    if not isinstance(subject_ids, list | tuple) or not all(isinstance(i, str) for i in subject_ids):
        raise invalid_field("subject_ids", "must be a list of ids")
    wanted = list(dict.fromkeys(subject_ids))
    if len(wanted) > MAX_CONTACTS:
        raise invalid_field("subject_ids", f"at most {MAX_CONTACTS} ids at a time")
    found: list[tuple[str, str, str | None, str | None, str]] = []  # id, kind, sealed email, sealed name, locale
    for sid in wanted:
        if _loggable(sid) != sid:
            continue
        user = uow.users.get(sid)
        if user is not None:
            if user.email is not None:
                found.append((sid, USER, user.email, user.full_name, user.locale))
            continue
        customer = uow.customers.get(sid)
        if customer is not None and customer.email is not None:
            found.append((sid, CUSTOMER, customer.email, customer.full_name, DEFAULT_LOCALE))
    opened = uow.personal.open_each(
        resource_type=RESOURCE, purpose=NOTIFICATION,
        items=[(sid, sid, {"email": email, "full_name": name}) for sid, _, email, name, _ in found])
    items: dict[str, dict[str, Any]] = {}
    for (sid, _kind, _, _, locale), values in zip(found, opened, strict=True):
        view = opened_to_view(values)
        if view.get("email"):
            items[sid] = {"to": view["email"], "name": view.get("full_name"), "locale": locale}
    return {"items": items}


def find_subject(uow: IdentityUnitOfWork, email: object) -> dict[str, Any]:
    """Whose ``email`` is (a user's first, then a customer's), through the blind index: ``{"subject_id",
    "kind"}``, both None when nobody's. Audited (``read``, purpose ``data subject identification``)."""
    only_privacy(uow, "read")
    try:
        index = uow.personal.blind_index("email", people.normalise_email(email))
    except people.InvalidValue as exc:
        raise invalid_field("email", exc.message) from None
    user = uow.users.by_email_index(index)
    subject_id, kind = (user.id, USER) if user is not None else (None, None)
    if subject_id is None:
        subject_id = uow.customers.id_with("email_index", index)
        kind = CUSTOMER if subject_id is not None else None
    uow.audit_access(action="read", resource_type=RESOURCE, resource_id=subject_id, subject_id=subject_id,
                     fields=["email"], purpose="data subject identification")
    return {"subject_id": subject_id, "kind": kind}


# -- corrections ---------------------------------------------------------------------------


def apply_correction(uow: IdentityUnitOfWork, subject_id: object, changes: object, correction_id: object, *,
                     today: date, minimum_age: int) -> dict[str, Any]:
    """A correction the reviewer (the actor of the call, holding ``privacy.review``) approved: applied as
    them, audited ``update`` with the purpose ``correction <id>``; the changed field names. Nobody applies a
    correction of their own data (a second person reviews it)."""
    only_privacy(uow, "update", subject_id)
    sid = checked_id("subject_id", subject_id)
    cid = _checked_reference("correction_id", correction_id, required=True)
    require(uow, "privacy.review", action="update", resource_type=RESOURCE, resource_id=sid, subject_id=sid)
    if uow.context.actor_id == sid:
        uow.deny(action="update", resource_type=RESOURCE, resource_id=sid, subject_id=sid, fields=(),
                 purpose="separation of duties: a correction of one's own data")
        raise forbidden("Separation of duties: a correction of your own data is applied by another reviewer.")
    if not isinstance(changes, Mapping) or not changes:
        raise validation_error([field_error("changes", "must be an object naming at least one field")])
    purpose = f"correction {cid}"
    if uow.users.get(sid) is not None or uow.load(User, sid) is not None:
        if "photo" in changes:
            raise invalid_field("photo", "a photo is not corrected through a request: upload it")
        result = user_cases.apply_changes(uow, sid, dict(changes), today=today, minimum_age=minimum_age,
                                          purpose=purpose)
        return {"subject_id": sid, "kind": USER, "changed": result["changed"]}
    if uow.load(Customer, sid) is None:
        raise not_found("data subject")
    changed = customer_cases.apply_changes(uow, sid, dict(changes), today=today, purpose=purpose)
    return {"subject_id": sid, "kind": CUSTOMER, "changed": changed}


# -- breach criteria ------------------------------------------------------------------------


def subject_ids(uow: IdentityUnitOfWork, criterion: object, limit: object = MAX_IDS_PAGE,
                cursor: object = None) -> dict[str, Any]:
    """A page of the ids ``criterion`` names: ``{"kind": "every_user"}`` (active staff users) or
    ``{"kind": "every_customer"}`` (customers not anonymised nor blocked); ``{"items": [id...], "next"}``."""
    only_privacy(uow, "list")
    kind = criterion.get("kind") if isinstance(criterion, Mapping) else None
    if kind not in CRITERIA:
        raise invalid_field("criterion", f"kind must be one of {', '.join(CRITERIA)}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_IDS_PAGE:
        raise invalid_field("limit", f"must be an integer from 1 to {MAX_IDS_PAGE}")
    after = _decode(cursor) if cursor is not None else None
    fetch = uow.users.ids_page if CRITERIA[kind] == USER else uow.customers.ids_page
    rows = fetch(limit + 1, after)
    page = rows[:limit]
    uow.audit_access(action="list", resource_type=CRITERIA[kind], resource_id=None, subject_id=None, fields=(),
                     purpose=f"data subjects of a criterion ({kind})")
    return {"items": [row_id for _, row_id in page],
            "next": _encode(page[-1]) if len(rows) > limit else None}


def _encode(position: tuple) -> str:
    created_at, last_id = position
    return base64.urlsafe_b64encode(json.dumps([created_at.isoformat(), last_id]).encode()).decode()


def _decode(cursor: object) -> tuple:
    from datetime import datetime

    try:
        created_at, last_id = json.loads(base64.urlsafe_b64decode(str(cursor).encode()))
        return datetime.fromisoformat(created_at), str(last_id)
    except (ValueError, TypeError, binascii.Error):
        raise invalid_field("cursor", "is not a cursor this method returned") from None

