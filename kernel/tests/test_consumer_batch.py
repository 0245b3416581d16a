"""The batch consumer's handling of one batch, on fakes: parse, park the unreadable, store in one
transaction, find and park what the store refuses, leave the rest to the back-off loop.
(Consuming, acking after the commit and redelivery run against RabbitMQ in privacy's ingest tests.)"""

from __future__ import annotations

import json
from unittest.mock import patch

import amqp
import pytest
import sqlalchemy as sa
from upgestao_kernel.consumers.batch import BatchConsumer, BatchHandler, describe_error
from upgestao_kernel.parking import ERROR_HEADER, PARKED_AT_HEADER, QUEUE_HEADER, error_header, failure_reason


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


def consumer(stored: list, *, refuse=frozenset(), away=False, admit=None, max_items=None) -> BatchConsumer:
    def store(items):
        if away:
            raise ConnectionError("database away")
        if refuse & set(items):
            raise Refused("refused")
        stored.append(list(items))

    def parse(body: bytes) -> list[int]:
        """A number is one item, a list of numbers as many."""
        value = json.loads(body)
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, int) for v in values):
            raise ValueError("not a number")
        return values

    handler = BatchHandler(parse=parse, store=store, refuses=lambda exc: isinstance(exc, Refused), admit=admit)
    return BatchConsumer("amqp://unused", "svc.things", handler, declare=lambda channel: None,
                         batch_size=10, prefetch=20, name="svc.things", max_items=max_items)


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
    assert parking.published[1][0].properties["application_headers"][ERROR_HEADER] == (
        "ValueError: the message is malformed or holds a value the handler refuses")  # not the parser's words
    assert parking.published[2][0].properties["application_headers"][ERROR_HEADER] == (
        "RecursionError: the body is nested too deep")


def test_a_message_the_store_refuses_is_found_and_parked_and_the_others_stored():
    stored, parking = [], FakeParking()
    consumer(stored, refuse={2}).handle(parking, [delivery("1", "a"), delivery("2", "b"), delivery("3", "c")])
    assert stored == [[1], [3]]
    assert [m.properties["message_id"] for m, _ in parking.published] == ["b"]
    assert parking.published[0][0].properties["application_headers"][ERROR_HEADER] == "Refused: the handler failed"


def test_the_items_of_a_message_of_several_are_stored_with_the_others_of_the_batch():
    stored, parking = [], FakeParking()
    consumer(stored).handle(parking, [delivery("1", "a"), delivery("[2, 3, 4]", "b"), delivery("5", "c")])
    assert stored == [[1, 2, 3, 4, 5]] and parking.published == []


def test_a_message_of_several_items_is_parked_whole_when_its_sender_may_not_send_one_of_them():
    def admit(item: int, user_id: str | None) -> None:
        if item == 13:
            raise ValueError("not this sender's")

    stored, parking = [], FakeParking()
    consumer(stored, admit=admit).handle(parking, [delivery("[1, 2]", "a"), delivery("[3, 13, 4]", "b"),
                                                   delivery("5", "c")])
    assert stored == [[1, 2, 5]]
    assert [m.properties["message_id"] for m, _ in parking.published] == ["b"]
    assert parking.published[0][0].body == b"[3, 13, 4]"  # the message as it came, every item of it


def test_a_message_of_several_items_the_store_refuses_is_parked_whole_and_the_others_stored():
    stored, parking = [], FakeParking()
    consumer(stored, refuse={3}).handle(parking, [delivery("[1, 2]", "a"), delivery("[3, 4]", "b"),
                                                  delivery("5", "c")])
    assert stored == [[1, 2], [5]]
    assert [m.properties["message_id"] for m, _ in parking.published] == ["b"]


