"""Security incidents (LGPD art. 48; ANPD Resolution CD/ANPD 15/2024) and their breach notices: pure domain.

The DPO records an incident with every item of art. 48 §1 (a *draft*), then confirms it: the affected people
are resolved (explicit ids, or a criterion: every user, every customer, the customers of one channel) and
stored as ids, and one breach notice is requested for all of them (a campaign: one e-mail each, by the
notifier). ``draft`` → ``confirmed``; nothing goes back, and an incident is never deleted (kept at least
5 years: :data:`RETENTION_YEARS`).

Are the texts personal data? The free texts (nature of the data, who is affected, risks, measures, reasons
for a delay, what to do, the DPO's contact) are written by a person about an incident that hit people: they
may well name someone ("the account of Maria S. was used to ..."), and the DPO's contact names the DPO. So
every one of them is sealed in the vault under the incident's own key (subject = the incident id) and opened
only for the DPO and for the notice, each opening audited; events publish the incident's id, its categories,
the criterion's kind, counts and field *names*, never a text. Categories and the criterion are closed sets,
not free text.

Stream ``incident-<id>``: ``IncidentRecorded``, then on confirmation ``AffectedPeopleResolved`` (one per
page of at most :data:`PEOPLE_PER_EVENT` ids, private to privacy), ``IncidentConfirmed`` and, when anyone is
affected, ``BreachNoticeRequested`` (the notifier's kind ``breach_notice``; its event id is the notice's id).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from upgestao_kernel.events import Aggregate

from .business_days import notice_deadline
from .events import PrivacyEvent

DRAFT = "draft"
CONFIRMED = "confirmed"
STATES = (DRAFT, CONFIRMED)
RETENTION_YEARS = 5

# The categories of personal data an incident may involve (LGPD art. 5 II: "sensitive").
CATEGORIES = ("identification", "contact", "demographic", "professional", "image", "credential",
              "communication", "financial", "location", "sensitive", "other")
# Who is affected: explicit ids, or a criterion resolved at confirmation.
IDS = "ids"
EVERY_USER = "every_user"
EVERY_CUSTOMER = "every_customer"
CHANNEL_CUSTOMERS = "channel_customers"
AFFECTED_KINDS = (IDS, EVERY_USER, EVERY_CUSTOMER, CHANNEL_CUSTOMERS)
MAX_IDS = 10_000  # explicit ids in one incident (a criterion resolves any number)
PEOPLE_PER_EVENT = 1_000

# The texts of art. 48 §1, sealed; lists are sealed as JSON text.
TEXTS = ("people_affected", "risks", "technical_measures", "measures_taken", "delay_reasons", "dpo_contact")
LISTS = ("nature_of_data", "what_to_do")
SEALED_FIELDS = LISTS + TEXTS
OPTIONAL_TEXTS = ("delay_reasons",)
MAX_TEXT = 4_000
EARLIEST_YEAR = 2000  # (and never in the future): the deadline's arithmetic stays within the calendar
MAX_ITEM = 500
MAX_ITEMS = 20
CHANNELS = ("whatsapp", "email", "web", "phone", "other")  # messaging's conversation channels


class IncidentError(ValueError):
    """An incident's input or transition is refused; ``field`` names what is wrong (``None``: the state)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# -- events: stream ``incident-<id>``


@dataclass(frozen=True)
class IncidentRecorded(PrivacyEvent, subject="incident_id",
                       publishes=("incident_id", "categories", "affected_kind", "sealed")):
    """The DPO recorded a security incident (a draft); ``sealed`` holds its texts sealed under the incident."""

    categories: list[str]
    affected_kind: str
    affected_channel: str | None
    affected_ids: list[str]
    occurred_at: str
    detected_at: str
    deadline_at: str
    sealed: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class AffectedPeopleResolved(PrivacyEvent, subject="incident_id", publishes=False):
    """A page of the people the confirmed incident affects (ids, in order from ``offset``)."""

    offset: int
    subject_ids: list[str]


@dataclass(frozen=True)
class IncidentConfirmed(PrivacyEvent, subject="incident_id",
                        publishes=("incident_id", "affected_count", "campaign_id", "late")):
    """The DPO confirmed the incident: ``affected_count`` people resolved; ``late`` past the 3 business days."""

    affected_count: int
    campaign_id: str | None
    late: bool
    confirmed_at: str  # the instant the deadline is judged at (the use case's clock)
    sealed: dict[str, str | None] = field(default_factory=dict)  # a reason for the delay given at confirmation


