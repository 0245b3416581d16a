"""Who is asking: what a verified access token says, with the permissions of its role."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Principal:
    """Who is asking: the user, their role, their session and what the role may do."""

    actor_id: str
    role: str
    session_id: str | None = None
    permissions: frozenset[str] = field(default_factory=frozenset)
    expires_at: datetime | None = None
    # the access token itself: it travels with every call the request makes, so each service verifies
    # who is asking from identity's signature instead of trusting a header (never logged, never shown)
    token: str | None = field(default=None, repr=False, compare=False)

    def can(self, permission: str) -> bool:
        """Whether the principal holds ``permission`` (``"<resource>.<action>"``)."""
        return permission in self.permissions
