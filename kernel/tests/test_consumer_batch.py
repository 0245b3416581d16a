"""The batch consumer's handling of one batch, on fakes: parse, park the unreadable, store in one
transaction, find and park what the store refuses, leave the rest to the back-off loop.
(Consuming, acking after the commit and redelivery run against RabbitMQ in privacy's ingest tests.)"""

from __future__ import annotations

import json

import amqp
import pytest
from upgestao_kernel.consumers.batch import BatchConsumer, BatchHandler, describe_error
from upgestao_kernel.parking import ERROR_HEADER, PARKED_AT_HEADER, QUEUE_HEADER


class Refused(Exception):
    """A store error that blames one item."""


class FakeParking:
    def __init__(self) -> None:
        self.published: list[tuple[amqp.Message, str]] = []

    def basic_publish(self, message, exchange, routing_key):
        assert exchange == ""
        self.published.append((message, routing_key))


def delivery(body: str, message_id: str) -> amqp.Message:
    return amqp.Message(body.encode(), content_type="application/json", message_id=message_id,
                        application_headers={"nameko.request_id": "r-1"})


def consumer(stored: list, *, refuse=frozenset(), away=False) -> BatchConsumer:
    def store(items):
        if away:
            raise ConnectionError("database away")
        if refuse & set(items):
            raise Refused("refused")
        stored.append(list(items))

    def parse(body: bytes) -> int:
        value = json.loads(body)
        if not isinstance(value, int):
            raise ValueError("not a number")
        return value

    handler = BatchHandler(parse=parse, store=store, refuses=lambda exc: isinstance(exc, Refused))
    return BatchConsumer("amqp://unused", "svc.things", handler, declare=lambda channel: None,
                         batch_size=10, prefetch=20, name="svc.things")


def test_a_batch_is_stored_in_one_call():
    stored, parking = [], FakeParking()
    consumer(stored).handle(parking, [delivery("1", "a"), delivery("2", "b"), delivery("3", "c")])
    assert stored == [[1, 2, 3]] and parking.published == []


def test_an_unreadable_message_is_parked_with_its_error_and_headers_and_the_others_stored():
    stored, parking = [], FakeParking()
    consumer(stored).handle(parking, [delivery("1", "a"), delivery("{not json", "b"), delivery('"x"', "c"),
                                      delivery("[" * 100_000, "d"), delivery("4", "e")])
    assert stored == [[1, 4]]
    assert [(m.properties["message_id"], queue) for m, queue in parking.published] == [
        ("b", "svc.things.parked"), ("c", "svc.things.parked"), ("d", "svc.things.parked")]
    first, _ = parking.published[0]
    headers = first.properties["application_headers"]
    assert headers[ERROR_HEADER].startswith("JSONDecodeError: ") and headers[QUEUE_HEADER] == "svc.things"
    assert headers[PARKED_AT_HEADER] and headers["nameko.request_id"] == "r-1"
    assert first.body == b"{not json" and first.properties["delivery_mode"] == 2
    assert parking.published[1][0].properties["application_headers"][ERROR_HEADER] == "ValueError: not a number"
    assert parking.published[2][0].properties["application_headers"][ERROR_HEADER] == "RecursionError"


def test_a_message_the_store_refuses_is_found_and_parked_and_the_others_stored():
    stored, parking = [], FakeParking()
    consumer(stored, refuse={2}).handle(parking, [delivery("1", "a"), delivery("2", "b"), delivery("3", "c")])
    assert stored == [[1], [3]]
    assert [m.properties["message_id"] for m, _ in parking.published] == ["b"]
    assert parking.published[0][0].properties["application_headers"][ERROR_HEADER] == "Refused"


def test_a_store_that_is_away_raises_and_parks_nothing():
    stored, parking = [], FakeParking()
    with pytest.raises(ConnectionError):
        consumer(stored, away=True).handle(parking, [delivery("1", "a"), delivery("2", "b")])
    assert stored == [] and parking.published == []


def test_the_default_description_keeps_a_parsers_words_and_only_the_type_of_anything_else():
    assert describe_error(ValueError("field 'x' missing")) == "ValueError: field 'x' missing"
    assert describe_error(ValueError("x" * 2000)).startswith("ValueError: x") and len(describe_error(
        ValueError("x" * 2000))) == 1000
    assert describe_error(KeyError("secret@example.com")) == "KeyError"
    assert describe_error(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")) == "UnicodeDecodeError"
