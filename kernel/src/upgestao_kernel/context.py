"""Request context: who asked, from where, under which request id.

It travels from the gateway through nameko context data (message headers)
into every RPC, event, log line and audit record.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from .events import Actor, new_id

CONTEXT_KEYS = ("request_id", "actor_id", "actor_role", "source_ip", "correlation_id", "causation_id")


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    actor_id: str | None = None
    actor_role: str | None = None
    source_ip: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    # the service whose broker user sent the request (the AMQP ``user_id`` RabbitMQ checked); never read
    # from a header, never sent on (see ``broker_identity``)
    caller_service: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(id=self.actor_id, role=self.actor_role)

    @classmethod
    def from_context_data(cls, data: Mapping[str, Any] | None) -> RequestContext:
        data = data or {}
        request_id = str(data.get("request_id") or new_id())
        return cls(
            request_id=request_id,
            actor_id=_opt(data.get("actor_id")),
            actor_role=_opt(data.get("actor_role")),
            source_ip=_opt(data.get("source_ip")),
            correlation_id=_opt(data.get("correlation_id")) or request_id,
            causation_id=_opt(data.get("causation_id")),
        )

    @classmethod
    def from_proof(cls, data: Mapping[str, Any] | None, claims: Any, caller_service: str | None) -> RequestContext:
        """A request that came over the broker: the actor is whoever the verified access token ``claims``
        name (``None``: nobody), the caller the service RabbitMQ vouched for; ``actor_id``/``actor_role``
        headers are ignored, whatever they say."""
        data = data or {}
        request_id = _request_id(data.get("request_id")) or new_id()
        return cls(
            request_id=request_id,
            actor_id=claims.subject if claims is not None else None,
            actor_role=claims.role if claims is not None else None,
            source_ip=_address(data.get("source_ip")),
            correlation_id=_request_id(data.get("correlation_id")) or request_id,
            causation_id=_request_id(data.get("causation_id")),
            caller_service=_opt(caller_service),
        )

    def to_context_data(self) -> dict[str, str]:
        """What travels on (headers of calls and messages): the fields set, but ``caller_service``."""
        return {k: v for k in _SENT_FIELDS if (v := getattr(self, k)) is not None}

    def caused_by(self, event_id: str) -> RequestContext:
        """Context for work done because of an event."""
        return replace(self, causation_id=event_id)


# (dataclasses.asdict deep-copies every field, recursively: a dozen calls per field, for strings)
_SENT_FIELDS = tuple(f.name for f in fields(RequestContext) if f.name != "caller_service")


def system_context(request_id: str | None = None) -> RequestContext:
    """For work no person asked for (relays, start-up tasks, CLI commands)."""
    rid = request_id or new_id()
    return RequestContext(request_id=rid, actor_id="system", actor_role="system", correlation_id=rid)


_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")


def _request_id(value: Any) -> str | None:
    """A request, correlation or causation id as received: at most 64 of ``[A-Za-z0-9._:-]`` (what an event's
    ``correlation_id`` keeps), else none."""
    text = _opt(value)
    if text is None or len(text) > 64 or not set(text) <= _ID_CHARS:
        return None
    return text


def _address(value: Any) -> str | None:
    """An IP address as the calling edge stated it (the gateway's client address), else none."""
    text = _opt(value)
    return _parsed_address(text) if text is not None and len(text) <= 64 else None


@functools.lru_cache(maxsize=4096)
def _parsed_address(text: str) -> str | None:
    """``text`` as an address in its canonical form, else none; remembered (every request states one, and
    parsing one is some twenty calls)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _opt(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