def test_max_items_cuts_a_batch_into_stores_of_at_most_that_many_items_never_splitting_a_message():
    stored, parking = [], FakeParking()
    consumer(stored, max_items=4).handle(parking, [
        delivery("[1, 2]", "a"), delivery("[3, 4, 5]", "b"), delivery("6", "c"), delivery("[7, 8, 9, 10, 11, 12]", "d"),
        delivery("13", "e")])
    assert stored == [[1, 2], [3, 4, 5, 6], [7, 8, 9, 10, 11, 12], [13]] and parking.published == []


def test_a_store_that_is_away_raises_and_parks_nothing():
    stored, parking = [], FakeParking()
    with pytest.raises(ConnectionError):
        consumer(stored, away=True).handle(parking, [delivery("1", "a"), delivery("2", "b")])
    assert stored == [] and parking.published == []


class _PgError(Exception):
    """What psycopg2 raises: its text quotes the failing row."""

    pgcode = "23505"


class _SenderMismatch(ValueError):
    park_reason = "the record names another service than its sender"


def test_a_parked_messages_error_is_its_type_and_a_fixed_reason_never_a_value():
    """Issue 11, finding 11: the parking header (and the log line) carried ``str(exc)``, which quotes
    values: an e-mail a parser choked on, the row a database refused. Now: the type and a fixed reason."""
    secret = "maria@example.com"
    statement_error = sa.exc.IntegrityError("INSERT ...", {"email": secret},
                                            _PgError(f"duplicate key: (email)=({secret}) already exists"))
    cases = {
        ValueError(f"invalid literal for int() with base 10: '{secret}'"):
            "ValueError: the message is malformed or holds a value the handler refuses",
        KeyError(secret): "KeyError: the message is malformed or holds a value the handler refuses",
        json.JSONDecodeError(f"Expecting value near {secret}", secret, 0): "JSONDecodeError: the body is not JSON",
        UnicodeDecodeError("utf-8", secret.encode() + b"\xff", 17, 18, "invalid start byte"):
            "UnicodeDecodeError: the body is not valid text",
        statement_error: "IntegrityError: the database refused it (SQLSTATE 23505)",
        RuntimeError(secret): "RuntimeError: the handler failed",
        _SenderMismatch(f"{secret} is not identity"):
            "_SenderMismatch: the record names another service than its sender",
    }
    for exc, expected in cases.items():
        assert describe_error(exc) == error_header(exc) == expected
        assert secret not in describe_error(exc) and secret not in failure_reason(exc)
    bogus = _PgError("x")
    bogus.pgcode = f"'{secret}'"  # an SQLSTATE is five characters of [0-9A-Z], nothing else is echoed
    assert failure_reason(sa.exc.DBAPIError("SELECT", {}, bogus)) == "the database refused it"


def test_the_park_log_line_names_the_type_and_reason_only():
    stored, parking = [], FakeParking()
    logged = []
    with patch("upgestao_kernel.consumers.batch.log") as log:
        log.warning.side_effect = lambda event, **fields: logged.append((event, fields))
        consumer(stored).handle(parking, [delivery('"maria@example.com"', "b")])
    [(event, fields)] = logged
    assert event == "svc.things_parked" and fields == {
        "queue": "svc.things", "message_id": "b", "error": "ValueError",
        "reason": "the message is malformed or holds a value the handler refuses"}


def test_stored_and_parked_messages_are_counted():
    """upgestao_events_handled_total (issue 18): the service is the queue's, the consumer its name without it."""
    from prometheus_client import REGISTRY

    def count(outcome: str) -> float:
        return REGISTRY.get_sample_value("upgestao_events_handled_total",
                                         {"service": "svc", "consumer": "things", "outcome": outcome}) or 0

    stored, parking = [], FakeParking()
    things = consumer(stored, refuse=frozenset({2}))
    before = {outcome: count(outcome) for outcome in ("handled", "parked")}
    things.handle(parking, [delivery("1", "a"), delivery("2", "b"), delivery("{bad", "c"), delivery("4", "d")])
    assert count("handled") == before["handled"] + 2  # 1 and 4
    assert count("parked") == before["parked"] + 2  # 2 refused, the unreadable one
