"""Event envelopes and the aggregate base: pure domain code.

Event types are dotted, past tense and versioned: ``identity.user_registered.v1``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_-]*\.[a-z][a-z0-9_]*\.v[0-9]+$")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Actor:
    id: str | None
    role: str | None


SYSTEM_ACTOR = Actor(id="system", role="system")


@dataclass(frozen=True)
class NewEvent:
    """An event an aggregate decided on, not yet stored.

    ``data`` is stored in the event log; personal values in it must already
    be vault ciphertext. ``published`` is what leaves the service on the
    broker; ``None`` publishes ``data`` as it is, ``False`` keeps the event
    private to the service. ``secret`` marks a published view holding a
    secret (a single-use token): its outbox copy is wiped once delivered.
    """

    type: str
    data: Mapping[str, Any] = field(default_factory=dict)
    published: Mapping[str, Any] | None | bool = None
    secret: bool = False

    def __post_init__(self) -> None:
        if not EVENT_TYPE.match(self.type):
            raise ValueError(f"event type {self.type!r} is not <service>.<past_tense_name>.v<N>")


@dataclass(frozen=True)
class EventEnvelope:
    event_id: str
    stream_id: str
    version: int
    type: str
    occurred_at: datetime
    actor: Actor
    correlation_id: str | None
    causation_id: str | None
    data: Mapping[str, Any]
    position: int | None = None

    def to_message(self, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """JSON-ready form; ``data`` overrides the payload (published view)."""
        return {
            "event_id": self.event_id,
            "stream_id": self.stream_id,
            "version": self.version,
            "type": self.type,
            "occurred_at": self.occurred_at.isoformat(),
            "actor": {"id": self.actor.id, "role": self.actor.role},
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "data": dict(self.data if data is None else data),
        }

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> EventEnvelope:
        actor = message.get("actor") or {}
        return cls(
            event_id=message["event_id"],
            stream_id=message["stream_id"],
            version=int(message["version"]),
            type=message["type"],
            occurred_at=datetime.fromisoformat(message["occurred_at"]),
            actor=Actor(id=actor.get("id"), role=actor.get("role")),
            correlation_id=message.get("correlation_id"),
            causation_id=message.get("causation_id"),
            data=message.get("data") or {},
        )


class Aggregate:
    """Event-sourced aggregate: state changes only by applying events.

    Subclasses set ``stream_type``, implement ``when_<name>`` for the event
    ``<svc>.<name>.vN`` (``when_user_registered``) and decide with ``trigger``.
    """

    stream_type = "aggregate"

    def __init__(self, id: str) -> None:
        self.id = id
        self.version = 0
        self._pending: list[NewEvent] = []

    @classmethod
    def replay(cls, id: str, history: Iterable[EventEnvelope]) -> Any:
        aggregate = cls(id)
        for envelope in history:
            aggregate._apply(envelope.type, envelope.data)
            aggregate.version = envelope.version
        return aggregate

    def trigger(
        self, type: str, published: Mapping[str, Any] | None | bool = None, secret: bool = False, **data: Any
    ) -> None:
        event = NewEvent(type=type, data=data, published=published, secret=secret)
        self._apply(event.type, event.data)
        self._pending.append(event)

    def collect(self) -> list[NewEvent]:
        """Hand over the pending events (and forget them)."""
        pending, self._pending = self._pending, []
        return pending

    @classmethod
    def stream_id_for(cls, id: str) -> str:
        return f"{cls.stream_type}-{id}"

    @property
    def stream_id(self) -> str:
        return self.stream_id_for(self.id)

    @property
    def expected_version(self) -> int:
        """The version the stream had when this aggregate was loaded."""
        return self.version

    def _apply(self, type: str, data: Mapping[str, Any]) -> None:
        name = type.split(".")[1]
        handler = getattr(self, f"when_{name}", None)
        if handler is None:
            raise TypeError(f"{self.__class__.__name__} cannot apply {type}")
        handler(**data)
