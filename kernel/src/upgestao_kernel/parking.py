"""Parked messages: list them, and replay them once the handler is fixed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kombu import Connection

from .topology import parking_queue_name

ATTEMPTS_HEADER = "x-upgestao-attempts"
ERROR_HEADER = "x-upgestao-error"
PARKED_AT_HEADER = "x-upgestao-parked-at"
QUEUE_HEADER = "x-upgestao-queue"


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
