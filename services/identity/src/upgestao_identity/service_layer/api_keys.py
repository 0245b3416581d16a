"""API keys (issue 15): issued, listed and revoked by admins (``integrations.manage``); exchanged by the
gateway (its broker user only) for a short-lived access token whose principal is the key.

A key's principal holds the synthetic role ``apikey:<key id>``, which grants exactly the key's scopes
wherever the platform checks a permission: identity answers it from the key's row
(:func:`.authorization.permissions_of`), the gateway and the other services from the role-permissions
document, which lists every usable key's role (:func:`permissions_document`).
"""

from __future__ import annotations

from datetime import datetime

from upgestao_kernel.errors import ServiceError, field_error, validation_error
from upgestao_kernel.events import new_id
from upgestao_kernel.logging import get_logger

from ..adapters.ports import ApiKeyRecord, IdentityUnitOfWork
from ..adapters.tokens import TokenIssuer
from ..domain.api_keys import (
    ApiKey,
    ApiKeyRefused,
    checked_expiry,
    checked_name,
    checked_scopes,
    hash_matches,
    key_hash,
    key_id_of,
    new_key,
    role_of,
)
from .authorization import current_role, permissions_of, require, require_actor
from .pagination import keyset_page

log = get_logger(__name__)

MANAGE = "integrations.manage"
RESOURCE = "api_key"
GATEWAY = "gateway"  # the only caller an exchange is answered to
USE_RECORDED_EVERY_S = 60.0  # last_used_at moves at most once a minute per key
MIN_TOKEN_TTL_S = 1


def invalid_key() -> ServiceError:
    """The one answer to an unknown, revoked, expired or malformed key (no oracle)."""
    return ServiceError("invalid-api-key", "The API key is invalid, revoked or expired.", 401)


def _refused(exc: ApiKeyRefused) -> ServiceError:
    return validation_error([field_error(exc.field, exc.message)])


