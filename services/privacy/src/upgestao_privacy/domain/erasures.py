"""A data subject's erasure across services (R5.3, R4.3): one per erasure request, stream ``erasure-<request id>``.

Privacy asks every participant (identity and messaging by default; integrations join later) to erase the
person (``privacy.erasure_requested.v1``), records each one's confirmation (``identity.subject_erased.v1``,
``messaging.subject_erased.v1``) and completes when all have confirmed. The modes are distinct outcomes
(LGPD art. 18 IV and VI):

* ``deletion`` -- every service shreds the person's key (every value sealed under it, events included, reads
  back as erased for good), purges its read models, search entries and blind indexes; privacy shreds its own
  records of the person too (sealed contact addresses, correction values, access bundles). Ids stay as
  tombstones (the request itself, the audit log: ids and field names only).
* ``anonymisation`` -- the same shredding: what stays (ids, counts, states, times) can no longer be tied to a
  person, since every identifying value is unreadable; kept so that aggregates (how many conversations a team
  had) keep adding up.
* ``blocking`` -- nothing is destroyed: each service suspends processing of the person (their data is kept,
  sealed, for a legal obligation or until unblocked); privacy keeps its records and shreds nothing. The DPO may
  lift a completed blocking (``privacy.blocking_lifted.v1``; identity's ``unblock_subject``).

Events hold ids, service names, modes and recipients' names only: no personal value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from upgestao_kernel.events import Aggregate

from .events import PrivacyEvent

MODES = ("deletion", "anonymisation", "blocking")
ERASURE_TYPES = MODES  # the request types that start an erasure (the mode is the request's type)
PENDING, CONFIRMED = "pending", "confirmed"
SHREDDING_MODES = ("deletion", "anonymisation")  # the modes in which privacy shreds its own records


@dataclass(frozen=True)
class ErasureRequested(PrivacyEvent, subject="request_id",
                       publishes=("request_id", "subject_id", "mode", "participants", "recipients")):
    """Privacy asks the participants to erase a person (``mode``: deletion, anonymisation or blocking).

    ``recipients``: the third parties the audit log says received the person's data (R4.3); the integrations
    (issue 15) consume this event and tell each of them. ``participants``: the services whose confirmation the
    erasure waits for."""

    subject_id: str
    mode: str
    participants: list[str]
    recipients: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ErasureConfirmed(PrivacyEvent, subject="request_id", publishes=("request_id", "participant", "subject_id")):
    """A participant (a service) confirmed it erased the person (``confirmation``: the id of its
    ``subject_erased`` event)."""

    participant: str
    subject_id: str
    confirmation: str


@dataclass(frozen=True)
class ErasureCompleted(PrivacyEvent, subject="request_id",
                       publishes=("request_id", "subject_id", "mode", "privacy_shredded")):
    """Every participant confirmed; privacy erased its own records of the person (``privacy_shredded``:
    whether it shredded the person's key here: not in ``blocking``)."""

    subject_id: str
    mode: str
    privacy_shredded: bool


@dataclass(frozen=True)
class BlockingLifted(PrivacyEvent, subject="request_id", publishes=("request_id", "subject_id", "lifted_by")):
    """The DPO lifted a completed blocking: the person's data is processed again (identity unblocked them)."""

    subject_id: str
    lifted_by: str | None


class NotBlocked(ValueError):
    """Only a completed blocking, not lifted yet, can be lifted."""


class Erasure(Aggregate):
    """Id: the request's id."""

    stream_type = "erasure"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.subject_id: str | None = None
        self.mode: str | None = None
        self.participants: dict[str, str] = {}
        self.recipients: list[str] = []
        self.completed = False
        self.privacy_shredded = False
        self.lifted = False

    @classmethod
    def start(cls, request_id: str, subject_id: str, mode: str, participants: list[str],
              recipients: list[str]) -> Erasure:
        if mode not in MODES:
            raise ValueError(f"not an erasure mode: {mode!r}")
        if not participants:
            raise ValueError("an erasure needs at least one participant")
        erasure = cls(request_id)
        erasure.trigger(ErasureRequested(subject_id=subject_id, mode=mode,
                                         participants=sorted(set(participants)), recipients=sorted(set(recipients))))
        return erasure

    @property
    def pending(self) -> list[str]:
        return sorted(s for s, state in self.participants.items() if state == PENDING)

    @property
    def all_confirmed(self) -> bool:
        return bool(self.participants) and not self.pending

    def confirm(self, service: str, subject_id: str, confirmation: str) -> bool:
        """Record ``service``'s confirmation; False when there is nothing to record (not a participant, another
        person, or confirmed already: a repeated confirmation changes nothing)."""
        if service not in self.participants or subject_id != self.subject_id:
            return False
        if self.participants[service] == CONFIRMED:
            return False
        self.trigger(ErasureConfirmed(participant=service, subject_id=subject_id, confirmation=confirmation))
        return True

    def complete(self) -> None:
        if self.completed or not self.all_confirmed:
            raise ValueError("an erasure completes once, when every participant confirmed")
        self.trigger(ErasureCompleted(subject_id=self.subject_id or "", mode=self.mode or "",
                                      privacy_shredded=self.mode in SHREDDING_MODES))

    def lift(self, by: str | None) -> None:
        """Lift a completed blocking (once)."""
        if self.mode != "blocking" or not self.completed or self.lifted:
            raise NotBlocked("only a completed blocking, not lifted yet, can be lifted")
        self.trigger(BlockingLifted(subject_id=self.subject_id or "", lifted_by=by))

    def progress(self) -> dict[str, Any]:
        return {"mode": self.mode, "subject_id": self.subject_id,
                "participants": dict(sorted(self.participants.items())), "pending": self.pending,
                "recipients": list(self.recipients), "completed": self.completed,
                "privacy_shredded": self.privacy_shredded, "lifted": self.lifted}

    # -- state from events
    def when_erasure_requested(self, subject_id: str, mode: str, participants: list[str],
                               recipients: list[str] | None = None) -> None:
        self.subject_id, self.mode = subject_id, mode
        self.participants = {service: PENDING for service in participants}
        self.recipients = list(recipients or [])

    def when_erasure_confirmed(self, participant: str, subject_id: str, confirmation: str) -> None:
        self.participants[participant] = CONFIRMED

    def when_erasure_completed(self, subject_id: str, mode: str, privacy_shredded: bool) -> None:
        self.completed, self.privacy_shredded = True, privacy_shredded

    def when_blocking_lifted(self, subject_id: str, lifted_by: str | None) -> None:
        self.lifted = True
