"""Fuzzing the audit ingest parser (``ingest.parse``): its fast path and its schema path agree; a batch
message (``ingest.parse_message``) is its records parsed alone, or refused whole.

For any input, ``parse`` returns a record or raises ``ValueError`` (the caller parks the message);
whenever the fast path takes a record, the schema takes it too and gives the identical record; a
parsed record is a fixed point (parsing the stored form again gives it back); each input is parsed
within a time and memory budget.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from fuzzing import MiB, bounded, fuzz
from hypothesis import example, given
from hypothesis import strategies as st
from upgestao_kernel.audit import ACTIONS, OUTCOMES
from upgestao_privacy.service_layer import ingest

KEYS = sorted(ingest._KEYS)
TEXT_LIMITS = {**ingest._LIMITS, "action": 64, "outcome": 64}

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)


def text_near(limit: int) -> st.SearchStrategy[str]:
    """Strings around the column's limit, with the characters that differ between parsers."""
    return st.one_of(
        st.text(max_size=12),
        st.text(alphabet="ab\n\t \u00e9\u0663\U0001f600", min_size=limit - 1, max_size=limit + 1),
        st.sampled_from(["", " ", "\n", "identity", "x" * limit, "x" * (limit + 1)]),
    )


zones = st.sampled_from([UTC, timezone(timedelta(hours=-3)), timezone(timedelta(hours=5, minutes=30)),
                         timezone(timedelta(hours=23, minutes=59)), timezone(-timedelta(hours=23, minutes=59))])
# the whole range: an offset can carry an instant of year 1 or 9999 outside what UTC can hold
instants = st.builds(lambda moment, zone: moment.replace(tzinfo=zone), st.datetimes(), zones)


def time_texts(moment: datetime) -> st.SearchStrategy[str]:
    base = moment.isoformat()
    naive = moment.replace(tzinfo=None).isoformat()
    return st.sampled_from([
        base, moment.isoformat(timespec="seconds"), moment.isoformat(timespec="milliseconds"),
        moment.isoformat(timespec="microseconds"), base.replace("+00:00", "Z"), naive, naive + "Z",
        base + "\n", " " + base, base.replace("T", " "), base.replace("-", "", 2), base[:-3] + base[-2:],
        base.upper(), base.lower(), base.translate(str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664"
                                                                            "\u0665\u0666\u0667\u0668\u0669")),
        base + ".123", base[:19] + ".1234567" + base[19:], base[:19] + "+24:00", base[:19] + "+05:30:15",
    ])


@st.composite
def emitted_records(draw) -> dict[str, Any]:
    """A record as the kernel emits it (``AuditRecord.to_message()``), within the store's limits."""
    record: dict[str, Any] = {
        "audit_id": str(draw(st.uuids())),
        "occurred_at": draw(instants).isoformat(),
        "fields": draw(st.lists(st.text(max_size=12), max_size=5)),
        "action": draw(st.sampled_from(ACTIONS)),
        "outcome": draw(st.sampled_from(OUTCOMES)),
    }
    for name in ingest._REQUIRED_TEXT:
        if name not in record:
            record[name] = draw(st.text(min_size=1, max_size=TEXT_LIMITS[name]))
    for name in ingest._OPTIONAL_TEXT:
        record[name] = draw(st.none() | st.text(max_size=TEXT_LIMITS[name]))
    return record


@st.composite
def mutated_records(draw) -> Any:
    """An emitted record with a few members changed, removed or added."""
    record = draw(emitted_records())
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(KEYS))
        change = draw(st.sampled_from(["drop", "json", "text", "time", "uuid", "add", "type"]))
        if change == "drop":
            record.pop(key, None)
        elif change == "json":
            record[key] = draw(json_values)
        elif change == "text":
            record[key] = draw(text_near(TEXT_LIMITS.get(key, 64)))
        elif change == "time":
            record["occurred_at"] = draw(instants.flatmap(time_texts))
        elif change == "uuid":
            value = draw(st.uuids())
            record["audit_id"] = draw(st.sampled_from([
                str(value), str(value).upper(), value.hex, f"{{{value}}}", f"urn:uuid:{value}", str(value) + "\n",
                " " + str(value), str(value)[:-1], str(value).replace("-", "_")]))
        elif change == "add":
            record[draw(st.text(max_size=10))] = draw(json_values)
        else:
            record[key] = draw(st.sampled_from([0, 1.5, True, [], {}, ["x"], [1], None]))
    if draw(st.booleans()):  # as it arrives from the broker: through JSON
        record = json.loads(json.dumps(record))
    return record