@dataclass(frozen=True)
class BreachNoticeRequested(PrivacyEvent, subject="incident_id",
                            publishes=("incident_id", "campaign_id", "recipients")):
    """Every affected person is to be told (the notifier's ``breach_notice``; this event's id is the notice)."""

    campaign_id: str
    recipients: int


# -- input


def _text(name: str, value: Any, *, required: bool = True, limit: int = MAX_TEXT) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise IncidentError(name, "is required: a non-empty text")
    if len(value) > limit:
        raise IncidentError(name, f"is at most {limit} characters")
    return value.strip()


def _items(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise IncidentError(name, "is required: a non-empty list of texts")
    if len(value) > MAX_ITEMS:
        raise IncidentError(name, f"has at most {MAX_ITEMS} items")
    return [_text(f"{name}.{i}", item, limit=MAX_ITEM) for i, item in enumerate(value)]  # type: ignore[misc]


def _instant(name: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        instant = value
    else:
        try:
            instant = datetime.fromisoformat(str(value).replace("Z", "+00:00")) if isinstance(value, str) else None
        except ValueError:
            instant = None
    if instant is None or instant.tzinfo is None:
        raise IncidentError(name, "must be an ISO-8601 date-time with a time zone")
    if instant.year < EARLIEST_YEAR:
        raise IncidentError(name, f"must be in {EARLIEST_YEAR} or later")
    return instant


def check_uuid(name: str, value: Any) -> str:
    try:
        if not isinstance(value, str):
            raise ValueError
        return str(uuid.UUID(value))
    except ValueError:
        raise IncidentError(name, "must be a UUID") from None


@dataclass(frozen=True)
class Affected:
    kind: str
    channel: str | None = None
    ids: tuple[str, ...] = ()


def parse_affected(value: Any) -> Affected:
    if not isinstance(value, dict):
        raise IncidentError("affected", "is required: {kind: ids|every_user|every_customer|channel_customers}")
    kind = value.get("kind")
    if kind not in AFFECTED_KINDS:
        raise IncidentError("affected.kind", f"must be one of {', '.join(AFFECTED_KINDS)}")
    unknown = sorted(set(value) - {"kind", "ids", "channel"})
    if unknown:
        raise IncidentError(f"affected.{unknown[0]}", "is not a field of affected")
    if kind == IDS:
        ids = value.get("ids")
        if not isinstance(ids, list) or not ids:
            raise IncidentError("affected.ids", "is required for kind ids: a non-empty list of UUIDs")
        if len(ids) > MAX_IDS:
            raise IncidentError("affected.ids", f"has at most {MAX_IDS} ids (use a criterion for more)")
        clean = [check_uuid(f"affected.ids.{i}", v) for i, v in enumerate(ids)]
        if value.get("channel") is not None:
            raise IncidentError("affected.channel", "is only for kind channel_customers")
        return Affected(IDS, None, tuple(dict.fromkeys(clean)))
    if value.get("ids") is not None:
        raise IncidentError("affected.ids", "is only for kind ids")
    if kind == CHANNEL_CUSTOMERS:
        channel = value.get("channel")
        if channel not in CHANNELS:
            raise IncidentError("affected.channel",
                                f"is required for kind channel_customers: one of {', '.join(CHANNELS)}")
        return Affected(kind, channel)
    if value.get("channel") is not None:
        raise IncidentError("affected.channel", "is only for kind channel_customers")
    return Affected(kind)


@dataclass(frozen=True)
class IncidentInput:
    """What the DPO records, checked (every LGPD art. 48 §1 item)."""

    categories: list[str]
    affected: Affected
    occurred_at: datetime
    detected_at: datetime
    texts: dict[str, str | None]  # TEXTS and LISTS (lists as lists)


def parse_input(body: Any, now: datetime) -> IncidentInput:
    if not isinstance(body, dict):
        raise IncidentError("body", "must be an object")
    known = {"categories", "affected", "occurred_at", "detected_at", *SEALED_FIELDS}
    unknown = sorted(set(body) - known)
    if unknown:
        raise IncidentError(unknown[0], "is not a field of an incident")
    categories = body.get("categories")
    if not isinstance(categories, list) or not categories:
        raise IncidentError("categories", f"is required: a non-empty list of {', '.join(CATEGORIES)}")
    for i, c in enumerate(categories):
        if c not in CATEGORIES:
            raise IncidentError(f"categories.{i}", f"must be one of {', '.join(CATEGORIES)}")
    texts: dict[str, Any] = {name: _items(name, body.get(name)) for name in LISTS}
    for name in TEXTS:
        texts[name] = _text(name, body.get(name), required=name not in OPTIONAL_TEXTS)
    occurred = _instant("occurred_at", body.get("occurred_at"))
    detected = _instant("detected_at", body.get("detected_at"))
    if detected > now:
        raise IncidentError("detected_at", "is in the future")
    if occurred > detected:
        raise IncidentError("occurred_at", "is after detected_at")
    return IncidentInput(categories=list(dict.fromkeys(categories)), affected=parse_affected(body.get("affected")),
                         occurred_at=occurred, detected_at=detected, texts=texts)


# -- the aggregate


class Incident(Aggregate):
    stream_type = "incident"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.state = DRAFT
        self.categories: list[str] = []
        self.affected = Affected(IDS)
        self.occurred_at: datetime | None = None
        self.detected_at: datetime | None = None
        self.deadline_at: datetime | None = None
        self.sealed: dict[str, str | None] = {}
        self.people: list[str] = []
        self.campaign_id: str | None = None
        self.late = False

    @classmethod
    def record(cls, incident_id: str, data: IncidentInput, sealed: dict[str, str | None]) -> Incident:
        incident = cls(incident_id)
        incident.trigger(IncidentRecorded(
            categories=data.categories, affected_kind=data.affected.kind, affected_channel=data.affected.channel,
            affected_ids=list(data.affected.ids), occurred_at=data.occurred_at.isoformat(),
            detected_at=data.detected_at.isoformat(), deadline_at=notice_deadline(data.detected_at).isoformat(),
            sealed=dict(sealed)))
        return incident

    def confirm(self, people: list[str], campaign_id: str, now: datetime, *, delay_sealed: str | None) -> None:
        """Confirm with the resolved ``people``: the delay must be explained when past the deadline."""
        if self.state != DRAFT:
            raise IncidentError(None, "the incident is confirmed already: its notice was requested once")
        assert self.deadline_at is not None
        late = now > self.deadline_at
        if late and delay_sealed is None and self.sealed.get("delay_reasons") is None:
            raise IncidentError("delay_reasons", "is required: the 3 business days to notify have passed "
                                                 "(LGPD art. 48 §1 VI asks for the reasons of the delay)")
        people = list(dict.fromkeys(people))
        for offset in range(0, len(people), PEOPLE_PER_EVENT):
            self.trigger(AffectedPeopleResolved(offset=offset, subject_ids=people[offset:offset + PEOPLE_PER_EVENT]))
        self.trigger(IncidentConfirmed(affected_count=len(people), campaign_id=campaign_id if people else None,
                                       late=late, confirmed_at=now.isoformat(),
                                       sealed={"delay_reasons": delay_sealed} if delay_sealed else {}))
        if people:
            self.trigger(BreachNoticeRequested(campaign_id=campaign_id, recipients=len(people)))

    # -- applying events

    def when_incident_recorded(self, categories: list[str], affected_kind: str, affected_channel: str | None,
                               affected_ids: list[str], occurred_at: str, detected_at: str, deadline_at: str,
                               sealed: dict[str, str | None]) -> None:
        self.categories = list(categories)
        self.affected = Affected(affected_kind, affected_channel, tuple(affected_ids))
        self.occurred_at = datetime.fromisoformat(occurred_at)
        self.detected_at = datetime.fromisoformat(detected_at)
        self.deadline_at = datetime.fromisoformat(deadline_at)
        self.sealed = dict(sealed)

    def when_affected_people_resolved(self, offset: int, subject_ids: list[str]) -> None:
        self.people[offset:offset + len(subject_ids)] = subject_ids

    def when_incident_confirmed(self, affected_count: int, campaign_id: str | None, late: bool, confirmed_at: str,
                                sealed: dict[str, str | None] | None = None) -> None:
        self.state = CONFIRMED
        self.campaign_id = campaign_id
        self.late = late
        for name, value in (sealed or {}).items():
            if value is not None:
                self.sealed[name] = value

    def when_breach_notice_requested(self, campaign_id: str, recipients: int) -> None:
        self.campaign_id = campaign_id
