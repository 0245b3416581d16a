"""Data-subject requests (LGPD art. 18 I-IX, art. 19): one aggregate per request, stream ``request-<id>``.

States, as Fides keeps them::

    identity_unverified --verify--> pending --start--> in_progress --complete--> completed
                                       |                  |   \\--deny--> denied (a reason, always)
                                       |                  \\--fail--> error (what failed) --start--> in_progress
                                       +--deny / cancel (the requester or the DPO) ...
    (any open state) --cancel--> canceled

A request filed by a signed-in person is verified by their session and starts ``pending``; one filed
through the contact channel starts ``identity_unverified`` until its 6-digit code is given back
(:mod:`.contact`). ``due_at`` is the day received + 15 days (art. 19); the DPO may move it later only with
a reason. Every transition is an event and a line of the request's history (who, when, from, to, and a
reason sealed in the vault: a reason is free text a person typed, so it is personal data as far as the
service can tell). Published views carry ids, states and field names only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from upgestao_kernel.errors import DomainError
from upgestao_kernel.events import Aggregate

from .contact import MAX_ATTEMPTS, VerificationState
from .events import PrivacyEvent

TYPES = (
    "confirmation",
    "access",
    "correction",
    "anonymisation",
    "blocking",
    "deletion",
    "portability",
    "sharing_info",
    "consent_info",
    "consent_revocation",
)
IDENTITY_UNVERIFIED = "identity_unverified"
PENDING = "pending"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
DENIED = "denied"
CANCELED = "canceled"
ERROR = "error"
STATES = (IDENTITY_UNVERIFIED, PENDING, IN_PROGRESS, COMPLETED, DENIED, CANCELED, ERROR)
OPEN_STATES = (IDENTITY_UNVERIFIED, PENDING, IN_PROGRESS, ERROR)
ROUTED_STATES = (PENDING, IN_PROGRESS, ERROR)  # open and verified: the DPO's to answer (an unverified one is not)
CLOSED_STATES = (COMPLETED, DENIED, CANCELED)
OUTCOMES = (COMPLETED, DENIED)
SESSION, CONTACT = "session", "contact"  # how the request came in (and how its requester was verified)
DUE_DAYS = 15  # LGPD art. 19 II
MAX_REASON = 2000
MAX_MESSAGE = 5000
MAX_WHAT_FAILED = 500


# -- refusals ----------------------------------------------------------------------------------------------


class InvalidValue(DomainError):
    """A value the domain cannot take (answered 422 naming ``field``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvalidTransition(DomainError):
    """The request's state does not allow the action (answered 409)."""

    def __init__(self, state: str, action: str) -> None:
        super().__init__(f"a request {state} cannot be {action}")
        self.state = state
        self.action = action


# -- values ------------------------------------------------------------------------------------------------


def clean_type(value: object) -> str:
    if value not in TYPES:
        raise InvalidValue("type", f"must be one of {', '.join(TYPES)}")
    return str(value)


def clean_text(name: str, value: object, limit: int, *, required: bool = True) -> str | None:
    """Free text (a reason, a message): trimmed, 1 to ``limit`` characters; an optional one may be absent or
    blank (``None``)."""
    if not required and (value is None or isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(name, "is required" if value is None or isinstance(value, str) else "must be text")
    text = value.strip()
    if len(text) > limit:
        raise InvalidValue(name, f"must be at most {limit} characters")
    return text


def due_for(received_at: datetime) -> datetime:
    """When a request received at ``received_at`` must be answered (art. 19 II: 15 days)."""
    return received_at + timedelta(days=DUE_DAYS)


def days_left(due_at: datetime, now: datetime) -> int:
    """Whole days until ``due_at`` (rounded up: due later today is 1 day; overdue is negative or 0)."""
    return math.ceil((due_at - now).total_seconds() / 86400)


def is_overdue(state: str, due_at: datetime, now: datetime) -> bool:
    """A verified request still open at its due date (one never verified is nobody's to answer yet)."""
    return state in ROUTED_STATES and due_at <= now


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


# -- events: stream ``request-<id>`` ---------------------------------------------------------------------

_TRANSITION = ("request_id", "type", "subject_id", "state", "previous")


class RequestEvent(PrivacyEvent, abstract=True):
    """An event of a request's stream. Its published ``type`` is the request's type (the contract every
    consumer reads: ``data["type"]``); stored as ``request_type``, since a declaration's ``type`` is the
    event's own type string."""

    def _published_value(self, name: str, subject_id: str) -> Any:
        if name == "type":
            return self.request_type  # type: ignore[attr-defined]
        return super()._published_value(name, subject_id)


@dataclass(frozen=True)
class RequestFiled(RequestEvent, subject="request_id",
                   publishes=("request_id", "type", "subject_id", "channel", "state", "due_at")):
    """A data-subject request was received: by a signed-in person (``channel`` session, verified, state
    ``pending``) or through the contact channel (``identity_unverified``; the address and the message are
    in ``sealed``, under the request's own id as vault subject)."""

    request_type: str
    subject_id: str | None
    requester_id: str | None
    channel: str
    state: str
    received_at: str
    due_at: str
    by_id: str | None
    by_role: str | None
    sealed: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestVerificationRequested(RequestEvent, subject="request_id", publishes=("request_id", "type")):
    """A 6-digit code went to the contact address (the notice: ``privacy.notice``); only its keyed hash
    is stored. Notifier kind ``privacy_request_verification``."""

    request_type: str
    code_hash: str
    expires_at: str


@dataclass(frozen=True)
class RequestVerificationFailed(RequestEvent, subject="request_id",
                                publishes=("request_id", "attempts", "exhausted")):
    """A wrong code was given; ``exhausted``: that was the last attempt (the code is dead)."""

    attempts: int
    exhausted: bool
    at: str


@dataclass(frozen=True)
class RequestVerified(RequestEvent, subject="request_id", publishes=_TRANSITION):
    """The requester proved the address (``identity_unverified`` -> ``pending``); ``subject_id`` is the
    person the address belongs to (``None``: nobody the platform knows)."""

    request_type: str
    subject_id: str | None
    subject_kind: str | None
    state: str
    previous: str
    at: str
    by_id: str | None
    by_role: str | None


@dataclass(frozen=True)
class RequestStarted(RequestEvent, subject="request_id", publishes=_TRANSITION):
    """The DPO started work (``in_progress``): each type's handler acts on it."""

    request_type: str
    subject_id: str | None
    state: str
    previous: str
    at: str
    by_id: str | None
    by_role: str | None


@dataclass(frozen=True)
class RequestCompleted(RequestEvent, subject="request_id",
                       publishes=("request_id", "type", "subject_id", "state", "previous", "outcome")):
    """The request was answered (``outcome`` completed) or denied (with a sealed reason). Notifier kind
    ``privacy_request_completed``: the requester is written to. ``answer`` holds what privacy answered
    itself (ids, service names, field names, third parties' policy addresses: no personal value). A download
    link (an access bundle's) is never stored here: it is a credential, kept sealed in the completion's
    notice until the notifier has had it (``has_download`` says there is one)."""

    request_type: str
    subject_id: str | None
    state: str
    previous: str
    outcome: str
    at: str
    by_id: str | None
    by_role: str | None
    answer: dict[str, Any] | None = None
    has_download: bool = False  # a download link was sent (the link itself only in the notice, sealed)
    sealed: dict[str, str | None] = field(default_factory=dict)  # the reason


@dataclass(frozen=True)
class RequestCanceled(RequestEvent, subject="request_id", publishes=_TRANSITION):
    """The requester or the DPO withdrew the request (or its code died after too many attempts)."""

    request_type: str
    subject_id: str | None
    state: str
    previous: str
    at: str
    by_id: str | None
    by_role: str | None
    sealed: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestFailed(RequestEvent, subject="request_id", publishes=(*_TRANSITION, "what_failed")):
    """Working on the request failed (``error``): ``what_failed`` names the step (no personal value)."""

    request_type: str
    subject_id: str | None
    state: str
    previous: str
    what_failed: str
    at: str
    by_id: str | None
    by_role: str | None


@dataclass(frozen=True)
class RequestDueDateExtended(RequestEvent, subject="request_id",
                             publishes=("request_id", "due_at", "previous_due_at")):
    """The DPO moved the due date later, with a (sealed) reason."""

    due_at: str
    previous_due_at: str
    at: str
    by_id: str | None
    by_role: str | None
    sealed: dict[str, str | None] = field(default_factory=dict)


# -- the aggregate ---------------------------------------------------------------------------------------


@dataclass
class Transition:
    at: datetime
    by_id: str | None
    by_role: str | None
    previous: str | None
    state: str
    event: str  # filed, verified, started, completed, denied, canceled, failed, extended
    sealed_reason: str | None = None
    note: str | None = None  # what failed; an extension's new due date


@dataclass(frozen=True)
class Actor:
    id: str | None
    role: str | None


class DataSubjectRequest(Aggregate):
    stream_type = "request"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.type = ""
        self.state = ""
        self.subject_id: str | None = None
        self.subject_kind: str | None = None
        self.requester_id: str | None = None
        self.channel = SESSION
        self.received_at: datetime | None = None
        self.due_at: datetime | None = None
        self.closed_at: datetime | None = None
        self.outcome: str | None = None
        self.answer: dict[str, Any] | None = None
        self.has_download = False
        self.what_failed: str | None = None
        self.sealed_contact: dict[str, str | None] = {}
        self.verification = VerificationState()
        self.history: list[Transition] = []

    # -- who it concerns ------------------------------------------------------------------------------------
    @property
    def vault_subject(self) -> str:
        """Whose key seals this request's texts: its subject, else the request itself (an unknown person)."""
        return self.subject_id or self.id

    def concerns(self, actor_id: str | None) -> bool:
        return actor_id is not None and actor_id in (self.subject_id, self.requester_id)

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES

    # -- decisions ----------------------------------------------------------------------------------------
    @classmethod
    def file(cls, id: str, *, type: object, subject_id: str, by: Actor, now: datetime) -> DataSubjectRequest:
        """A signed-in person files for themself: verified by their session."""
        request = cls(id)
        request.trigger(RequestFiled(request_type=clean_type(type), subject_id=subject_id, requester_id=subject_id,
                                     channel=SESSION, state=PENDING, received_at=now.isoformat(),
                                     due_at=due_for(now).isoformat(), by_id=by.id, by_role=by.role))
        return request

    @classmethod
    def file_by_contact(cls, id: str, *, type: object, sealed: dict[str, str | None], code_hash: str,
                        code_expires_at: datetime, now: datetime) -> DataSubjectRequest:
        """Someone files through the contact channel: unverified until the code sent to the address is
        given back."""
        request = cls(id)
        request.trigger(RequestFiled(request_type=clean_type(type), subject_id=None, requester_id=None, channel=CONTACT,
                                     state=IDENTITY_UNVERIFIED, received_at=now.isoformat(),
                                     due_at=due_for(now).isoformat(), by_id=None, by_role=None, sealed=sealed))
        request.trigger(RequestVerificationRequested(request_type=request.type, code_hash=code_hash,
                                                     expires_at=code_expires_at.isoformat()))
        return request

    def verify(self, code_hash: str, *, now: datetime) -> str:
        """Check a code (its keyed hash) given back: ``"verified"`` (the caller then calls
        :meth:`verified` with the subject), ``"wrong"`` (recorded), or raise: ``CodeExpired``,
        ``CodeExhausted``, ``CodeUsed``."""
        if self.state != IDENTITY_UNVERIFIED:
            self.verification.refuse_used_or_dead(self.state == CANCELED)
        self.verification.check_usable(now)
        if self.verification.matches(code_hash):
            return "verified"
        attempts = self.verification.attempts + 1
        exhausted = attempts >= MAX_ATTEMPTS
        self.trigger(RequestVerificationFailed(attempts=attempts, exhausted=exhausted, at=now.isoformat()))
        if exhausted:
            self.trigger(RequestCanceled(request_type=self.type, subject_id=None, state=CANCELED, previous=self.state,
                                         at=now.isoformat(), by_id=None, by_role=None))
        return "wrong"

    def verified(self, *, subject_id: str | None, subject_kind: str | None, now: datetime) -> None:
        self._require(IDENTITY_UNVERIFIED, action="verified")
        self.trigger(RequestVerified(request_type=self.type, subject_id=subject_id, subject_kind=subject_kind,
                                     state=PENDING, previous=self.state, at=now.isoformat(), by_id=None, by_role=None))

    def start(self, *, by: Actor, now: datetime) -> None:
        self._require(PENDING, ERROR, action="started")
        self.trigger(RequestStarted(request_type=self.type, subject_id=self.subject_id, state=IN_PROGRESS,
                                    previous=self.state, at=now.isoformat(), by_id=by.id, by_role=by.role))

    def complete(self, *, by: Actor, now: datetime, answer: dict[str, Any] | None = None,
                 has_download: bool = False, sealed_reason: str | None = None) -> None:
        self._require(IN_PROGRESS, action="completed")
        self.trigger(RequestCompleted(request_type=self.type, subject_id=self.subject_id, state=COMPLETED,
                                      previous=self.state, outcome=COMPLETED, at=now.isoformat(), by_id=by.id,
                                      by_role=by.role, answer=answer, has_download=has_download,
                                      sealed={"reason": sealed_reason} if sealed_reason else {}))

    def deny(self, *, sealed_reason: str, by: Actor, now: datetime) -> None:
        """Refused, with a reason (required: the caller seals the text it checked with :func:`clean_text`)."""
        if not sealed_reason:
            raise InvalidValue("reason", "is required")
        self._require(PENDING, IN_PROGRESS, ERROR, action="denied")
        self.trigger(RequestCompleted(request_type=self.type, subject_id=self.subject_id, state=DENIED,
                                      previous=self.state, outcome=DENIED, at=now.isoformat(), by_id=by.id,
                                      by_role=by.role, sealed={"reason": sealed_reason}))

    def cancel(self, *, by: Actor, now: datetime, sealed_reason: str | None = None) -> None:
        self._require(*OPEN_STATES, action="canceled")
        self.trigger(RequestCanceled(request_type=self.type, subject_id=self.subject_id, state=CANCELED,
                                     previous=self.state, at=now.isoformat(), by_id=by.id, by_role=by.role,
                                     sealed={"reason": sealed_reason} if sealed_reason else {}))

    def fail(self, what_failed: object, *, by: Actor, now: datetime) -> None:
        text = clean_text("what_failed", what_failed, MAX_WHAT_FAILED)
        self._require(IN_PROGRESS, PENDING, action="failed")
        self.trigger(RequestFailed(request_type=self.type, subject_id=self.subject_id, state=ERROR, previous=self.state,
                                   what_failed=str(text), at=now.isoformat(), by_id=by.id, by_role=by.role))

    def extend(self, due_at: datetime, *, sealed_reason: str, by: Actor, now: datetime) -> None:
        """Move the due date later (never earlier, never into the past), with a reason."""
        if not sealed_reason:
            raise InvalidValue("reason", "is required")
        self._require(*OPEN_STATES, action="extended")
        assert self.due_at is not None
        if due_at <= now:
            raise InvalidValue("due_at", "must be in the future")
        if due_at <= self.due_at:
            raise InvalidValue("due_at", f"must be later than the current due date {self.due_at.isoformat()}")
        self.trigger(RequestDueDateExtended(due_at=due_at.isoformat(), previous_due_at=self.due_at.isoformat(),
                                            at=now.isoformat(), by_id=by.id, by_role=by.role,
                                            sealed={"reason": sealed_reason}))

    def _require(self, *states: str, action: str) -> None:
        if self.state not in states:
            raise InvalidTransition(self.state, action)

    # -- views ---------------------------------------------------------------------------------------------
    def days_left(self, now: datetime) -> int:
        assert self.due_at is not None
        return days_left(self.due_at, now)

    def overdue(self, now: datetime) -> bool:
        assert self.due_at is not None
        return is_overdue(self.state, self.due_at, now)

    # -- state from events ---------------------------------------------------------------------------------
    def _moved(self, state: str, previous: str | None, at: str, by_id: str | None, by_role: str | None, event: str,
               sealed: dict[str, str | None] | None = None, note: str | None = None) -> None:
        self.state = state
        self.history.append(Transition(at=datetime.fromisoformat(at), by_id=by_id, by_role=by_role,
                                       previous=previous, state=state, event=event,
                                       sealed_reason=(sealed or {}).get("reason"), note=note))

    def when_request_filed(self, request_type, subject_id, requester_id, channel, state, received_at, due_at, by_id,
                           by_role, sealed) -> None:
        self.type, self.subject_id, self.requester_id, self.channel = request_type, subject_id, requester_id, channel
        self.received_at, self.due_at = datetime.fromisoformat(received_at), datetime.fromisoformat(due_at)
        self.sealed_contact = dict(sealed)
        self._moved(state, None, received_at, by_id, by_role, "filed")

    def when_request_verification_requested(self, request_type, code_hash, expires_at) -> None:
        self.verification = VerificationState(code_hash=code_hash, expires_at=datetime.fromisoformat(expires_at))

    def when_request_verification_failed(self, attempts, exhausted, at) -> None:
        self.verification.attempts = attempts

    def when_request_verified(self, request_type, subject_id, subject_kind, state, previous, at, by_id,
                              by_role) -> None:
        self.subject_id, self.subject_kind = subject_id, subject_kind
        self.verification.used = True
        self._moved(state, previous, at, by_id, by_role, "verified")

    def when_request_started(self, request_type, subject_id, state, previous, at, by_id, by_role) -> None:
        self.what_failed = None
        self._moved(state, previous, at, by_id, by_role, "started")

    def when_request_completed(self, request_type, subject_id, state, previous, outcome, at, by_id, by_role,
                               answer=None, has_download=False, sealed=None) -> None:
        self.outcome, self.answer, self.has_download = outcome, answer, has_download
        self.closed_at = datetime.fromisoformat(at)
        self._moved(state, previous, at, by_id, by_role, "completed" if outcome == COMPLETED else "denied", sealed)

    def when_request_canceled(self, request_type, subject_id, state, previous, at, by_id, by_role, sealed=None) -> None:
        self.closed_at = datetime.fromisoformat(at)
        self._moved(state, previous, at, by_id, by_role, "canceled", sealed)

    def when_request_failed(self, request_type, subject_id, state, previous, what_failed, at, by_id, by_role) -> None:
        self.what_failed = what_failed
        self._moved(state, previous, at, by_id, by_role, "failed", note=what_failed)

    def when_request_due_date_extended(self, due_at, previous_due_at, at, by_id, by_role, sealed=None) -> None:
        self.due_at = datetime.fromisoformat(due_at)
        self._moved(self.state, self.state, at, by_id, by_role, "extended", sealed, note=due_at)


__all__ = ["DataSubjectRequest", "Actor", "InvalidValue", "InvalidTransition", "TYPES", "STATES", "_iso", "_when"]
