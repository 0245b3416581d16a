"""The ingest's record parser: the fast path for records as the kernel emits them
gives exactly what the schema gives, and anything else is judged by the schema."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from upgestao_kernel.audit import AuditRecord
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
    assert ingest.parse_message(json.dumps(body).encode()) == ingest.parse(body)
    with pytest.raises(ValueError):
        ingest.parse_message(b"{not json")
    with pytest.raises(RecursionError):
        ingest.parse_message(b"[" * 100_000)


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
