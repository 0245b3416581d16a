"""Every message published carries the AMQP ``user_id`` of the connection that publishes it.

RabbitMQ refuses a message whose ``user_id`` is not the connection's authenticated user (406
``PRECONDITION_FAILED``), so a consumer that reads ``message.properties["user_id"]`` knows which
broker user, hence which service (:func:`~upgestao_kernel.broker_identity.service_of_user`), sent
it, and no sender can claim to be another. That only works if *every* publisher sets it: nameko's
RPC requests, replies and events (kombu producers), the outbox relay and the kernel's confirmed
publishers (py-amqp channels), a parked or retried message. One place reaches them all: py-amqp's
``Channel._basic_publish``, which every one of them ends in, patched here at import
(:func:`install_user_id_stamp`, idempotent, like nameko_ext's ``install_answered_errors_filter``).

A message that already names a ``user_id`` keeps it (the broker judges it: a forged one is refused);
a connection authenticated otherwise than by user name and password (EXTERNAL, a client
certificate) is not stamped, as its user name is not known on this side.
"""

from __future__ import annotations

import functools

import amqp
from amqp import sasl

_USER_ATTRIBUTE = "_upgestao_user_id"
_PATCHED = "_upgestao_stamps_user_id"


def connection_user(connection) -> str | None:
    """The user name ``connection`` (a py-amqp connection) logs in with by password, if any."""
    cached = getattr(connection, _USER_ATTRIBUTE, False)
    if cached is not False:
        return cached
    user = None
    for mechanism in getattr(connection, "authentication", ()) or ():
        if isinstance(mechanism, sasl.AMQPLAIN | sasl.PLAIN) and mechanism.username:
            user = mechanism.username
            break
    try:
        setattr(connection, _USER_ATTRIBUTE, user)
    except AttributeError:  # a connection class with __slots__: look it up each time
        pass
    return user


def stamp(channel, message) -> None:
    """Set ``message``'s ``user_id`` to ``channel``'s connection user unless it names one already."""
    properties = getattr(message, "properties", None)
    if properties is None or properties.get("user_id"):
        return
    user = connection_user(channel.connection)
    if user:
        properties["user_id"] = user


def install_user_id_stamp() -> None:
    """Idempotent: py-amqp's publish stamps ``user_id`` (both its plain and its confirmed path)."""
    channel_cls = amqp.Channel
    if getattr(channel_cls._basic_publish, _PATCHED, False):
        return
    original = channel_cls._basic_publish

    @functools.wraps(original)
    def _basic_publish(self, msg, *args, **kwargs):
        stamp(self, msg)
        return original(self, msg, *args, **kwargs)

    setattr(_basic_publish, _PATCHED, True)
    channel_cls._basic_publish = _basic_publish
    channel_cls.basic_publish = _basic_publish  # the class binds basic_publish = _basic_publish once


install_user_id_stamp()