def _expiry(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ApiKeyRefused("expires_at", "must be an ISO 8601 date and time")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiKeyRefused("expires_at", "must be an ISO 8601 date and time") from None


def _doc(record: ApiKeyRecord, last_used_at: datetime | None) -> dict:
    return {"id": record.id, "name": record.name, "scopes": sorted(record.scopes), "status": record.status,
            "created_at": record.created_at.isoformat(), "created_by": record.created_by,
            "expires_at": record.expires_at.isoformat() if record.expires_at else None,
            "last_used_at": last_used_at.isoformat() if last_used_at else None,
            "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None}


def create(uow: IdentityUnitOfWork, data: dict, *, now: datetime) -> dict:
    """A new key, shown once (``key``): scopes the creator's role holds, grantable to a tool."""
    require(uow, MANAGE, action="create", resource_type=RESOURCE)
    creator = require_actor(uow)
    unknown = sorted(set(data) - {"name", "scopes", "expires_at"})
    if unknown:
        raise validation_error([field_error(field, "unknown field") for field in unknown])
    try:
        name = checked_name(data.get("name"))
        scopes = checked_scopes(data.get("scopes"), permissions_of(uow, current_role(uow)))
        expires_at = checked_expiry(_expiry(data.get("expires_at")), now)
    except ApiKeyRefused as exc:
        raise _refused(exc) from None
    key_id = new_id()
    key = new_key(key_id)
    uow.save(ApiKey.create(key_id, name=name, scopes=scopes, expires_at=expires_at, created_by=creator,
                           secret_hash=key_hash(key)))
    uow.audit_access(action="create", resource_type=RESOURCE, resource_id=key_id, subject_id=None,
                     fields=("scopes",), purpose=f"API key issued with scopes [{', '.join(scopes)}]")
    record = uow.api_keys.get(key_id)
    return {**_doc(record, None), "key": key}


def list_page(uow: IdentityUnitOfWork, limit: int, cursor: str | None) -> dict:
    require(uow, MANAGE, action="list", resource_type=RESOURCE)
    page, next_cursor = keyset_page(uow.api_keys.page, limit, cursor)
    used = uow.api_keys.last_used([r.id for r in page])
    return {"items": [_doc(r, used.get(r.id)) for r in page], "next_cursor": next_cursor}


def get(uow: IdentityUnitOfWork, key_id: str) -> dict:
    require(uow, MANAGE, action="read", resource_type=RESOURCE, resource_id=key_id)
    record = uow.api_keys.get(key_id) if isinstance(key_id, str) else None
    if record is None:
        raise ServiceError("not-found", "No such API key.", 404)
    return _doc(record, uow.api_keys.last_used([record.id]).get(record.id))


def revoke(uow: IdentityUnitOfWork, key_id: str) -> dict:
    """Revoked at once (``identity.session_revoked.v1`` with the key id as the session: every gateway
    refuses its tokens). Revoking a revoked key changes nothing."""
    require(uow, MANAGE, action="delete", resource_type=RESOURCE, resource_id=key_id)
    key = uow.load(ApiKey, key_id) if isinstance(key_id, str) else None
    if key is None or key.status is None:
        raise ServiceError("not-found", "No such API key.", 404)
    revoked = key.revoke(uow.context.actor_id)
    if revoked:
        uow.save(key)
        uow.audit_access(action="delete", resource_type=RESOURCE, resource_id=key_id, subject_id=None,
                         fields=(), purpose="API key revoked")
    return {"id": key_id, "revoked": revoked}


def exchange(uow: IdentityUnitOfWork, issuer: TokenIssuer, key: object, *, now: datetime) -> dict:
    """An access token for the key's principal (the gateway's broker user only): ``sub`` and ``sid`` are the
    key id, the role ``apikey:<key id>``; it expires with the key at the latest."""
    if uow.context.caller_service != GATEWAY:
        uow.deny(action="login", resource_type=RESOURCE, resource_id=None, subject_id=None, fields=(),
                 purpose="API key exchange: the gateway's alone")
        raise ServiceError("forbidden", "Only the gateway exchanges API keys.", 403)
    key_id = key_id_of(key)
    record = uow.api_keys.get(key_id) if key_id else None
    reason = _refusal(key, record, now)
    ttl = issuer.access_ttl_s
    if reason is None and record.expires_at is not None:  # the token dies with the key at the latest
        ttl = min(ttl, int((record.expires_at - now).total_seconds()))
        reason = "expired" if ttl < MIN_TOKEN_TTL_S else None
    if reason is not None:  # audited like a failed login (the reason is the audit's, never the caller's)
        key_id = record.id if record is not None else None
        uow.deny(action="login", resource_type=RESOURCE, resource_id=key_id, subject_id=None, fields=(),
                 purpose=f"API key refused: {reason}")
        log.info("api_key.exchange_refused", key_id=key_id, reason=reason)
        raise invalid_key()
    uow.api_keys.touch(record.id, now, USE_RECORDED_EVERY_S)
    uow.audit_access(action="login", resource_type=RESOURCE, resource_id=record.id, subject_id=None, fields=(),
                     purpose="API key exchanged for an access token")
    role = role_of(record.id)
    token = issuer.access_token(user_id=record.id, session_id=record.id, role=role, now=now, ttl_s=ttl)
    return {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "key_id": record.id,
            "role": role, "scopes": sorted(record.scopes),
            "key_expires_at": record.expires_at.isoformat() if record.expires_at else None}


def _refusal(key: object, record: ApiKeyRecord | None, now: datetime) -> str | None:
    """Why ``key`` cannot be used (None: it can)."""
    if record is None:
        return "unknown or malformed"
    if not hash_matches(key, record.secret_hash):  # type: ignore[arg-type]  (a str: its id was read from it)
        return "wrong secret"
    if record.status != "active":
        return "revoked"
    if record.expires_at is not None and record.expires_at <= now:
        return "expired"
    return None


def permissions_document(uow: IdentityUnitOfWork, now: datetime) -> dict[str, list[str]]:
    """The synthetic role of every usable key, with its scopes (part of ``role_permissions``)."""
    return {role_of(r.id): sorted(r.scopes) for r in uow.api_keys.usable(now)}
