"""Event declarations, envelopes and the aggregate base: pure domain code.

Event types are dotted, past tense and versioned: ``identity.user_registered.v1``.
A service declares each of its events once, as a :class:`DomainEvent` subclass
(its stored fields, which of them it publishes); the type string is derived
from the declaration, so producers, projections, consumers and the generated
catalogue (``docs/events.md``) never type it again.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_-]*\.[a-z][a-z0-9_]*\.v[0-9]+$")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


# the hex digit of a UUID's variant nibble once its two top bits are 10 (RFC 4122), by the random digit
_VARIANT_DIGIT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def new_ids(n: int) -> list[str]:
    """``n`` ids as :func:`new_id` makes them (random, version 4 UUIDs in canonical form), from one read of
    the system's randomness (``uuid4`` reads 16 bytes and builds a ``UUID`` for each: a page of 50 audit
    records made 50 of both)."""
    digits = os.urandom(16 * n).hex()
    variant = _VARIANT_DIGIT
    return [f"{digits[i:i + 8]}-{digits[i + 8:i + 12]}-4{digits[i + 13:i + 16]}-"
            f"{variant[digits[i + 16]]}{digits[i + 17:i + 20]}-{digits[i + 20:i + 32]}" for i in range(0, 32 * n, 32)]


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


# --------------------------------------------------------------------------- declared events

_STORED = "stored"
_DECLARED: dict[str, type[DomainEvent]] = {}
E = TypeVar("E", bound="DomainEvent")
H = TypeVar("H", bound=Callable[..., Any])


def published_only(default: Any = None) -> Any:
    """A field of the published view that is never stored (a single-use token: only its hash is kept)."""
    return field(default=default, metadata={_STORED: False})


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class DomainEvent:
    """The declaration of one event type: subclasses are frozen dataclasses of what the event holds.

    ``class UserRegistered(IdentityEvent, subject="user_id", publishes=("user_id", "role", "fields"))``
    declares ``identity.user_registered.v1`` (service from the base, the class name in snake case,
    ``version``). The dataclass fields are the stored data, in the event log (except
    :func:`published_only` fields). ``publishes`` names the members of the published view, in order:
    ``subject`` is the id of the aggregate the event happened to, a stored mapping (sealed personal
    values by field name) is published as its sorted keys -- names, never values -- and any other
    name is the attribute of that name. ``publishes=True`` publishes the stored data as it is,
    ``False`` keeps the event inside its service. ``secret`` marks a published view holding a secret
    (its outbox copy is wiped once delivered). A service's own base sets ``service`` with
    ``abstract=True``; every concrete declaration is registered by type, once.
    """

    service: ClassVar[str] = ""
    version: ClassVar[int] = 1
    type: ClassVar[str] = ""
    subject: ClassVar[str | None] = None
    publishes: ClassVar[tuple[str, ...] | bool] = True
    secret: ClassVar[bool] = False

    def __init_subclass__(
        cls,
        *,
        abstract: bool = False,
        service: str | None = None,
        version: int | None = None,
        subject: str | None = None,
        publishes: tuple[str, ...] | bool | None = None,
        secret: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in (("service", service), ("version", version), ("subject", subject),
                            ("publishes", publishes), ("secret", secret)):
            if value is not None:
                setattr(cls, name, value)
        if abstract:
            return
        cls.type = f"{cls.service}.{_snake(cls.__name__)}.v{cls.version}"
        if not EVENT_TYPE.match(cls.type):
            raise TypeError(f"{cls.__qualname__} declares {cls.type!r}: not <service>.<past_tense_name>.v<N>")
        if isinstance(cls.publishes, tuple) and cls.subject is not None and cls.subject not in cls.publishes:
            raise TypeError(f"{cls.type}: its subject {cls.subject!r} is not in what it publishes")
        declared = _DECLARED.get(cls.type)
        if declared is not None and (declared.__module__, declared.__qualname__) != (cls.__module__,
                                                                                     cls.__qualname__):
            raise TypeError(f"{cls.type} is declared twice: {declared.__module__}.{declared.__qualname__} "
                            f"and {cls.__module__}.{cls.__qualname__}")
        _DECLARED[cls.type] = cls

    @classmethod
    def stored_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.metadata.get(_STORED, True))

    @classmethod
    def published_names(cls) -> tuple[str, ...]:
        """The members of the published view (empty when the event is not published)."""
        if cls.publishes is True:
            return cls.stored_names()
        return cls.publishes or ()

    def data(self) -> dict[str, Any]:
        """What the event log stores."""
        return {name: getattr(self, name) for name in self.stored_names()}

    def published_view(self, subject_id: str) -> Mapping[str, Any] | bool | None:
        """What leaves the service, in :class:`NewEvent`'s terms (``None``: the data as it is; ``False``: nothing)."""
        if self.publishes is True:
            return None
        if self.publishes is False:
            return False
        return {name: self._published_value(name, subject_id) for name in self.publishes}

    def _published_value(self, name: str, subject_id: str) -> Any:
        if name == self.subject:
            return subject_id
        value = getattr(self, name)
        return sorted(value) if isinstance(value, Mapping) else value

    def new_event(self, subject_id: str) -> NewEvent:
        """The event to store for the aggregate (or stream owner) ``subject_id``."""
        return NewEvent(type=self.type, data=self.data(), published=self.published_view(subject_id),
                        secret=self.secret)

    @classmethod
    def from_envelope(cls: type[E], envelope: EventEnvelope) -> E:
        """The event as stored; a stored key the declaration does not know is a bug, and raises."""
        if envelope.type != cls.type:
            raise ValueError(f"{envelope.type} is not {cls.type}")
        return cls(**envelope.data)


