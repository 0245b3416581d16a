"""A cache of identity's public keys (see :mod:`upgestao_kernel.jwks`): the gateway's and every service's.

:class:`PublicKeys` fetches them at first need, keeps them, and refetches
when a token names a key it does not know, at most once per
``refetch_interval_s`` (a stream of tokens with made-up ``kid``\\ s cannot turn
into a stream of RPCs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventlet.semaphore import Semaphore

from .jwks import InvalidJwks, parse_jwks
from .logging import get_logger

log = get_logger(__name__)


class KeysUnavailable(Exception):
    """The keys cannot be fetched now (identity unreachable or answering nonsense)."""


class PublicKeys:
    """The verification keys, by ``kid``.

    ``fetch`` returns a JWKS document (the identity RPC); ``static`` keys (from
    the environment) are never refetched.
    """

    def __init__(
        self,
        fetch: Callable[[], Any] | None = None,
        static: Mapping[str, Ed25519PublicKey] | None = None,
        refetch_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if fetch is None and static is None:
            raise ValueError("PublicKeys needs a fetch function or static keys")
        self._fetch = None if static is not None else fetch
        self._keys: dict[str, Ed25519PublicKey] | None = dict(static) if static is not None else None
        self.refetch_interval_s = refetch_interval_s
        self._clock = clock
        self._last_attempt: float | None = None
        self._last_failed = False
        self._lock = Semaphore(1)
        self.fetches = 0  # attempts made (for tests and metrics)

    def key_for(self, kid: str) -> Ed25519PublicKey | None:
        """The key named ``kid``; ``None`` when identity does not have it.

        Raises :class:`KeysUnavailable` when the key is unknown and the keys
        cannot be (re)fetched now.
        """
        keys = self._keys
        if keys is not None and kid in keys:
            return keys[kid]
        if self._fetch is None:
            return None
        with self._lock:  # one fetch at a time; the others wait for its result
            keys = self._keys
            if keys is not None and kid in keys:
                return keys[kid]
            if self._may_fetch():
                self._refresh()
            if self._keys is None or (self._last_failed and kid not in self._keys):
                raise KeysUnavailable("the identity service's public keys cannot be fetched")
            return self._keys.get(kid)

    def _may_fetch(self) -> bool:
        return self._last_attempt is None or self._clock() - self._last_attempt >= self.refetch_interval_s

    def _refresh(self) -> None:
        self._last_attempt = self._clock()
        self.fetches += 1
        try:
            keys = parse_jwks(self._fetch())
        except InvalidJwks as exc:
            log.error("access.public_keys_invalid", reason=str(exc))
            self._last_failed = True
            return
        except Exception as exc:
            log.warning("access.public_keys_unavailable", error=type(exc).__name__, reason=getattr(exc, "reason", ""))
            self._last_failed = True
            return
        self._last_failed = False
        if self._keys is None or set(keys) != set(self._keys):
            log.info("access.public_keys_loaded", kids=sorted(keys))
        self._keys = keys
