"""API keys at the gateway (issue 15): ``Authorization: Bearer upk_...`` from an integrated tool.

A key is ``upk_<key id>_<secret>``. The gateway never checks a key itself: it exchanges it with identity
(``identity.exchange_api_key(key)``, answered to the gateway's broker user alone) for a short-lived
access token whose principal is the key (``sub`` = ``sid`` = the key id, role ``apikey:<key id>``) and the
key's scopes, and keeps that answer, by the key's SHA-256, until shortly before the token expires: a key
costs one call to identity per token lifetime, not one per request. That token travels with every call
the request makes, like a user's, so each service checks the key's scopes itself and audits the key as
the actor.

* A malformed key is refused without asking identity; an unknown, revoked or expired one is refused by
  identity; all four get the same 401 (no oracle). A refusal is remembered briefly, by hash, so a
  client repeating a dead key does not call identity for each request.
* Revocation is immediate: identity's revocation of a key is also the revocation of the "session" of
  that id (``identity.session_revoked.v1``), which every replica reads from the access-events stream; a
  cached token of a revoked key is dropped at its next request. Expiry: the token expires with the key at
  the latest, and the gateway stops using a token :data:`REFRESH_MARGIN_S` before its expiry.
* Concurrent first requests of one key make one exchange.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventlet.semaphore import Semaphore
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.logging import get_logger
from werkzeug.wrappers import Request

from ..adapters.identity import IdentityUnavailable
from ..domain.principal import Principal
from ..entrypoints.http.problems import Problem, service_unavailable, unauthenticated
from .authentication import Authenticator, bearer_token
from .tokens import LOADING, STALE_DETAIL, RevocationView

log = get_logger(__name__)

KEY_PREFIX = "upk_"
_KEY = re.compile(r"^upk_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
INVALID_KEY = "The API key is invalid, revoked or expired."
REFRESH_MARGIN_S = 60.0  # a cached token is exchanged again this long before it expires
REFUSAL_TTL_S = 10.0  # a refused key is refused again without asking identity for this long
MAX_CACHED = 10_000


def invalid_key() -> Problem:
    return unauthenticated(INVALID_KEY, error="invalid_token")


def key_id_of(key: str) -> str | None:
    match = _KEY.fullmatch(key)
    return match.group(1) if match else None


@dataclass(frozen=True)
class Exchanged:
    """What identity answered for one key: its token, principal and scopes, usable until ``use_until``."""

    key_id: str
    role: str
    scopes: frozenset[str]
    token: str
    expires_at: datetime
    use_until: float  # wall-clock seconds


class ApiKeyAuthenticator:
    """Accepts ``Bearer upk_...`` keys and hands every other bearer token to ``tokens`` (the JWT verifier)."""

    def __init__(
        self,
        tokens: Authenticator,
        exchange: Callable[[str], Mapping[str, Any]],
        revocations: RevocationView,
        caught_up_wait_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tokens = tokens
        self._exchange = exchange
        self.revocations = revocations
        self.caught_up_wait_s = caught_up_wait_s
        self._clock = clock
        self._cache: OrderedDict[str, Exchanged] = OrderedDict()
        self._refused: OrderedDict[str, float] = OrderedDict()
        self._locks: dict[str, Semaphore] = {}

    def authenticate(self, request: Request) -> Principal | None:
        token = bearer_token(request)
        if token is None or not token.startswith(KEY_PREFIX):
            return self.tokens.authenticate(request)
        return self.principal_of(token)

    def principal_of(self, key: str) -> Principal:
        """The principal of ``key``, or a 401/503 :class:`Problem`."""
        key_id = key_id_of(key)
        if key_id is None:
            raise invalid_key()
        if not self.revocations.wait_current(self.caught_up_wait_s):
            raise service_unavailable(STALE_DETAIL.get(self.revocations.stale_reason(), STALE_DETAIL[LOADING]))
        digest = hashlib.sha256(key.encode()).hexdigest()
        if self.revocations.is_revoked(key_id):
            self.forget(digest)
            raise invalid_key()
        exchanged = self._fresh(digest) or self._exchanged(digest, key, key_id)
        return Principal(actor_id=exchanged.key_id, role=exchanged.role, session_id=exchanged.key_id,
                         permissions=exchanged.scopes, expires_at=exchanged.expires_at, token=exchanged.token)

    def forget(self, digest: str) -> None:
        self._cache.pop(digest, None)

    def forget_key(self, key_id: str) -> None:
        """Drop the cached token of ``key_id`` (revoked through this replica)."""
        for digest in [d for d, e in self._cache.items() if e.key_id == key_id]:
            self._cache.pop(digest, None)

    def _fresh(self, digest: str) -> Exchanged | None:
        entry = self._cache.get(digest)
        if entry is None:
            return None
        if self._clock() >= entry.use_until:
            self._cache.pop(digest, None)
            return None
        return entry

    def _exchanged(self, digest: str, key: str, key_id: str) -> Exchanged:
        lock = self._locks.setdefault(digest, Semaphore())
        try:
            with lock:  # one exchange for concurrent first requests of a key
                entry = self._fresh(digest)
                if entry is not None:
                    return entry
                refused_at = self._refused.get(digest)
                if refused_at is not None and self._clock() - refused_at < REFUSAL_TTL_S:
                    raise invalid_key()
                entry = self._ask(key, key_id, digest)
                self._remember(self._cache, digest, entry)
                return entry
        finally:
            if lock.balance >= 1 and self._locks.get(digest) is lock:  # nobody else waits on it
                self._locks.pop(digest, None)

    def _ask(self, key: str, key_id: str, digest: str) -> Exchanged:
        try:
            answer = self._exchange(key)
        except ServiceError as exc:
            if exc.status == 401:
                self._remember(self._refused, digest, self._clock())
                raise invalid_key() from None
            log.warning("access.api_key_exchange_failed", key_id=key_id, status=exc.status, slug=exc.slug)
            raise service_unavailable("API keys cannot be checked now; try again later.") from None
        except IdentityUnavailable as exc:
            log.warning("access.api_key_exchange_unavailable", key_id=key_id, reason=exc.reason)
            raise service_unavailable("API keys cannot be checked now; try again later.") from None
        try:
            expires_in = float(answer["expires_in"])
            entry = Exchanged(key_id=str(answer["key_id"]), role=str(answer["role"]),
                              scopes=frozenset(answer["scopes"]), token=str(answer["access_token"]),
                              expires_at=datetime.fromtimestamp(self._clock() + expires_in, UTC),
                              use_until=self._clock() + max(0.0, expires_in - min(REFRESH_MARGIN_S, expires_in / 2)))
        except (KeyError, TypeError, ValueError):
            log.warning("access.api_key_exchange_unreadable", key_id=key_id)
            raise service_unavailable("API keys cannot be checked now; try again later.") from None
        if entry.key_id != key_id:
            raise invalid_key()
        log.info("access.api_key_exchanged", key_id=key_id, expires_in=expires_in)
        return entry

    @staticmethod
    def _remember(table: OrderedDict, digest: str, value: Any) -> None:
        table[digest] = value
        table.move_to_end(digest)
        while len(table) > MAX_CACHED:
            table.popitem(last=False)
