"""Login sessions and their refresh tokens.

A session lives from a login to its revocation (logout, deletion, password
change, deactivation, role change, refresh-token reuse) or its expiry. Only
the SHA-256 of each refresh token is recorded; every refresh spends the
presented token and issues the next one, and presenting a spent token again
revokes the whole session (someone else holds a copy).
"""

from __future__ import annotations

from upgestao_kernel.events import Aggregate

from .errors import InvalidRefreshToken
from .events import SessionRefreshed, SessionRevoked, SessionStarted

ACTIVE = "active"
REVOKED = "revoked"

REASONS = ("logout", "deleted", "password_changed", "password_reset", "deactivated", "role_changed",
           "refresh_token_reused", "erased", "blocked")


def invalid_refresh_token() -> InvalidRefreshToken:
    """The refusal of a refresh (the service layer raises it too, after its unit of work keeps a revocation)."""
    return InvalidRefreshToken()


class Session(Aggregate):
    stream_type = "session"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.user_id: str | None = None
        self.status: str | None = None
        self.current_hash: str | None = None
        self.spent: set[str] = set()
        self.expires_at: str | None = None

    @classmethod
    def start(cls, id: str, *, user_id: str, refresh_hash: str, expires_at: str) -> Session:
        session = cls(id)
        session.trigger(SessionStarted(user_id=user_id, refresh_hash=refresh_hash, expires_at=expires_at))
        return session

    def refresh(self, presented_hash: str, new_hash: str, now_iso: str) -> None:
        """Spend ``presented_hash`` for ``new_hash``; reuse of a spent token revokes the session."""
        if self.status != ACTIVE:
            raise invalid_refresh_token()
        if presented_hash in self.spent:
            self.revoke("refresh_token_reused")
            return
        if presented_hash != self.current_hash or (self.expires_at and now_iso >= self.expires_at):
            raise invalid_refresh_token()
        self.trigger(SessionRefreshed(spent_hash=presented_hash, refresh_hash=new_hash))

    def revoke(self, reason: str) -> bool:
        if reason not in REASONS:
            raise ValueError(f"unknown revocation reason {reason!r}")
        if self.status != ACTIVE:
            return False
        self.trigger(SessionRevoked(user_id=self.user_id, reason=reason))
        return True

    def when_session_started(self, user_id, refresh_hash, expires_at) -> None:
        self.user_id, self.current_hash, self.expires_at, self.status = user_id, refresh_hash, expires_at, ACTIVE

    def when_session_refreshed(self, spent_hash, refresh_hash) -> None:
        self.spent.add(spent_hash)
        self.current_hash = refresh_hash

    def when_session_revoked(self, user_id, reason) -> None:
        self.status = REVOKED
