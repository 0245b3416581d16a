"""Publishing with pipelined publisher confirms: publish a whole batch, then wait once.

The outbox relay and the stream publishers (privacy's audit stream) must know
the broker has a message before they move their position (an outbox row marked
sent, a stream position saved); waiting for each confirm in turn costs a round
trip per message, so a batch is published first and its confirms read after.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence, Sized
from typing import Any

import amqp
from kombu import Connection


def wait_for_confirms(connection, unsettled: Sized, timeout_s: float) -> None:
    """Read the broker's confirms until ``unsettled`` (emptied by the channel's ack/nack
    callbacks) is empty; ``TimeoutError`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while unsettled:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{len(unsettled)} publishes not confirmed in {timeout_s}s")
        try:
            connection.drain_events(timeout=remaining)
        except TimeoutError:
            continue


class ConfirmedPublisher:
    """Publishes batches of messages to one queue (a stream, say: ``exchange=""``), returning once
    the broker confirmed every one; raises (and drops the connection) if it refused or did not
    answer any. Its connection is opened, and ``declare(channel)`` run, on first use."""

    def __init__(self, amqp_uri: str, routing_key: str, declare: Callable[[Any], None],
                 confirm_timeout_s: float = 10.0) -> None:
        self.amqp_uri = amqp_uri
        self.routing_key = routing_key
        self.declare = declare
        self.confirm_timeout_s = confirm_timeout_s
        self._connection: Connection | None = None
        self._channel = None
        self._pending: set[int] = set()
        self._nacked = 0
        self._tag = 0

    def _ensure_channel(self):
        if self._channel is None:
            conn = Connection(self.amqp_uri)
            conn.connect()
            channel = conn.channel()
            self.declare(channel)
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            channel.confirm_select()
            self._connection, self._channel, self._tag = conn, channel, 0
            self._pending.clear()
        return self._channel

    def _settle(self, tag: int, multiple: bool) -> int:
        done = {t for t in self._pending if t <= tag} if multiple else {tag} & self._pending
        self._pending -= done
        return len(done)

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._nacked += self._settle(tag, multiple)

    def publish(self, messages: Sequence[amqp.Message]) -> None:
        """Publish ``messages`` in order; returns once the broker confirmed all, else raises."""
        channel = self._ensure_channel()
        self._nacked = 0
        try:
            for message in messages:
                channel.basic_publish(message, exchange="", routing_key=self.routing_key)
                self._tag += 1
                self._pending.add(self._tag)
            wait_for_confirms(self._connection, self._pending, self.confirm_timeout_s)
            if self._nacked:
                raise RuntimeError(f"the broker refused {self._nacked} publishes to {self.routing_key}")
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
        self._connection = self._channel = None
        self._pending.clear()
