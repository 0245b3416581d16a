"""Customer conversations: one customer, a channel, a status machine, priority, labels, assignee, team.

Status machine (``open``, ``pending``, ``snoozed``, ``resolved``):

* any status may move to any other, except that a resolved conversation is not snoozed (reopen it
  first: snoozing is "remind me", and a resolved one has nothing to remind of);
* ``snoozed`` needs ``snoozed_until`` in the future; snoozing a snoozed one again moves its time;
* leaving ``snoozed`` clears ``snoozed_until``; a time is refused with any other status;
* an incoming message reopens a pending, snoozed or resolved conversation (reason ``incoming_message``);
* a snoozed conversation whose time has passed is reopened by the system (reason ``snooze_expired``).

Moving to the status it has (other than a new snooze time) records nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from upgestao_kernel.events import Aggregate

from .errors import InvalidValue
from .events import ConversationAssigned, ConversationOpened, ConversationStatusChanged, ConversationUpdated

CHANNELS = ("whatsapp", "email", "web", "phone", "other")
OPEN, PENDING, SNOOZED, RESOLVED = "open", "pending", "snoozed", "resolved"
STATUSES = (OPEN, PENDING, SNOOZED, RESOLVED)
PRIORITIES = ("low", "medium", "high", "urgent")
DEFAULT_PRIORITY = "medium"
MAX_LABELS = 20
MAX_LABEL = 50
MAX_SUBJECT = 300

REQUESTED = "requested"
INCOMING_MESSAGE = "incoming_message"
SNOOZE_EXPIRED = "snooze_expired"


def clean_labels(labels: object) -> list[str]:
    """Distinct, stripped, lower-cased labels (1 to 50 characters each, at most 20), in order given."""
    if not isinstance(labels, list | tuple) or not all(isinstance(label, str) for label in labels):
        raise InvalidValue("labels", "must be a list of strings")
    out = list(dict.fromkeys(label.strip().lower() for label in labels))
    if any(not 1 <= len(label) <= MAX_LABEL for label in out):
        raise InvalidValue("labels", f"each label must be 1 to {MAX_LABEL} characters")
    if len(out) > MAX_LABELS:
        raise InvalidValue("labels", f"at most {MAX_LABELS} labels")
    return out


def check_choice(field: str, value: object, choices: Iterable[str]) -> str:
    options = tuple(choices)
    if value not in options:
        raise InvalidValue(field, f"must be one of {', '.join(options)}")
    return str(value)


class Conversation(Aggregate):
    stream_type = "conversation"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.customer_id = ""
        self.channel = ""
        self.status = OPEN
        self.snoozed_until: str | None = None
        self.priority = DEFAULT_PRIORITY
        self.labels: list[str] = []
        self.assignee_id: str | None = None
        self.team_id: str | None = None

    @classmethod
    def open(cls, id: str, *, customer_id: str, channel: str, team_id: str | None, assignee_id: str | None,
             priority: str | None, labels: list[str] | None, sealed_subject: str | None) -> Conversation:
        conversation = cls(id)
        conversation.trigger(ConversationOpened(
            customer_id=customer_id, channel=check_choice("channel", channel, CHANNELS), team_id=team_id,
            assignee_id=assignee_id,
            priority=check_choice("priority", priority or DEFAULT_PRIORITY, PRIORITIES),
            labels=clean_labels(labels or []),
            sealed={"subject": sealed_subject} if sealed_subject is not None else {}))
        return conversation

    # -- status ---------------------------------------------------------------
    def change_status(self, status: str, snoozed_until: datetime | None, now: datetime,
                      reason: str = REQUESTED) -> bool:
        check_choice("status", status, STATUSES)
        if status == SNOOZED:
            if snoozed_until is None:
                raise InvalidValue("snoozed_until", "required to snooze")
            if snoozed_until.tzinfo is None:
                raise InvalidValue("snoozed_until", "must carry a time zone")
            if snoozed_until <= now:
                raise InvalidValue("snoozed_until", "must be in the future")
            if self.status == RESOLVED:
                raise InvalidValue("status", "a resolved conversation is reopened before it is snoozed")
        elif snoozed_until is not None:
            raise InvalidValue("snoozed_until", "only with status snoozed")
        until = snoozed_until.isoformat() if snoozed_until is not None else None
        if status == self.status and until == self.snoozed_until:
            return False
        self.trigger(ConversationStatusChanged(customer_id=self.customer_id, status=status, previous=self.status,
                                               snoozed_until=until, reason=reason))
        return True

    def receive_incoming(self) -> bool:
        """A customer wrote: a pending, snoozed or resolved conversation is open again."""
        if self.status == OPEN:
            return False
        self.trigger(ConversationStatusChanged(customer_id=self.customer_id, status=OPEN, previous=self.status,
                                               snoozed_until=None, reason=INCOMING_MESSAGE))
        return True

    def expire_snooze(self, now: datetime) -> bool:
        """Reopen if snoozed and its time has come (the system's timer)."""
        if self.status != SNOOZED or self.snoozed_until is None or datetime.fromisoformat(self.snoozed_until) > now:
            return False
        self.trigger(ConversationStatusChanged(customer_id=self.customer_id, status=OPEN, previous=SNOOZED,
                                               snoozed_until=None, reason=SNOOZE_EXPIRED))
        return True

    # -- assignment, priority, labels -------------------------------------------
    def assign(self, assignee_id: str | None, team_id: str | None) -> bool:
        if (assignee_id, team_id) == (self.assignee_id, self.team_id):
            return False
        self.trigger(ConversationAssigned(assignee_id=assignee_id, previous_assignee_id=self.assignee_id,
                                          team_id=team_id, previous_team_id=self.team_id))
        return True

    def update(self, priority: str | None = None, labels: list[str] | None = None) -> list[str]:
        new_priority = check_choice("priority", priority, PRIORITIES) if priority is not None else self.priority
        new_labels = clean_labels(labels) if labels is not None else self.labels
        changed = [f for f, same in (("priority", new_priority == self.priority),
                                     ("labels", new_labels == self.labels)) if not same]
        if changed:
            self.trigger(ConversationUpdated(changed=changed, priority=new_priority, labels=new_labels))
        return changed

    # -- folds ------------------------------------------------------------------
    def when_conversation_opened(self, customer_id, channel, team_id, assignee_id, priority, labels,
                                 sealed) -> None:
        self.customer_id, self.channel = customer_id, channel
        self.team_id, self.assignee_id = team_id, assignee_id
        self.priority, self.labels = priority, list(labels)

    def when_conversation_status_changed(self, customer_id, status, previous, snoozed_until, reason) -> None:
        self.status, self.snoozed_until = status, snoozed_until

    def when_conversation_assigned(self, assignee_id, previous_assignee_id, team_id, previous_team_id) -> None:
        self.assignee_id, self.team_id = assignee_id, team_id

    def when_conversation_updated(self, changed, priority, labels) -> None:
        self.priority, self.labels = priority, list(labels)