def check(body: Any) -> None:
    with bounded("ingest.parse", seconds=0.5, memory=16 * MiB):
        try:
            parsed = ingest.parse(body)
        except ValueError:
            parsed = None
        fast = ingest._fast(body)
        try:
            by_schema = ingest._by_schema(body)
        except ValueError:
            by_schema = None
    if fast is not None:
        assert by_schema is not None, f"the fast path takes a record the schema refuses: {body!r}"
        assert fast == by_schema, f"the fast path and the schema differ on {body!r}"
    assert parsed == by_schema
    if parsed is not None:
        assert ingest.parse(parsed) == parsed, "a stored record does not parse back to itself"
        assert parsed.keys() == ingest._KEYS
        assert str(uuid.UUID(parsed["audit_id"])) == parsed["audit_id"]
        assert datetime.fromisoformat(parsed["occurred_at"]).utcoffset() == timedelta(0)
        for name, limit in ingest._LIMITS.items():
            assert parsed[name] is None or len(parsed[name]) <= limit


@fuzz
@given(emitted_records())
def test_records_as_emitted_take_the_fast_path(body):
    assert ingest._fast(body) is not None
    check(body)


REGRESSIONS = [
    {"audit_id": "8cdcf1a5-9329-4de7-aed7-7f4762b10c2d\n"},  # the fast path took it ("$" before a newline)
    {"occurred_at": "0001-01-01T00:00:00+05:30"},  # OverflowError on the way to UTC, in both paths
    {"occurred_at": "9999-12-31T23:59:59.999999-00:01"},
]
_VALID = {"audit_id": "8cdcf1a5-9329-4de7-aed7-7f4762b10c2d", "occurred_at": "2026-11-29T10:00:00+00:00",
          "fields": [], "action": "read", "outcome": "success", "service": "identity", "resource_type": "user",
          "purpose": "profile", **dict.fromkeys(ingest._OPTIONAL_TEXT)}


@fuzz
@given(mutated_records())
@example(_VALID)
@example({**_VALID, **REGRESSIONS[0]})
@example({**_VALID, **REGRESSIONS[1]})
@example({**_VALID, **REGRESSIONS[2]})
def test_near_valid_records_fast_path_and_schema_agree(body):
    check(body)


@fuzz
@given(json_values)
def test_any_json_value_is_a_record_or_a_value_error(body):
    check(body)


@fuzz
@given(st.lists(emitted_records() | mutated_records() | json_values, max_size=6),
       st.sampled_from(["batch", "extra key", "not a list"]))
def test_a_batch_message_is_every_record_parsed_or_a_value_error_whole(records, shape):
    """A batch (``{"records": [...]}``) parses to its records, each as ``parse`` alone gives it, only if
    every one of them parses and the batch is well formed; otherwise the whole message is a ``ValueError``."""
    message = {"records": records} if shape == "batch" else (
        {"records": records, "service": "identity"} if shape == "extra key" else {"records": {"0": records}})
    records = json.loads(json.dumps(records))  # as they arrive from the broker
    alone = []
    for record in records:
        try:
            alone.append(ingest.parse(record))
        except ValueError:
            alone.append(None)
    with bounded("ingest.parse_message", seconds=0.5, memory=16 * MiB):
        try:
            parsed = ingest.parse_message(json.dumps(message).encode())
        except ValueError:
            parsed = None
    if shape != "batch" or not records or None in alone:
        assert parsed is None, f"a batch with something wrong was taken: {message!r}"
    else:
        assert parsed == alone
