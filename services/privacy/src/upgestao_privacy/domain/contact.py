"""The privacy contact channel's rules: who is not signed in proves an address with a 6-digit code.

``POST /v1/privacy/contact`` always answers 202 with a request id (whether or not the address belongs to
anyone the platform knows); the code goes to the address given, drawn from the operating system's secure
random source. Only a keyed hash of the code is kept (the vault's blind index over ``<request id>:<code>``:
without the key, a stolen database does not give a code back by trying the million of them). A code lives
:data:`CODE_TTL_S` seconds (``PRIVACY_CONTACT_CODE_TTL_S``), is used once, and dies after
:data:`MAX_ATTEMPTS` wrong answers. Filing is rate-limited per client address and per address (its blind
index), as fixed windows (:class:`Budget`).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from upgestao_kernel.errors import DomainError

CODE_DIGITS = 6
CODE_TTL_S = 600  # 10 minutes
MAX_ATTEMPTS = 3
_CODE = re.compile(r"^[0-9]{6}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MAX_EMAIL = 254


class CodeExpired(DomainError):
    """The code's time is over (or it never existed): file again."""


class CodeExhausted(DomainError):
    """Too many wrong codes: this request's code is dead."""


class CodeUsed(DomainError):
    """The code was already given back: the request is verified."""


def new_code() -> str:
    """Six decimal digits from the secure random source (leading zeros kept)."""
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def is_code(value: object) -> bool:
    return isinstance(value, str) and bool(_CODE.match(value))


def code_material(request_id: str, code: str) -> str:
    """What is hashed (keyed) for a request's code: the request id binds a code to its request."""
    return f"{request_id}:{code}"


def is_email(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_EMAIL and bool(_EMAIL.match(value.strip()))


@dataclass
class VerificationState:
    """A contact request's code, as its events left it."""

    code_hash: str | None = None
    expires_at: datetime | None = None
    attempts: int = 0
    used: bool = False

    @property
    def exhausted(self) -> bool:
        return self.attempts >= MAX_ATTEMPTS

    def refuse_used_or_dead(self, canceled: bool) -> None:
        """The request is no longer waiting for its code: say why."""
        if self.exhausted or canceled and not self.used:
            raise CodeExhausted()
        raise CodeUsed()

    def check_usable(self, now: datetime) -> None:
        if self.code_hash is None or self.expires_at is None:
            raise CodeExpired()
        if self.exhausted:
            raise CodeExhausted()
        if self.used:
            raise CodeUsed()
        if now >= self.expires_at:
            raise CodeExpired()

    def matches(self, code_hash: str) -> bool:
        return self.code_hash is not None and secrets.compare_digest(self.code_hash, code_hash)

    @property
    def attempts_left(self) -> int:
        return max(0, MAX_ATTEMPTS - self.attempts)


@dataclass(frozen=True)
class Budget:
    """At most ``limit`` filings per ``window_s`` seconds for one key (a fixed window)."""

    limit: int
    window_s: int

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_s < 1:
            raise ValueError("a budget needs limit and window >= 1")

    def window_start(self, now: datetime, started: datetime | None) -> datetime:
        """The window a filing at ``now`` counts in (a new one once the last is over)."""
        if started is None or now >= started + timedelta(seconds=self.window_s):
            return now
        return started

    def allows(self, count_in_window: int) -> bool:
        return count_in_window < self.limit

    def retry_after(self, started: datetime, now: datetime) -> int:
        return max(1, int((started + timedelta(seconds=self.window_s) - now).total_seconds() + 0.999))
