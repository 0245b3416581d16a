"""Stream consumer: a RabbitMQ stream queue read from an offset or a time, resumed after
the last message read.

A stream is not consumed away: every reader reads every message, from where it
attaches (``x-stream-offset``: ``first``, ``last``, ``next``, a numeric
offset or a time). :class:`StreamConsumer` reads one in a green thread:

* where it attaches is :meth:`StreamConsumer.start_offset`: after the last
  message it read (``last_offset + 1``) once it read one, else
  :meth:`~StreamConsumer.initial_offset`, the subclass's choice: recomputed
  (the gateway's access stream: one token lifetime back) or kept durably
  (saved by :meth:`~StreamConsumer.handle` in the reader's own store, read
  back here);
* a stream consumer must set a prefetch (``prefetch_count``): every message
  is acknowledged (the broker's credit), and its offset remembered, whether
  or not it could be read: one unreadable message must not stop the stream;
* a lost connection is retried on the back-off loop (0.2 s doubling to
  2 s, short again after an attach), heartbeats find a dead broker;
  :attr:`~StreamConsumer.broker_unreachable` says the broker cannot be reached now.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import Any

import amqp
import eventlet
from greenlet import GreenletExit
from kombu import Connection

from ..logging import get_logger
from .backoff import Backoff, BackoffLoop, GreenStop

log = get_logger(__name__)

Offset = int | str | datetime


class StreamConsumer(ABC):
    """Reads ``queue`` (a stream) until stopped; subclasses say what to declare, where to
    start and what to do with a message."""

    prefetch_count = 500
    heartbeat_s = 10
    poll_s = 1.0
    connect_timeout_s = 5.0
    backoff_initial_s = 0.2
    backoff_max_s = 2.0  # a broker back from a restart is noticed within this
    connection_name: str | None = None  # as the broker's management UI shows it; default "<queue> reader"
    lost_event = "stream.lost"
    unreadable_event = "stream.message_unreadable"

    def __init__(self, amqp_uri: str, queue: str) -> None:
        self.amqp_uri = amqp_uri
        self.queue = queue
        self.last_offset: int | None = None
        self.attaches = 0  # successful attaches (reconnections show here)
        self._connection: Connection | None = None
        self._thread = None
        self._stop = GreenStop()
        self._loop: BackoffLoop | None = None
        self._broker_unreachable = False  # the last connection attempt failed, or the connection was lost

    # -- what a subclass says ------------------------------------------------

    @abstractmethod
    def declare(self, connection: Connection) -> None:
        """Declare the stream (and its bindings) on ``connection``; called on every attach."""

    @abstractmethod
    def initial_offset(self) -> Offset:
        """Where to attach when nothing was read yet."""

    @abstractmethod
    def handle(self, message: amqp.Message) -> None:
        """One message; raising logs it as unreadable (it is acknowledged all the same)."""

    def attached(self, connection: Connection) -> None:
        """Called once consuming started (the gateway publishes its sentinel here); nothing by default."""
        return None

    def detached(self) -> None:
        """Called after the connection ended, lost or closed; nothing by default."""
        return None

    # -- state ------------------------------------------------------------------

    @property
    def broker_unreachable(self) -> bool:
        """The broker cannot be reached now (not merely: the stream is still being read)."""
        return self._broker_unreachable

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start_offset(self) -> Offset:
        """Where to (re)attach: after the last message read, else :meth:`initial_offset`."""
        if self.last_offset is not None:
            return self.last_offset + 1
        return self.initial_offset()

    # -- life cycle -------------------------------------------------------------

    def start(self, spawn: Callable[[Callable[[], None]], Any]) -> None:
        self._stop.clear()
        self._thread = spawn(self.run)

    def stop(self) -> None:
        """Stop reading: the green thread ends (its connection closed) before this returns."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.kill()
            with eventlet.Timeout(2.0, False):  # closing the connection is itself bounded (1 s)
                try:
                    thread.wait()
                except GreenletExit:
                    pass
        self._close()
        self.detached()

    def run(self) -> None:
        """Read until stopped; reconnect with back-off. Never raises (a managed thread)."""
        self._loop = BackoffLoop(
            self._attach_and_read, stop=self._stop, event=self.lost_event,
            backoff=Backoff(self.backoff_initial_s, self.backoff_max_s),
            describe=lambda exc: {"queue": self.queue, "error": type(exc).__name__, "reason": str(exc)[:200],
                                  "offset": self.last_offset},
        )
        self._loop.run()

    # -- reading ----------------------------------------------------------------

    def _attach_and_read(self) -> None:
        try:
            self._consume()
        except Exception:
            if not self.stopping:
                self._broker_unreachable = True
            raise
        finally:
            self.detached()
            self._close()

    def _consume(self) -> None:
        name = self.connection_name or f"{self.queue} reader"
        connection = Connection(
            self.amqp_uri, heartbeat=self.heartbeat_s, connect_timeout=self.connect_timeout_s,
            transport_options={"client_properties": {"connection_name": name}},
        )
        self._connection = connection
        connection.connect()
        self._broker_unreachable = False
        self.declare(connection)

        channel = connection.channel()
        channel.basic_qos(0, self.prefetch_count, False)  # a stream consumer must set a prefetch
        channel.basic_consume(
            self.queue, callback=lambda message: self._on_message(channel, message),
            arguments={"x-stream-offset": self.start_offset()},
        )
        self.attaches += 1
        if self._loop is not None:
            self._loop.made_progress()
        self.attached(connection)
        while not self.stopping:
            try:
                connection.drain_events(timeout=self.poll_s)
            except TimeoutError:
                pass
            connection.heartbeat_check()

    def _on_message(self, channel, message: amqp.Message) -> None:
        offset = (message.properties.get("application_headers") or {}).get("x-stream-offset")
        try:
            self.handle(message)
        except Exception as exc:  # one unreadable message must not stop the stream
            log.warning(self.unreadable_event, queue=self.queue, offset=offset, error=type(exc).__name__)
        finally:
            if isinstance(offset, int):
                self.last_offset = offset
            channel.basic_ack(message.delivery_tag)

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            with eventlet.Timeout(1.0, False):
                connection.release()
        except Exception:  # already broken: nothing to close politely
            pass
        finally:
            connection.collect()
