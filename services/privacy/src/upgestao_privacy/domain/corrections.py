"""Correction requests (R5.1, LGPD art. 18 III): a person asks that fields of their profile be changed.

A correction is filed by the person it is about (the *requester*: their ``PATCH /v1/me`` touched a field
their role may not edit, or they filed one with ``POST /v1/privacy/corrections``), then decided by a
reviewer (``privacy.review``): approved (identity applies the change, as the reviewer) or denied (a reason
is required). Nobody decides their own correction (separation of duties). Stream ``correction-<id>``.

The new values are personal data: the events hold them sealed (vault ciphertext under the requester), and
what is published is ids, states and field *names* only. The requester's reason and a reviewer's reason
are free text about the person: sealed too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from upgestao_kernel.events import Aggregate

from .events import PrivacyEvent

# The profile fields a correction may ask for (identity's profile; a photo is uploaded, a locale is one's own)
CORRECTABLE_FIELDS = ("full_name", "email", "phone", "birth_date", "address", "job_title", "gender")
PENDING, APPROVED, DENIED = "pending", "approved", "denied"
STATES = (PENDING, APPROVED, DENIED)
MAX_REASON = 2000


class CorrectionError(Exception):
    """A rule of the correction workflow was broken (the service layer answers it)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class InvalidCorrection(CorrectionError):
    """Bad input: 422 naming ``field``."""


class OwnCorrection(CorrectionError):
    """A reviewer tried to decide their own correction: 403."""


class AlreadyDecided(CorrectionError):
    """The correction is no longer pending: 409."""


@dataclass(frozen=True)
class CorrectionFiled(PrivacyEvent, subject="correction_id",
                      publishes=("correction_id", "requester_id", "fields", "source")):
    """A person asked for a correction of ``fields`` of their profile; ``sealed`` holds the new values (JSON
    text, sealed under the requester) and the requester's reason, if any."""

    requester_id: str
    fields: list[str]
    source: str  # "profile_edit" (a PATCH /v1/me) or "request" (POST /v1/privacy/corrections)
    sealed: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class CorrectionDecided(PrivacyEvent, subject="correction_id",
                        publishes=("correction_id", "requester_id", "fields", "decision", "reviewer_id")):
    """A reviewer approved (identity applied the change) or denied (``sealed`` holds the reason, under the
    requester) a correction. The notifier e-mails the requester (kind ``correction_decided``)."""

    requester_id: str
    fields: list[str]
    decision: str
    reviewer_id: str
    sealed: dict[str, str | None] = field(default_factory=dict)


def clean_changes(changes: object) -> dict[str, Any]:
    """The fields asked for, by name (each one correctable); raises :class:`InvalidCorrection`."""
    if not isinstance(changes, Mapping) or not changes:
        raise InvalidCorrection("changes", "must be an object naming at least one field")
    for name in changes:
        if name not in CORRECTABLE_FIELDS:
            raise InvalidCorrection(f"changes.{name}", "is not a field a correction may change "
                                                       f"(one of {', '.join(CORRECTABLE_FIELDS)})")
    return {name: changes[name] for name in sorted(changes)}


def clean_reason(reason: object, *, field_name: str = "reason", required: bool = False) -> str | None:
    if reason is None and not required:
        return None
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidCorrection(field_name, "is required" if required else "must be a non-empty text")
    if len(reason.strip()) > MAX_REASON:
        raise InvalidCorrection(field_name, f"must be at most {MAX_REASON} characters")
    return reason.strip()


class Correction(Aggregate):
    stream_type = "correction"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.requester_id = ""
        self.fields: list[str] = []
        self.state = PENDING
        self.reviewer_id: str | None = None
        self.sealed: dict[str, str | None] = {}

    @classmethod
    def file(cls, id: str, *, requester_id: str, fields: list[str], source: str,
             sealed: Mapping[str, str | None]) -> Correction:
        if not fields or any(name not in CORRECTABLE_FIELDS for name in fields):
            raise InvalidCorrection("changes", "names no correctable field")
        if source not in ("profile_edit", "request"):
            raise InvalidCorrection("source", "is unknown")
        correction = cls(id)
        correction.trigger(CorrectionFiled(requester_id=requester_id, fields=sorted(fields), source=source,
                                           sealed=dict(sealed)))
        return correction

    def _decidable_by(self, reviewer_id: str) -> None:
        if reviewer_id == self.requester_id:
            raise OwnCorrection(None, "Nobody decides their own correction.")
        if self.state != PENDING:
            raise AlreadyDecided(None, f"This correction was already {self.state}.")

    def approve(self, *, reviewer_id: str) -> None:
        self._decidable_by(reviewer_id)
        self.trigger(CorrectionDecided(requester_id=self.requester_id, fields=list(self.fields), decision=APPROVED,
                                       reviewer_id=reviewer_id))

    def check_denial(self, *, reviewer_id: str) -> None:
        """Whether ``reviewer_id`` may deny it now (before the reason is sealed)."""
        self._decidable_by(reviewer_id)

    def deny(self, *, reviewer_id: str, sealed_reason: str) -> None:
        self._decidable_by(reviewer_id)
        if not sealed_reason:
            raise InvalidCorrection("reason", "is required to deny a correction")
        self.trigger(CorrectionDecided(requester_id=self.requester_id, fields=list(self.fields), decision=DENIED,
                                       reviewer_id=reviewer_id, sealed={"reason": sealed_reason}))

    def check_approval(self, *, reviewer_id: str) -> None:
        """Whether ``reviewer_id`` may approve it now (before identity is asked to apply it)."""
        self._decidable_by(reviewer_id)

    def when_correction_filed(self, requester_id, fields, source, sealed) -> None:
        self.requester_id, self.fields, self.sealed = requester_id, list(fields), dict(sealed)

    def when_correction_decided(self, requester_id, fields, decision, reviewer_id, sealed) -> None:
        self.state, self.reviewer_id = decision, reviewer_id
