"""API keys (issue 15): credentials of the tools a customer integrates, Stripe- and GitHub-style.

A key is ``upk_<key id>_<32 random bytes, base64url>``: shown once, at its creation; only the SHA-256 of
the whole key is kept (a 256-bit random secret needs no slow hash), so a key is looked up by the id it
carries and compared in constant time. A key is *scoped*: it holds a few permissions of the catalogue
(``GRANTABLE_SCOPES``), never more than the role of whoever created it, never a compliance permission nor
one that manages people, roles or integrations. It may expire (at most a year ahead) and is revoked at
once: the gateway exchanges a key for a short-lived access token whose principal is the key (``sub`` and
``sid`` = the key id, role ``apikey:<key id>``), and a revocation is also a session revocation of that id,
which every gateway replica refuses from then on.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from upgestao_kernel.events import Aggregate

from .errors import IdentityError
from .events import ApiKeyCreated, ApiKeyRevoked, SessionRevoked
from .roles import COMPLIANCE_PERMISSIONS, KEY_ROLE_PREFIX, PERMISSIONS

KEY_PREFIX = "upk_"
ROLE_PREFIX = KEY_ROLE_PREFIX
# what an integrated tool may be given: its work on conversations and customers, nothing that manages
# the platform (users, roles, teams, integrations), reads the audit trail or acts as the DPO
GRANTABLE_SCOPES = (
    "conversations.read", "conversations.read_all", "conversations.record_incoming", "conversations.write",
    "customers.create", "customers.list", "customers.read", "customers.update",
)
MAX_LIFETIME = timedelta(days=365)
NAME_MAX = 100
REVOKED_REASON = "api_key_revoked"  # the reason of the session revocation a key's revocation is too

ACTIVE = "active"
REVOKED = "revoked"

_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_KEY = re.compile(rf"^{KEY_PREFIX}({_ID})_([A-Za-z0-9_-]{{43}})$")
_ROLE = re.compile(rf"^{ROLE_PREFIX}({_ID})$")


class ApiKeyRefused(IdentityError):
    """A key cannot be created as asked: ``field`` names what is wrong (``name``, ``scopes``, ``expires_at``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def new_key(key_id: str) -> str:
    """The key a tool presents (shown once): ``upk_<key id>_<secret>``."""
    return f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(key: object) -> str | None:
    """The id a well-formed key carries; ``None`` for anything else (a malformed key asks nobody)."""
    match = _KEY.fullmatch(key) if isinstance(key, str) else None
    return match.group(1) if match else None


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def hash_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(key_hash(key).encode(), (stored_hash or "").encode())


def role_of(key_id: str) -> str:
    """The synthetic role of a key's principal: it grants exactly the key's scopes."""
    return ROLE_PREFIX + key_id


def is_key_role(role: object) -> bool:
    return isinstance(role, str) and role.startswith(ROLE_PREFIX)


def key_id_of_role(role: object) -> str | None:
    match = _ROLE.fullmatch(role) if isinstance(role, str) else None
    return match.group(1) if match else None


def checked_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ApiKeyRefused("name", "is required")
    name = name.strip()
    if len(name) > NAME_MAX or any(ord(c) < 32 for c in name):
        raise ApiKeyRefused("name", f"must be at most {NAME_MAX} printable characters")
    return name


def checked_scopes(scopes: object, held: Iterable[str]) -> list[str]:
    """``scopes`` sorted and unique, if each is a grantable permission the creator's role holds."""
    if not isinstance(scopes, (list, tuple)) or not scopes:
        raise ApiKeyRefused("scopes", "must list at least one permission")
    held = frozenset(held)
    for scope in scopes:
        if not isinstance(scope, str) or scope not in PERMISSIONS:
            raise ApiKeyRefused("scopes", f"unknown permission {scope!r}")
        if scope in COMPLIANCE_PERMISSIONS or scope not in GRANTABLE_SCOPES:
            raise ApiKeyRefused("scopes", f"{scope} cannot be granted to an API key")
        if scope not in held:
            raise ApiKeyRefused("scopes", f"your role does not hold {scope}")
    return sorted(set(scopes))


def checked_expiry(expires_at: datetime | None, now: datetime) -> datetime | None:
    """In the future, at most :data:`MAX_LIFETIME` ahead (``None``: the key does not expire)."""
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise ApiKeyRefused("expires_at", "must carry a time zone")
    if expires_at <= now:
        raise ApiKeyRefused("expires_at", "must be in the future")
    if expires_at - now > MAX_LIFETIME:
        raise ApiKeyRefused("expires_at", "must be at most a year ahead")
    return expires_at


class ApiKey(Aggregate):
    stream_type = "api_key"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.status: str | None = None
        self.scopes: tuple[str, ...] = ()
        self.expires_at: datetime | None = None
        self.secret_hash: str | None = None

    @classmethod
    def create(cls, id: str, *, name: str, scopes: list[str], expires_at: datetime | None, created_by: str,
               secret_hash: str) -> ApiKey:
        key = cls(id)
        key.trigger(ApiKeyCreated(name=name, scopes=list(scopes),
                                  expires_at=expires_at.isoformat() if expires_at else None,
                                  created_by=created_by, secret_hash=secret_hash))
        return key

    def revoke(self, revoked_by: str | None) -> bool:
        """Revoked at once: the key, and the "session" its tokens carry (every gateway refuses them)."""
        if self.status != ACTIVE:
            return False
        self.trigger(ApiKeyRevoked(revoked_by=revoked_by))
        self.trigger(SessionRevoked(user_id=None, reason=REVOKED_REASON))
        return True

    def usable(self, now: datetime) -> bool:
        return self.status == ACTIVE and (self.expires_at is None or now < self.expires_at)

    def when_api_key_created(self, name, scopes, expires_at, created_by, secret_hash) -> None:
        self.status, self.scopes, self.secret_hash = ACTIVE, tuple(scopes), secret_hash
        self.expires_at = datetime.fromisoformat(expires_at) if expires_at else None

    def when_api_key_revoked(self, revoked_by) -> None:
        self.status = REVOKED

    def when_session_revoked(self, user_id, reason) -> None:
        pass  # the key's revocation, as every gateway reads it
