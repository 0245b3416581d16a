"""Parked messages: list them, and replay them once the handler is fixed.

What a parked (or retried) message says went wrong is :func:`error_header`: the exception's type and
a fixed reason, never the exception's text. That text is written from the values at hand (a database
error quotes the failing row, ``int("maria@example.com")`` quotes its argument), and a parking queue
is read by operators, kept for days and copied into broker backups: no value belongs there, nor in
the log line that says a message was parked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from kombu import Connection

from .topology import parking_queue_name

ATTEMPTS_HEADER = "x-upgestao-attempts"
ERROR_HEADER = "x-upgestao-error"
PARKED_AT_HEADER = "x-upgestao-parked-at"
QUEUE_HEADER = "x-upgestao-queue"

_SQLSTATE = re.compile(r"[0-9A-Z]{5}")


def failure_reason(exc: BaseException) -> str:
    """A fixed, value-free reason for ``exc``: one of a few sentences chosen by its type.

    An exception class may state its own in a class attribute ``park_reason`` (a constant of the
    code that raises it, e.g. "the record names another service than its sender"); an instance
    attribute is not read, since it could be built from the values.
    """
    own = getattr(type(exc), "park_reason", None)
    if isinstance(own, str) and own:
        return own
    if isinstance(exc, sa.exc.DBAPIError):
        state = getattr(exc.orig, "pgcode", None)
        return f"the database refused it (SQLSTATE {state})" if isinstance(state, str) and _SQLSTATE.fullmatch(
            state) else "the database refused it"
    if isinstance(exc, json.JSONDecodeError):
        return "the body is not JSON"
    if isinstance(exc, UnicodeError):
        return "the body is not valid text"
    if isinstance(exc, RecursionError):
        return "the body is nested too deep"
    if isinstance(exc, KeyError | TypeError | ValueError):
        return "the message is malformed or holds a value the handler refuses"
    return "the handler failed"


def error_header(exc: BaseException) -> str:
    """:data:`ERROR_HEADER` of a message parked (or sent to retry) because of ``exc``:
    ``<exception type>: <fixed reason>`` (:func:`failure_reason`), never ``str(exc)``."""
    return f"{type(exc).__name__}: {failure_reason(exc)}"


@dataclass(frozen=True)
class ParkedMessage:
    message_id: str | None
    event_type: str | None
    error: str | None
    parked_at: str | None
    attempts: int


def _describe(message) -> ParkedMessage:
    headers = message.headers or {}
    body = message.payload if isinstance(message.payload, dict) else {}
    return ParkedMessage(
        message_id=message.properties.get("message_id"),
        event_type=body.get("type"),
        error=headers.get(ERROR_HEADER),
        parked_at=headers.get(PARKED_AT_HEADER),
        attempts=int(headers.get(ATTEMPTS_HEADER, 1)),
    )


def list_parked(amqp_uri: str, queue: str) -> list[ParkedMessage]:
    """Look without taking: messages are fetched unacked, then returned to the queue."""
    found: list[ParkedMessage] = []
    with Connection(amqp_uri) as conn:
        channel = conn.channel()
        simple = conn.SimpleQueue(parking_queue_name(queue), channel=channel, no_ack=False)
        try:
            while True:
                try:
                    message = simple.get(block=False)
                except simple.Empty:
                    break
                found.append(_describe(message))
        finally:
            channel.close()  # unacked messages go back to the queue, in order
    return found


def replay_parked(amqp_uri: str, queue: str, message_ids: Iterable[str] | None = None) -> int:
    """Put parked messages back on ``queue`` with a fresh attempt count."""
    wanted = set(message_ids) if message_ids is not None else None
    replayed = 0
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        parked = conn.SimpleQueue(parking_queue_name(queue), channel=channel, no_ack=False)
        producer = conn.Producer(channel=conn.channel())
        try:
            while True:
                try:
                    message = parked.get(block=False)
                except parked.Empty:
                    break
                message_id = message.properties.get("message_id")
                if wanted is not None and message_id not in wanted:
                    continue  # left unacked: back to the parking queue on close
                headers = {
                    k: v for k, v in (message.headers or {}).items()
                    if k not in (ATTEMPTS_HEADER, ERROR_HEADER, PARKED_AT_HEADER)
                }
                producer.publish(
                    message.body, exchange="", routing_key=queue, headers=headers,
                    delivery_mode=2, content_type=message.content_type,
                    content_encoding=message.content_encoding, message_id=message_id,
                )
                message.ack()
                replayed += 1
        finally:
            channel.close()  # the ones kept go back to the parking queue
    return replayed
