"""Staff users: register, read, list, edit (own profile and as admin), deactivate, photo."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

from upgestao_kernel.errors import ServiceError, conflict, field_error, not_found, validation_error
from upgestao_kernel.events import new_id

from ..adapters.photo_pool import PhotosBusy, PhotoWorkers
from ..adapters.ports import IdentityUnitOfWork, NoticeRecord, UserRecord
from ..domain.datamap import USER_PROFILE_FIELDS
from ..domain.duties import check_role_assignment
from ..domain.errors import ComplianceRoleAssignment, OwnRoleChange
from ..domain.locales import DEFAULT_LOCALE, checked_locale
from ..domain.notices import EMAIL_CHANGE_NOTICE_TTL_S, EMAIL_CHANGED
from ..domain.photos import PhotoRejected, SanitizedPhoto, sanitize_photo
from ..domain.users import ANONYMISED, BLOCKED, ERASED, User
from . import sessions as session_cases
from .authorization import (
    actor_record,
    blocked,
    current_role,
    is_system,
    require,
    require_actor,
    self_editable_fields,
)
from .pagination import keyset_page
from .profiles import REQUIRED_USER, clean_fields, open_row

RESOURCE = "user"
# what a user's representation holds besides their profile fields: their role, and the language messages
# to them are written in (a preference, not personal data: never sealed, editable by every user for
# themselves, whatever their role's self-editable fields)
NOT_PROFILE_FIELDS = ("role", "locale")


def view(uow: IdentityUnitOfWork, row: UserRecord, *, purpose: str, action: str = "read") -> dict[str, Any]:
    opened = open_row(uow, row, USER_PROFILE_FIELDS, resource_type=RESOURCE, purpose=purpose, action=action)
    return {"id": row.id, **opened, "role": row.role, "status": row.status, "locale": row.locale,
            "has_photo": row.photo_id is not None, "created_at": row.created_at.isoformat()}


def register(uow: IdentityUnitOfWork, data: dict, *, password_hash: str, today: date, minimum_age: int,
             authorize: bool = True, required: tuple[str, ...] = REQUIRED_USER) -> dict:
    """Create a staff user (``password_hash`` already checked against the policy and hashed)."""
    if authorize:
        require(uow, "users.create", action="create", resource_type=RESOURCE)
    role = data.get("role")
    _check_assignment(uow, None, None, role)
    locale = checked_locale(data["locale"]) if data.get("locale") is not None else DEFAULT_LOCALE
    profile = {k: v for k, v in data.items() if k not in NOT_PROFILE_FIELDS}
    values = clean_fields(profile, allowed=USER_PROFILE_FIELDS, required=required, today=today,
                          minimum_age=minimum_age)
    email_index = uow.personal.blind_index("email", values["email"])
    if uow.users.email_taken(email_index):
        raise conflict("A user with this e-mail already exists.", field="email")
    user_id = new_id()
    sealed = uow.personal.seal(subject_id=user_id, resource_type=RESOURCE, resource_id=user_id,
                               values={k: v for k, v in values.items() if v is not None},
                               purpose="staff account registration", action="create")
    user = User.register(user_id, role=role or "", sealed=sealed, email_index=email_index)
    user.change_locale(locale)  # an event only for a language other than the default
    uow.save(user)
    uow.credentials.add(user_id, password_hash, uow.recorded[-1].occurred_at)
    uow.audit_access(action="create", resource_type="credential", resource_id=user_id, subject_id=user_id,
                     fields=["password"], purpose="staff account registration")
    return {"id": user_id}


def get_as_creator(uow: IdentityUnitOfWork, user_id: str) -> dict:
    """The representation of a user just created in this unit of work (authorised by ``users.create``)."""
    return view(uow, uow.users.get(user_id), purpose="staff account registration")


def get(uow: IdentityUnitOfWork, user_id: str) -> dict:
    actor = require_actor(uow)
    if actor != user_id:
        require(uow, "users.read", action="read", resource_type=RESOURCE, resource_id=user_id, subject_id=user_id)
    else:
        require(uow, "profile.read", action="read", resource_type=RESOURCE, resource_id=user_id, subject_id=user_id)
    # one's own profile: the row the actor's check just read in this unit of work (nothing written since)
    row = actor_record(uow) if actor == user_id else uow.users.get(user_id)
    if row is None:
        raise not_found("user")
    if row.status == BLOCKED:
        raise blocked(uow, resource_type=RESOURCE, subject_id=user_id, action="read")
    return view(uow, row, purpose="staff profile shown to an authorised user" if actor != user_id
                else "own profile")


def list_page(uow: IdentityUnitOfWork, limit: int, cursor: str | None) -> dict:
    require(uow, "users.list", action="list", resource_type=RESOURCE)
    page, next_cursor = keyset_page(uow.users.page, limit, cursor)
    items = [view(uow, row, purpose="staff directory", action="list") for row in page]
    return {"items": items, "next_cursor": next_cursor}


def update_own(uow: IdentityUnitOfWork, changes: dict, *, today: date, minimum_age: int) -> dict:
    """``PATCH /v1/me``: only the fields the caller's role may edit directly (else 403 correction-required)."""
    actor = require_actor(uow)
    require(uow, "profile.update", action="update", resource_type=RESOURCE, resource_id=actor, subject_id=actor)
    editable = set(self_editable_fields(uow, current_role(uow)))
    refused = sorted(set(changes) - editable - {"locale"})  # one's language is one's own choice
    if refused:
        uow.deny(action="update", resource_type=RESOURCE, resource_id=actor, subject_id=actor, fields=refused,
                 purpose="own profile edit outside the role's self-editable fields")
        raise ServiceError(
            "correction-required",
            "Your role cannot edit these fields directly; file a correction request for them.",
            403, {"fields": refused, "editable_fields": sorted(editable)},
        )
    return apply_changes(uow, actor, changes, today=today, minimum_age=minimum_age, purpose="own profile edit")


