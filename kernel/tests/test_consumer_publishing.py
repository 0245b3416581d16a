"""Confirmed publishing on a fake broker: a batch is published first and its confirms read once;
a nack or a silent broker raises, and the connection is dropped so the next batch starts afresh."""

from __future__ import annotations

import amqp
import pytest
from upgestao_kernel.consumers.publishing import ConfirmedPublisher


class FakeChannel:
    def __init__(self, answers) -> None:
        self.answers = answers  # after each drain: [("ack"|"nack", tag, multiple)]
        self.published: list[tuple[bytes, str]] = []
        self.events = {"basic_ack": set(), "basic_nack": set()}
        self.declared = self.confirming = False

    def confirm_select(self) -> None:
        self.confirming = True

    def basic_publish(self, message, exchange, routing_key) -> None:
        assert self.confirming and exchange == ""
        self.published.append((message.body, routing_key))


class FakeConnection:
    def __init__(self, channel: FakeChannel) -> None:
        self._channel = channel
        self.drains = 0
        self.released = False

    def connect(self) -> None: ...

    def channel(self) -> FakeChannel:
        return self._channel

    def drain_events(self, timeout: float) -> None:
        self.drains += 1
        if not self._channel.answers:
            raise TimeoutError
        for kind, tag, multiple in self._channel.answers.pop(0):
            for callback in self._channel.events[f"basic_{kind}"]:
                callback(tag, multiple)

    def release(self) -> None:
        self.released = True


def publisher(monkeypatch, answers, timeout_s: float = 10.0):
    channel = FakeChannel(answers)
    connection = FakeConnection(channel)
    monkeypatch.setattr("upgestao_kernel.consumers.publishing.Connection", lambda uri: connection)

    def declare(ch) -> None:
        ch.declared = True

    return ConfirmedPublisher("amqp://unused", "audit.log", declare, confirm_timeout_s=timeout_s), channel, connection


def messages(n: int) -> list[amqp.Message]:
    return [amqp.Message(f"m{i}".encode()) for i in range(n)]


def test_a_batch_is_published_then_confirmed_in_one_wait(monkeypatch):
    confirmed, channel, connection = publisher(monkeypatch, [[("ack", 2, True)], [("ack", 3, False)]])
    confirmed.publish(messages(3))
    assert channel.declared and channel.published == [(b"m0", "audit.log"), (b"m1", "audit.log"),
                                                      (b"m2", "audit.log")]
    assert connection.drains == 2 and not connection.released


def test_a_nacked_publish_raises_and_drops_the_connection(monkeypatch):
    confirmed, channel, connection = publisher(monkeypatch, [[("ack", 1, False), ("nack", 2, False)]])
    with pytest.raises(RuntimeError, match="refused 1 publishes to audit.log"):
        confirmed.publish(messages(2))
    assert connection.released


def test_a_broker_that_does_not_confirm_in_time_raises(monkeypatch):
    confirmed, channel, connection = publisher(monkeypatch, [], timeout_s=0.05)
    with pytest.raises(TimeoutError, match="1 publishes not confirmed"):
        confirmed.publish(messages(1))
    assert connection.released
