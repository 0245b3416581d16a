"""bcrypt password hashing, run off the eventlet hub.

bcrypt at cost 12 takes a few hundred milliseconds of CPU in C code that does not
yield to eventlet; run inline it would freeze every greenlet of the service. So the
work goes through an ``offload`` callable: ``eventlet.tpool.execute`` (a real OS
thread; bcrypt releases the GIL) when the process is monkey-patched, a direct call
otherwise (scripts, plain unit tests).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import Any

import bcrypt

MIN_COST = 12
MAX_BYTES = 72

Offload = Callable[..., Any]


def _direct(func: Callable[..., Any], *args: Any) -> Any:
    return func(*args)


def default_offload() -> Offload:
    """``eventlet.tpool.execute`` if eventlet has monkey-patched ``thread``, else a direct call."""
    try:
        from eventlet import patcher, tpool
    except ImportError:  # pragma: no cover - eventlet is installed with nameko
        return _direct
    if patcher.is_monkey_patched("thread"):
        return tpool.execute
    return _direct


def _encode(password: str) -> bytes:
    if not isinstance(password, str):
        raise TypeError("password must be a str")
    data = password.encode("utf-8")
    if len(data) > MAX_BYTES:
        # bcrypt would silently ignore the bytes after the 72nd (bcrypt 5 raises); never truncate
        raise ValueError(f"password longer than {MAX_BYTES} bytes in UTF-8")
    return data


def _hash_cost(hashed: str) -> int | None:
    """The cost of a ``$2b$NN$...`` hash, or None when it is not a bcrypt hash."""
    parts = hashed.split("$") if isinstance(hashed, str) else []
    if len(parts) != 4 or parts[0] != "" or parts[1] not in ("2a", "2b", "2y") or len(parts[3]) != 53:
        return None
    if len(parts[2]) != 2 or not parts[2].isdigit():
        return None
    return int(parts[2])


class PasswordHasher:
    def __init__(self, cost: int = MIN_COST, offload: Offload | None = None, *, allow_low_cost: bool = False) -> None:
        if not isinstance(cost, int) or isinstance(cost, bool) or not 4 <= cost <= 31:
            raise ValueError("bcrypt cost must be an integer between 4 and 31")
        if cost < MIN_COST and not allow_low_cost:
            raise ValueError(f"bcrypt cost {cost} is below the minimum {MIN_COST} (allow_low_cost=True for tests)")
        self.cost = cost
        self._offload = offload if offload is not None else default_offload()
        self._dummy: bytes | None = None
        self._dummy_lock = threading.Lock()

    def _run(self, func: Callable[..., Any], *args: Any) -> Any:
        return self._offload(func, *args)

    def hash(self, password: str) -> str:
        data = _encode(password)
        hashed = self._run(_hashpw, data, self.cost)
        return hashed.decode("ascii")

    def verify(self, password: str, hashed: str) -> bool:
        """True when ``password`` matches ``hashed``; False on a mismatch or any malformed input.

        Exactly one bcrypt check at this hasher's cost runs on every path: a password bcrypt cannot
        take (over 72 bytes, not text) or a stored hash that is no bcrypt hash is checked against the
        dummy hash instead of answering at once, so the time of a login says nothing about the
        password's length nor about whether the e-mail is known (finding 4 of issue 11).
        """
        try:
            data = _encode(password)
        except (TypeError, ValueError):
            return self.verify_dummy(password)
        if _hash_cost(hashed) is None:
            return self.verify_dummy(password)
        try:
            return bool(self._run(bcrypt.checkpw, data, hashed.encode("ascii")))
        except (TypeError, ValueError):
            return False

    def needs_rehash(self, hashed: str) -> bool:
        """True when ``hashed`` was made with another cost (or is not a bcrypt hash)."""
        return _hash_cost(hashed) != self.cost

    def verify_dummy(self, password: object) -> bool:
        """Spend the same time as ``verify`` against a hash of this cost; always False.

        For an unknown e-mail, or a password bcrypt cannot take, so that neither can be told from a
        wrong password by timing.
        """
        dummy = self._dummy_hash()
        try:
            data = _encode(password)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            data = b"x" * MAX_BYTES  # still spend the time
        self._run(bcrypt.checkpw, data, dummy)
        return False

    def _dummy_hash(self) -> bytes:
        if self._dummy is None:
            with self._dummy_lock:
                if self._dummy is None:
                    self._dummy = self._run(_hashpw, secrets.token_urlsafe(32).encode("ascii"), self.cost)
        return self._dummy


def _hashpw(data: bytes, cost: int) -> bytes:
    return bcrypt.hashpw(data, bcrypt.gensalt(rounds=cost))
