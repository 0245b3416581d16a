"""The languages identity's messages to a user can be written in: a preference, not personal data."""

from __future__ import annotations

from .errors import UnknownLocale

PT_BR = "pt-BR"
EN = "en"
LOCALES = (PT_BR, EN)
DEFAULT_LOCALE = PT_BR


def checked_locale(value: object) -> str:
    """``value`` if it is a language identity writes in, else :class:`UnknownLocale`."""
    if not isinstance(value, str) or value not in LOCALES:
        raise UnknownLocale(value, LOCALES)
    return value
