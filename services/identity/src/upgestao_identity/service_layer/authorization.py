"""Server-side authorisation (R2.1): the caller's role, looked up as data; deny by default.

Identity checks again what the gateway already checked (defence in depth). Role definitions
come from ``uow.roles.cached`` (a per-process cache, emptied when this process changes a role:
see ``adapters/sql_repositories.py``).
"""

from __future__ import annotations

from upgestao_kernel.errors import ServiceError
from upgestao_kernel.events import utcnow

from ..adapters.ports import ApiKeyRecord, IdentityUnitOfWork, UserRecord
from ..domain.api_keys import ACTIVE as KEY_ACTIVE
from ..domain.api_keys import key_id_of_role
from ..domain.roles import effective_permissions
from ..domain.users import ACTIVE

SYSTEM_ROLE = "system"


def is_system(uow: IdentityUnitOfWork) -> bool:
    """The caller is the system (start-up tasks, the CLI), not a person."""
    ctx = uow.context
    return ctx.actor_role == SYSTEM_ROLE and ctx.actor_id == SYSTEM_ROLE


def permissions_of(uow: IdentityUnitOfWork, role: str | None) -> frozenset[str]:
    key_id = key_id_of_role(role)
    if key_id is not None:  # an API key's principal (issue 15): exactly the scopes of the key, while usable
        key = usable_key(uow, key_id)
        return frozenset(key.scopes) if key is not None else frozenset()
    record = uow.roles.cached(role)
    return effective_permissions(role, record.permissions) if record is not None else frozenset()


def self_editable_fields(uow: IdentityUnitOfWork, role: str | None) -> tuple[str, ...]:
    record = uow.roles.cached(role)
    return tuple(record.self_editable_fields) if record is not None else ()


def require(
    uow: IdentityUnitOfWork,
    permission: str,
    *,
    action: str,
    resource_type: str,
    resource_id: str | None = None,
    subject_id: str | None = None,
) -> None:
    """Refuse (403, audited as denied) unless the caller's role grants ``permission``."""
    ctx = uow.context
    if is_system(uow):
        return
    if ctx.actor_id and permission in permissions_of(uow, current_role(uow)):
        return
    uow.deny(action=action, resource_type=resource_type, resource_id=resource_id, subject_id=subject_id,
             fields=(), purpose="authorization")
    raise ServiceError("forbidden", f"Your role does not grant {permission}.", 403, {"permission": permission})


def blocked(uow: IdentityUnitOfWork, *, resource_type: str, subject_id: str, action: str) -> ServiceError:
    """The refusal of any read or change of a blocked subject's data (LGPD art. 18 IV: blocked at their
    request; only privacy's export still reads it), audited as denied."""
    uow.deny(action=action, resource_type=resource_type, resource_id=subject_id, subject_id=subject_id, fields=(),
             purpose="the data subject's data is blocked at their request")
    return ServiceError("subject-blocked", "This person's data is blocked at their request (LGPD art. 18 IV).",
                        403)


def current_role(uow: IdentityUnitOfWork) -> str | None:
    """The actor's role as identity holds it now, not as their token says: a role taken away, or an account
    deactivated, since the token was issued counts at once (``None``: no such active user). One read of
    the users read model per unit of work (no personal value is opened)."""
    role = uow.context.actor_role
    key_id = key_id_of_role(role)
    if key_id is not None:  # an API key acting: its synthetic role, while the key is usable
        return role if key_id == uow.context.actor_id and usable_key(uow, key_id) is not None else None
    record = actor_record(uow)
    return record.role if record is not None and record.status == ACTIVE else None


def usable_key(uow: IdentityUnitOfWork, key_id: str) -> ApiKeyRecord | None:
    """The API key ``key_id`` if it is active and not expired now (read once per unit of work)."""
    known = getattr(uow, "_keys_now", None)
    if known is None:
        known = uow._keys_now = {}
    if key_id not in known:
        record = uow.api_keys.get(key_id)
        usable = record is not None and record.status == KEY_ACTIVE and (
            record.expires_at is None or record.expires_at > utcnow())
        known[key_id] = record if usable else None
    return known[key_id]


def actor_record(uow: IdentityUnitOfWork) -> UserRecord | None:
    """The actor's row of the users read model, read once per unit of work (a use case reading the
    actor's own profile takes it from here instead of reading it twice)."""
    actor = uow.context.actor_id
    if not actor:
        return None
    known = getattr(uow, "_actor_now", _UNREAD)
    if known is _UNREAD:
        known = uow.users.get(actor)
        uow._actor_now = known
    return known


def require_actor(uow: IdentityUnitOfWork) -> str:
    """The actor, who must be a user identity holds, active now (whatever their token still says)."""
    if not uow.context.actor_id or current_role(uow) is None:
        raise ServiceError("unauthenticated", "Authentication required.", 401)
    return uow.context.actor_id


_UNREAD = object()
