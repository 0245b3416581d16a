"""Who published a message: the broker user of each service, and the service a user stands for.

Every service (and its outbox relay, which publishes on its behalf) connects to RabbitMQ as a user of
its own, whose permissions cover only its own exchanges and queues. Every message it publishes carries
the AMQP ``user_id`` property, which RabbitMQ checks against the connection's user (a message whose
``user_id`` names anyone else is refused by the broker), so a consumer knows which service sent a message
from the message itself, never from a header the sender wrote.

A user is named ``<platform>.<service>``: ``upgestao.identity`` on the vhost ``/``, and
``<vhost>.identity`` on any other vhost (two platforms on one broker, the tests' own vhosts), so each
platform owns its users and their passwords.
"""

from __future__ import annotations

import re

DEFAULT_PLATFORM = "upgestao"
_SERVICE = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
_PLATFORM_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def platform_prefix(vhost: str) -> str:
    """``upgestao`` for the vhost ``/`` (or an empty one), else the vhost's name made safe for a user name."""
    vhost = (vhost or "/").strip("/")
    return _PLATFORM_UNSAFE.sub("_", vhost) if vhost else DEFAULT_PLATFORM


def broker_user(service: str, vhost: str = "/") -> str:
    """The RabbitMQ user ``service`` connects as on ``vhost``."""
    if not _SERVICE.match(service):
        raise ValueError(f"not a service name: {service!r}")
    return f"{platform_prefix(vhost)}.{service}"


def service_of_user(user_id: str | None) -> str | None:
    """The service a broker user stands for (``upgestao.identity`` -> ``identity``); ``None`` for any
    other user (``guest``, an operator, a test's client): such a sender is nobody's service."""
    if not user_id or "." not in user_id:
        return None
    service = user_id.rsplit(".", 1)[1]
    return service if _SERVICE.match(service) else None
