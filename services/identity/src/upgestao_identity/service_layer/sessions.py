"""Sessions: start, refresh (rotation with reuse detection), list and revoke."""

from __future__ import annotations

from datetime import datetime

from upgestao_kernel.errors import ServiceError
from upgestao_kernel.events import new_id

from ..adapters.ports import IdentityUnitOfWork
from ..adapters.tokens import TokenIssuer, in_seconds, new_refresh_token, refresh_token_session, token_hash
from ..domain.sessions import Session, invalid_refresh_token
from .authorization import require, require_actor


def start(uow: IdentityUnitOfWork, issuer: TokenIssuer, *, user_id: str, role: str, now: datetime,
          refresh_ttl_s: int) -> dict:
    session_id = new_id()
    refresh = new_refresh_token(session_id)
    session = Session.start(session_id, user_id=user_id, refresh_hash=token_hash(refresh),
                            expires_at=in_seconds(now, refresh_ttl_s))
    uow.save(session)
    return tokens(issuer, user_id=user_id, session_id=session_id, role=role, refresh=refresh, now=now)


def tokens(issuer: TokenIssuer, *, user_id: str, session_id: str, role: str, refresh: str, now: datetime) -> dict:
    return {
        "access_token": issuer.access_token(user_id=user_id, session_id=session_id, role=role, now=now),
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": issuer.access_ttl_s,
        "session_id": session_id,
    }


def refresh(uow: IdentityUnitOfWork, issuer: TokenIssuer, presented: str, *, now: datetime,
            role_of) -> tuple[dict | None, ServiceError | None]:
    """Spend ``presented`` for a new pair. Returns (tokens, None) or (None, error): the error is raised by
    the caller after this unit of work commits, so a reuse's revocation is kept."""
    session_id = refresh_token_session(presented)
    session = uow.load(Session, session_id) if session_id else None
    if session is None:
        return None, invalid_refresh_token()
    new = new_refresh_token(session.id)
    session.refresh(token_hash(presented), token_hash(new), now.isoformat())
    uow.save(session)
    if session.status != "active":  # the token had been spent already: the session is now revoked
        uow.audit_access(action="login", resource_type="session", resource_id=session.id,
                         subject_id=session.user_id, fields=(), purpose="refresh token reuse: session revoked",
                         outcome="denied")
        return None, invalid_refresh_token()
    role, active = role_of(session.user_id)
    if not active:
        session.revoke("deactivated")
        uow.save(session)
        return None, invalid_refresh_token()
    return tokens(issuer, user_id=session.user_id, session_id=session.id, role=role, refresh=new, now=now), None


def revoke(uow: IdentityUnitOfWork, session_id: str, reason: str) -> bool:
    session = uow.load(Session, session_id)
    if session is None or not session.revoke(reason):
        return False
    uow.save(session)
    return True


def revoke_all(uow: IdentityUnitOfWork, user_id: str, reason: str, *, keep: str | None = None) -> list[str]:
    """Revoke the user's active sessions (but ``keep``); returns the ids revoked, so the caller's gateway
    can refuse them at once (the others learn it from ``identity.session_revoked.v1``)."""
    return [sid for sid in uow.sessions.active_ids_of(user_id) if sid != keep and revoke(uow, sid, reason)]


def list_own(uow: IdentityUnitOfWork, current_session_id: str | None, now: datetime) -> dict:
    """The caller's sessions still usable: not revoked and not expired."""
    actor = require_actor(uow)
    require(uow, "sessions.read", action="list", resource_type="session", subject_id=actor)
    rows = uow.sessions.usable_of(actor, now)
    return {"items": [
        {"id": r.id, "created_at": r.created_at.isoformat(),
         "last_refreshed_at": r.last_refreshed_at.isoformat() if r.last_refreshed_at else None,
         "expires_at": r.expires_at.isoformat(), "current": r.id == current_session_id}
        for r in rows
    ]}


def owner_of(uow: IdentityUnitOfWork, session_id: str) -> str | None:
    return uow.sessions.owner_of(session_id)


def delete_own(uow: IdentityUnitOfWork, session_id: str) -> None:
    actor = require_actor(uow)
    require(uow, "sessions.delete", action="delete", resource_type="session", resource_id=session_id,
            subject_id=actor)
    if owner_of(uow, session_id) != actor:  # someone else's session is as good as absent
        raise ServiceError("not-found", "No such session.", 404)
    revoke(uow, session_id, "deleted")
