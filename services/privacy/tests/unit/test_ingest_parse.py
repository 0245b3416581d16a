"""The ingest's record parser: the fast path for records as the kernel emits them
gives exactly what the schema gives, and anything else is judged by the schema."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from unittest.mock import patch

import pytest
import sqlalchemy as sa
from upgestao_kernel.audit import MAX_BATCH_BYTES, MAX_BATCH_RECORDS, AuditEmitter, AuditRecord
from upgestao_kernel.context import RequestContext
from upgestao_kernel.fakes import MemoryStore
from upgestao_kernel.relay import _message
from upgestao_privacy.service_layer import ingest


def emitted(**over) -> dict:
    fields = {"service": "identity", "action": "read", "resource_type": "user", "resource_id": "u-1",
              "subject_id": "u-1", "fields": ("phone", "email", "email"), "purpose": "profile",
              "actor_id": "a-1", "actor_role": "admin", "request_id": "r-1", "source_ip": "203.0.113.9",
              "occurred_at": datetime(2026, 11, 29, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-3)))}
    fields.update(over)
    return AuditRecord(**fields).to_message()


@pytest.mark.parametrize("over", [{}, {"recipient": "crm"}, {"actor_id": None, "actor_role": None},
                                  {"occurred_at": datetime(2026, 1, 1, tzinfo=UTC)}, {"fields": ()}])
def test_the_fast_path_and_the_schema_agree(over):
    body = emitted(**over)
    fast = ingest._fast(body)
    assert fast is not None
    assert fast == ingest._by_schema(body)
    assert fast["occurred_at"].endswith("+00:00") and fast["fields"] == sorted(set(body["fields"]))


@pytest.mark.parametrize("change", [
    lambda b: b.pop("recipient"),  # an older emitter: the schema fills the default
    lambda b: b.update(audit_id=b["audit_id"].upper()),  # the schema normalises it
    lambda b: b.update(purpose=""),
])
def test_anything_unusual_goes_to_the_schema(change):
    body = emitted()
    change(body)
    assert ingest._fast(body) is None
    record = ingest.parse(body)
    assert record == ingest._by_schema(body)
    assert str(uuid.UUID(record["audit_id"])) == record["audit_id"]


@pytest.mark.parametrize("change, field", [
    (lambda b: b.update(action="peek"), "action"),
    (lambda b: b.update(outcome="maybe"), "outcome"),
    (lambda b: b.update(occurred_at="2026-11-29T10:00:00"), "occurred_at"),  # no zone
    (lambda b: b.update(occurred_at="20261129T100000Z"), "occurred_at"),  # not the extended form
    (lambda b: b.update(audit_id="not-a-uuid"), "audit_id"),
    (lambda b: b.update(subject_id="s" * 65), "subject_id"),
    (lambda b: b.update(fields="email"), "fields"),
    (lambda b: b.update(extra="x"), "1 unknown keys"),  # counted: a key the publisher made up is never quoted
    (lambda b: b.pop("service"), "service"),
])
def test_a_malformed_record_is_refused_naming_the_field(change, field):
    body = emitted()
    change(body)
    with pytest.raises(ValueError, match=field):
        ingest.parse(body)


def test_a_non_object_is_refused():
    with pytest.raises(ValueError, match="JSON object"):
        ingest.parse(["not", "a", "record"])


def test_a_message_is_json_then_a_record():
    body = emitted()
    assert ingest.parse_message(json.dumps(body).encode()) == [ingest.parse(body)]
    with pytest.raises(ValueError):
        ingest.parse_message(b"{not json")
    with pytest.raises(RecursionError):
        ingest.parse_message(b"[" * 100_000)


def test_a_batch_message_is_its_records_each_parsed_in_order():
    bodies = [emitted(resource_id=f"m-{n}") for n in range(3)]
    parsed = ingest.parse_message(json.dumps({"records": bodies}).encode())
    assert parsed == [ingest.parse(b) for b in bodies]
    assert [r["resource_id"] for r in parsed] == ["m-0", "m-1", "m-2"]
    assert len({r["audit_id"] for r in parsed}) == 3


@pytest.mark.parametrize("batch, reason", [
    ({"records": [emitted(), {**emitted(), "action": "peek"}]}, r"record 1 of the batch: .*\['action'\]"),
    ({"records": [emitted(), "not a record"]}, "record 1 of the batch: an audit record must be a JSON object"),
    ({"records": [emitted(), {"records": [emitted()]}]}, "record 1 of the batch"),  # batches do not nest
    ({"records": []}, "from 1 to"),
    ({"records": emitted()}, "a list of records"),
    ({"records": [emitted()], "service": "identity"}, "object of one key"),
    ({"records": [0] * (ingest.MAX_MESSAGE_RECORDS + 1)}, "from 1 to"),  # counted before any is parsed
])
def test_a_batch_with_anything_wrong_is_refused_whole(batch, reason):
    with pytest.raises(ValueError, match=reason):
        ingest.parse_message(json.dumps(batch).encode())


def test_a_message_over_the_size_limit_is_refused_before_it_is_decoded():
    """A sender's broker user publishing a huge batch (or record) must not make the ingest decode it."""
    record = json.dumps(emitted())
    huge = ('{"records": [' + ",".join([record] * (ingest.MAX_MESSAGE_BYTES // len(record) + 1)) + "]}").encode()
    with patch("upgestao_privacy.service_layer.ingest.json.loads") as loads:
        with pytest.raises(ValueError, match="over"):
            ingest.parse_message(huge)
    loads.assert_not_called()
    with pytest.raises(ValueError, match="over"):
        ingest.parse_message(b" " * (ingest.MAX_MESSAGE_BYTES + 1))
    at_most = ingest.MAX_MESSAGE_RECORDS
    assert len(ingest.parse_message(('{"records": [' + ",".join([record] * at_most) + "]}").encode())) == at_most


@pytest.mark.parametrize("text", ["a" * 60, "\U0001f600" * 60, "\u00e7" * 30 + '"\\' * 15])
def test_every_batch_the_kernel_emits_is_accepted_whole(text):
    """Records as long as the store holds, of the characters JSON escapes longest: the emitter cuts its
    batches so that each message, as the relay sends it (the JSON text the outbox's column holds, as
    SQLAlchemy's JSON type writes it: ``json.dumps``), stays within what the ingest accepts."""
    store = MemoryStore("identity")
    context = RequestContext(request_id="r" * 128, actor_id=text, actor_role=text, source_ip="203.0.113.9")
    emitter = AuditEmitter("identity")
    records = [emitter.build(context, action="read", resource_type=text, resource_id=text + str(n),
                             subject_id=text, fields=[f"{text}{k}" for k in range(20)], purpose=text)
               for n in range(1200)]
    tx = store.begin()
    emitter.emit_many(tx, context, records)
    messages = [_message(SimpleNamespace(**{**row, "body": json.dumps(row["body"]), "type": None}))
                for row in tx.outbox]
    assert len(messages) > 1 and all(len(m.body) <= MAX_BATCH_BYTES for m in messages)
    parsed = [r for m in messages for r in ingest.parse_message(m.body)]
    assert [r["audit_id"] for r in parsed] == [r.audit_id for r in records]
    assert ingest.MAX_MESSAGE_RECORDS >= MAX_BATCH_RECORDS


def test_a_database_error_blames_the_record_unless_the_database_is_away():
    refused = sa.exc.IntegrityError("INSERT ...", {}, _PgError("value too long", "22001"))
    away = sa.exc.OperationalError("SELECT 1", {}, _PgError("server closed the connection", None))
    lost = sa.exc.DBAPIError("INSERT ...", {}, _PgError("reset", None), connection_invalidated=True)
    assert ingest.refused(refused)
    assert not ingest.refused(away) and not ingest.refused(lost) and not ingest.refused(ConnectionError())


def test_a_parked_records_error_names_no_value():
    refused = sa.exc.DataError("INSERT ... '203.0.113.9'", {}, _PgError("value '203.0.113.9' too long", "22001"))
    assert ingest.describe_error(refused) == "_PgError (SQLSTATE 22001)"
    assert ingest.describe_error(ValueError("invalid audit record: ['fields']")) == (
        "ValueError: invalid audit record: ['fields']")
    assert ingest.describe_error(KeyError("203.0.113.9")) == "KeyError"
    with pytest.raises(ValueError) as unknown:  # a key the publisher made up is its text: counted, never quoted
        ingest.parse({"maria@example.com": 1, "service": "identity"})
    assert ingest.describe_error(unknown.value) == (
        "ValueError: invalid audit record: ['action', 'audit_id', 'fields', 'occurred_at', 'outcome', 'purpose', "
        "'resource_type'] and 1 unknown keys")


class _PgError(Exception):
    def __init__(self, text: str, pgcode: str | None) -> None:
        super().__init__(text)
        self.pgcode = pgcode