def update(uow: IdentityUnitOfWork, user_id: str, changes: dict, *, today: date, minimum_age: int) -> dict:
    """``PATCH /v1/users/{id}`` by someone allowed to edit any user (and change roles)."""
    require(uow, "users.update", action="update", resource_type=RESOURCE, resource_id=user_id, subject_id=user_id)
    return apply_changes(uow, user_id, changes, today=today, minimum_age=minimum_age,
                         purpose="staff profile administration", allow_role=True)


def check_not_erased(uow: IdentityUnitOfWork, user: User | None, action: str) -> User:
    """``user`` as it is, or 404 (never was, erased, anonymised: nothing of theirs left) or 403 (blocked)."""
    if user is None or user.status in (ERASED, ANONYMISED):
        raise not_found("user")
    if user.status == BLOCKED:
        raise blocked(uow, resource_type=RESOURCE, subject_id=user.id, action=action)
    return user


def apply_changes(uow: IdentityUnitOfWork, user_id: str, changes: dict, *, today: date, minimum_age: int, purpose: str,
                  allow_role: bool = False) -> dict:
    changes = dict(changes)
    role = changes.pop("role", None) if allow_role else None
    locale = changes.pop("locale", None)
    if "photo" in changes:
        raise validation_error([field_error("photo", "upload the photo with PUT /v1/users/{id}/photo")])
    user = check_not_erased(uow, uow.load(User, user_id), "update")
    if not user.active:
        raise conflict("This user is deactivated.")
    previous_role = user.role
    if role is not None:
        _check_assignment(uow, user_id, previous_role, role)
    if locale is not None:
        checked_locale(locale)  # refused before anything is sealed (422 naming ``locale``)
    old_email = uow.users.get(user_id).email
    values = clean_fields(changes, allowed=USER_PROFILE_FIELDS, required=(), today=today, minimum_age=minimum_age)
    for name in ("full_name", "email", "phone", "birth_date", "address", "job_title"):
        if name in values and values[name] is None:
            raise validation_error([field_error(name, "cannot be removed")])
    email_index = None
    if values.get("email"):
        email_index = uow.personal.blind_index("email", values["email"])
        if uow.users.email_taken(email_index, except_id=user_id):
            raise conflict("A user with this e-mail already exists.", field="email")
    changed: list[str] = []
    if values:
        sealed = uow.personal.seal(subject_id=user_id, resource_type=RESOURCE, resource_id=user_id,
                                   values=values, purpose=purpose, action="update")
        changed += user.change_profile(sealed, email_index)
    if role is not None and user.change_role(role):
        changed.append("role")
    if locale is not None and user.change_locale(locale):
        changed.append("locale")
    uow.save(user)
    if "email" in changed and old_email is not None:
        _announce_email_change(uow, user, old_email)
    if "role" in changed:
        uow.audit_access(action="update", resource_type=RESOURCE, resource_id=user_id, subject_id=user_id,
                         fields=["role"], purpose=f"role change: {previous_role} to {role}")
    if "locale" in changed:
        uow.audit_access(action="update", resource_type=RESOURCE, resource_id=user_id, subject_id=user_id,
                         fields=["locale"], purpose=purpose)
    revoked = session_cases.revoke_all(uow, user_id, "role_changed") if "role" in changed else []
    row = uow.users.get(user_id)
    return {"changed": sorted(changed), "user": view(uow, row, purpose=purpose), "revoked_session_ids": revoked}


