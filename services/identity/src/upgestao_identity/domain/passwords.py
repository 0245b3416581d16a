"""Password policy (R1.2): length in characters and in bytes, common passwords, e-mail local part.

The policy is checked on the password as typed; it never changes what gets hashed.
"""

from __future__ import annotations

import functools
import unicodedata
from importlib import resources

from .errors import IdentityError

MIN_LENGTH = 10
MAX_BYTES = 72  # bcrypt ignores every byte after the 72nd: longer passwords are refused, never truncated
MIN_LOCAL_PART = 3  # e-mail local parts shorter than this are not looked for in the password

_COMMON_RESOURCE = "common_passwords.txt"


class PasswordRejected(IdentityError, ValueError):
    """The password breaks the policy; ``message`` is the reason to show to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _fold(text: str) -> str:
    """The comparison key: NFKC-normalised, stripped, case-folded."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


@functools.cache
def common_passwords() -> frozenset[str]:
    """The common passwords (folded), read once from the package data on first use."""
    text = resources.files(__package__).joinpath(_COMMON_RESOURCE).read_text(encoding="utf-8")
    return frozenset(_fold(line) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def is_common(password: str) -> bool:
    return _fold(password) in common_passwords()


def check_password(password: str, *, email: str | None) -> None:
    """Raise ``PasswordRejected`` when ``password`` breaks the policy; return None otherwise."""
    if not isinstance(password, str):
        raise PasswordRejected("the password must be a text string")
    if len(password) < MIN_LENGTH:
        raise PasswordRejected(f"the password must have at least {MIN_LENGTH} characters")
    if len(password.encode("utf-8")) > MAX_BYTES:
        raise PasswordRejected(
            f"the password is too long: at most {MAX_BYTES} bytes in UTF-8 "
            f"({MAX_BYTES} plain letters or digits, fewer with accented letters or symbols)"
        )
    if is_common(password):
        raise PasswordRejected("this password is too common; choose a less predictable one")
    if email:
        local = _fold(email.rpartition("@")[0] if "@" in email else email)
        if len(local) >= MIN_LOCAL_PART and local in _fold(password):
            raise PasswordRejected("the password must not contain the part of your e-mail address before the @")
