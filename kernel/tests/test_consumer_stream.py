"""The stream consumer on fakes and an unreachable broker: where it attaches, what it does with
each message, how it notices the broker is away and how promptly it stops.
(Reading a real stream runs in the gateway's access tests and the e2e revocation tests.)"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import amqp
import eventlet
import pytest
from upgestao_kernel.consumers.stream import StreamConsumer
from upgestao_kernel.testing import wait_for


class Recorder(StreamConsumer):
    def __init__(self, amqp_uri: str = "amqp://unused") -> None:
        super().__init__(amqp_uri, "test.stream")
        self.handled: list[bytes] = []
        self.detaches = 0

    def declare(self, connection) -> None:
        raise AssertionError("not reached on fakes")

    def initial_offset(self) -> datetime:
        return datetime(2026, 12, 1, tzinfo=UTC)

    def handle(self, message: amqp.Message) -> None:
        if message.body == b"bad":
            raise ValueError("unreadable")
        self.handled.append(message.body)

    def detached(self) -> None:
        self.detaches += 1


class FakeChannel:
    def __init__(self) -> None:
        self.acked: list[int] = []

    def basic_ack(self, delivery_tag: int) -> None:
        self.acked.append(delivery_tag)


def delivery(body: bytes, offset: int | None, tag: int) -> amqp.Message:
    headers = {} if offset is None else {"x-stream-offset": offset}
    message = amqp.Message(body, application_headers=headers)
    message.delivery_info = {"delivery_tag": tag}
    return message


def test_a_consumer_that_read_nothing_starts_at_its_initial_offset_then_after_the_last_offset_read():
    stream = Recorder()
    assert stream.start_offset() == datetime(2026, 12, 1, tzinfo=UTC)
    channel = FakeChannel()
    stream._on_message(channel, delivery(b"one", 41, 1))
    assert stream.start_offset() == 42


def test_every_message_is_acknowledged_and_its_offset_kept_even_an_unreadable_one():
    stream, channel = Recorder(), FakeChannel()
    stream._on_message(channel, delivery(b"one", 7, 1))
    stream._on_message(channel, delivery(b"bad", 8, 2))
    stream._on_message(channel, delivery(b"three", None, 3))  # no offset header: the last one stays
    assert stream.handled == [b"one", b"three"]
    assert channel.acked == [1, 2, 3] and stream.last_offset == 8


def test_a_subclass_must_say_what_to_declare_where_to_start_and_what_to_handle():
    class Incomplete(StreamConsumer):
        def declare(self, connection) -> None: ...

    with pytest.raises(TypeError):
        Incomplete("amqp://unused", "q")


def test_an_unreachable_broker_is_reported_retried_and_the_reader_stops_promptly():
    stream = Recorder("amqp://guest:guest@127.0.0.1:1//")
    stream.connect_timeout_s = 0.5
    stream.start(eventlet.spawn)
    try:
        assert wait_for(lambda: stream.broker_unreachable, timeout=5)
        assert wait_for(lambda: stream._loop.failures >= 2, timeout=5)  # 0.2 s, then 0.4 s later
        assert stream.attaches == 0 and stream.detaches >= 2
    finally:
        started = time.monotonic()
        stream.stop()
    assert time.monotonic() - started < 2.5 and stream.stopping