def assign_role(uow: IdentityUnitOfWork, user_id: str, role: str) -> dict:
    """Give ``user_id`` the role ``role`` (the ``assign-role`` command, as the system; the API's way is
    ``update`` with its permission and the separation of duties)."""
    user = check_not_erased(uow, uow.load(User, user_id), "update")
    previous_role = user.role
    _check_assignment(uow, user_id, previous_role, role)
    revoked: list[str] = []
    if user.change_role(role):
        uow.save(user)
        uow.audit_access(action="update", resource_type=RESOURCE, resource_id=user_id, subject_id=user_id,
                         fields=["role"], purpose=f"role change: {previous_role} to {role}")
        revoked = session_cases.revoke_all(uow, user_id, "role_changed")
    return {"id": user_id, "role": role, "revoked_session_ids": revoked}


def _check_assignment(uow: IdentityUnitOfWork, user_id: str | None, previous_role: str | None, role: object) -> None:
    """Separation of duties on a role given (``domain/duties.py``): refused as 403, audited as denied."""
    if not isinstance(role, str):
        return  # not a role at all: the aggregate refuses it (422 naming the field)
    ctx = uow.context
    try:
        check_role_assignment(actor_id=ctx.actor_id, actor_role=current_role(uow), user_id=user_id,
                              previous_role=previous_role, new_role=role, system=is_system(uow))
    except (OwnRoleChange, ComplianceRoleAssignment):
        uow.deny(action="update" if user_id else "create", resource_type=RESOURCE, resource_id=user_id,
                 subject_id=user_id, fields=["role"], purpose=f"separation of duties: role {previous_role} to {role}")
        raise


def _announce_email_change(uow: IdentityUnitOfWork, user: User, old_email: str) -> None:
    """Tell the old address (finding 6): an event with ids only, the old address kept sealed (its ciphertext
    as the users table held it, under the user's key) in a notice for the notifier to fetch."""
    user.announce_email_change()
    uow.save(user)
    announced = uow.recorded[-1]
    at = announced.occurred_at
    uow.notices.add(NoticeRecord(id=announced.event_id, kind=EMAIL_CHANGED, user_id=user.id,
                                 sealed={"email": old_email}, created_at=at,
                                 expires_at=at + timedelta(seconds=EMAIL_CHANGE_NOTICE_TTL_S), fetched_at=None))


def deactivate(uow: IdentityUnitOfWork, user_id: str) -> dict:
    require(uow, "users.deactivate", action="update", resource_type=RESOURCE, resource_id=user_id,
            subject_id=user_id)
    if user_id == uow.context.actor_id:
        raise conflict("You cannot deactivate your own account.")
    user = check_not_erased(uow, uow.load(User, user_id), "update")
    revoked: list[str] = []
    if user.deactivate():
        uow.save(user)
        uow.audit_access(action="update", resource_type=RESOURCE, resource_id=user_id, subject_id=user_id,
                         fields=["status"], purpose="staff account deactivation")
        revoked = session_cases.revoke_all(uow, user_id, "deactivated")
    return {"id": user_id, "status": "deactivated", "revoked_session_ids": revoked}


# -- photo ----------------------------------------------------------------------