def declared_events() -> dict[str, type[DomainEvent]]:
    """Every declaration imported so far, by type."""
    return dict(_DECLARED)


class EventHandlers:
    """A dispatch table from declared events to the methods handling them (a projection's, a consumer's).

    In a class body, ``on = EventHandlers()``, then ``@on(UserRegistered)`` over a method taking
    ``(self, *args, envelope, event)``; ``self.on.dispatch(self, envelope, *args)`` calls the method
    of the envelope's type with the event decoded from the stored data, and says whether there was one.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[type[DomainEvent], Callable[..., Any]]] = {}

    def __call__(self, *event_classes: type[DomainEvent]) -> Callable[[H], H]:
        def register(fn: H) -> H:
            for cls in event_classes:
                if cls.type in self._handlers:
                    raise TypeError(f"{cls.type} has two handlers: {self._handlers[cls.type][1].__name__} "
                                    f"and {fn.__name__}")
                self._handlers[cls.type] = (cls, fn)
            return fn

        return register

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(self._handlers)

    def dispatch(self, owner: Any, envelope: EventEnvelope, *args: Any) -> bool:
        entry = self._handlers.get(envelope.type)
        if entry is None:
            return False
        cls, method = entry
        method(owner, *args, envelope, cls.from_envelope(envelope))
        return True


@dataclass(frozen=True)
class Subscription:
    """A consumer of another service's published events, declared beside its wiring.

    Services never import each other's code, so a consumer names the event types it reads;
    the catalogue (``docs/events.md``) lists each subscription under its events and fails on
    a type no producer declares.
    """

    service: str  # the consuming service
    handler: str  # what handles them (a class, a method)
    events: tuple[str, ...]
    via: str  # the queue or stream they arrive through

    def __post_init__(self) -> None:
        bad = [t for t in self.events if not EVENT_TYPE.match(t)]
        if bad or not self.events:
            raise ValueError(f"{self.service}.{self.handler}: not event types: {bad or self.events}")


# --------------------------------------------------------------------------- aggregates


class Aggregate:
    """Event-sourced aggregate: state changes only by applying events.

    Subclasses set ``stream_type``, implement ``when_<name>`` for the event
    ``<svc>.<name>.vN`` (``when_user_registered``, called with the stored data as keywords)
    and decide with ``trigger`` (a declared :class:`DomainEvent`, preferably).
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
        self, event: DomainEvent | str, published: Mapping[str, Any] | None | bool = None, secret: bool = False,
        **data: Any,
    ) -> None:
        """Decide on ``event``: a declared :class:`DomainEvent` (which carries its data and published view),
        or an event type with the data as keywords."""
        if isinstance(event, DomainEvent):
            if published is not None or secret or data:
                raise TypeError(f"{event.type}: a declared event carries its own data and published view")
            new = event.new_event(self.id)
        else:
            new = NewEvent(type=event, data=data, published=published, secret=secret)
        self._apply(new.type, new.data)
        self._pending.append(new)

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