def _may_touch_photo(uow: IdentityUnitOfWork, user_id: str, action: str) -> None:
    actor = require_actor(uow)
    if actor == user_id:
        if action == "update":
            require(uow, "profile.update", action="update", resource_type=RESOURCE, resource_id=user_id,
                    subject_id=user_id)
            if "photo" not in self_editable_fields(uow, current_role(uow)):
                uow.deny(action="update", resource_type=RESOURCE, resource_id=user_id, subject_id=user_id,
                         fields=["photo"], purpose="own photo outside the role's self-editable fields")
                raise ServiceError("correction-required", "Your role cannot change its photo directly.", 403,
                                   {"fields": ["photo"]})
        else:
            require(uow, "profile.read", action="read", resource_type=RESOURCE, resource_id=user_id,
                    subject_id=user_id)
    else:
        permission = "users.update" if action == "update" else "users.read"
        require(uow, permission, action=action, resource_type=RESOURCE, resource_id=user_id, subject_id=user_id)


def may_set_photo(uow: IdentityUnitOfWork, user_id: str) -> None:
    """Authorise a photo upload (before any pixel of it is looked at)."""
    _may_touch_photo(uow, user_id, "update")
    row = uow.users.get(user_id)
    if row is None:
        raise not_found("user")
    if row.status == BLOCKED:
        raise blocked(uow, resource_type=RESOURCE, subject_id=user_id, action="update")


@contextmanager
def photo_slot(workers: PhotoWorkers) -> Iterator[Callable[..., SanitizedPhoto]]:
    """A slot of the photo workers for one upload, or 503 ``service-busy`` with ``retry_after`` at once."""
    try:
        with workers.reserved() as run:
            yield run
    except PhotosBusy:
        raise photos_busy() from None


def photos_busy() -> ServiceError:
    return ServiceError("service-busy", "Too many photos being processed at once; try again in a moment.",
                        503, {"retry_after": 1})


def sanitized_photo(content: bytes, run: Callable[..., SanitizedPhoto] | None = None) -> SanitizedPhoto:
    """``content`` checked and re-encoded by the sanitiser, through ``run`` (the photo workers: off the
    hub, bounded); a refusal is 422 (413 for size) naming ``photo``, a full pool 503 with ``retry_after``."""
    try:
        return run(sanitize_photo, content) if run is not None else sanitize_photo(content)
    except PhotosBusy:
        raise photos_busy() from None
    except PhotoRejected as exc:
        status = 413 if "large" in str(exc).lower() else 422
        slug = "payload-too-large" if status == 413 else "validation-error"
        raise ServiceError(slug, str(exc), status, {"errors": [field_error("photo", str(exc))]}) from None


def set_photo(uow: IdentityUnitOfWork, user_id: str, content: bytes | SanitizedPhoto) -> dict:
    """Store a photo: ``content`` already sanitised (the service does that outside any transaction), or
    raw bytes sanitised here (scripts and tests)."""
    _may_touch_photo(uow, user_id, "update")
    user = uow.load(User, user_id)
    if user is None:
        raise not_found("user")
    photo = content if isinstance(content, SanitizedPhoto) else sanitized_photo(content)
    photo_id = new_id()
    sealed = uow.personal.seal(subject_id=user_id, resource_type=RESOURCE, resource_id=user_id,
                               values={"photo": base64.b64encode(photo.content).decode("ascii")},
                               purpose="profile photo upload", action="update")
    user.change_photo(photo_id, photo.content_type, len(photo.content))
    uow.save(user)
    uow.photos.add(photo_id, user_id, sealed["photo"], uow.recorded[-1].occurred_at)
    uow.photos.delete_others(user_id, keep=photo_id)
    return {"id": user_id, "content_type": photo.content_type, "size": len(photo.content),
            "width": photo.width, "height": photo.height}


def get_photo(uow: IdentityUnitOfWork, user_id: str) -> dict:
    _may_touch_photo(uow, user_id, "read")
    row = uow.users.get(user_id)
    if row is None or row.photo_id is None:
        raise not_found("photo")
    if row.status == BLOCKED:
        raise blocked(uow, resource_type=RESOURCE, subject_id=user_id, action="read")
    blob = uow.photos.content(row.photo_id)
    opened = uow.personal.open(subject_id=user_id, resource_type=RESOURCE, resource_id=user_id,
                               sealed={"photo": blob}, purpose="profile photo shown", action="read")
    value = opened["photo"]
    if not isinstance(value, str):
        raise not_found("photo")
    return {"content_type": row.photo_content_type, "content_b64": value}
