"""Webhook payloads: each type carries its ids and only the integration's allowed fields; a forbidden field
or value never reaches the JSON whatever the event holds (a property test over random settings and data);
the JSON is compact UTF-8 under 20,000 bytes, a long body cut with ``body_truncated``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from upgestao_integrations.domain.fields import NEVER_SHAREABLE, SHAREABLE_FIELDS, WEBHOOK_TYPES
from upgestao_integrations.domain.payloads import MAX_PAYLOAD_BYTES, PayloadTooLarge, build_payload, filter_data

AT = datetime(2026, 3, 4, 5, 6, 7, 891_234, tzinfo=UTC)
CUSTOMER = {"id": "cus_1", "email": "ana@example.com", "name": "Ana Souza", "phone": "+5511999990000",
            "address": {"street": "Rua das Flores"}, "birth_date": "1990-01-01", "gender": "f",
            "photo": "https://cdn/ana.jpg", "job_title": "CEO", "password": "hunter2"}


def _load(raw: bytes) -> dict:
    assert len(raw) <= MAX_PAYLOAD_BYTES
    return json.loads(raw.decode("utf-8"))


def test_envelope_and_timestamp():
    raw = build_payload("message.deleted", AT, {"message_id": "m1", "conversation_id": "v1"}, [])
    assert raw == (b'{"data":{"conversation_id":"v1","message_id":"m1"},'
                   b'"timestamp":"2026-03-04T05:06:07.891Z","type":"message.deleted"}')


def test_timestamps_are_utc_with_z():
    local = datetime(2026, 3, 4, 2, 6, 7, tzinfo=timezone(timedelta(hours=-3)))
    assert _load(build_payload("subject.erased", local, {"subject_id": "s"}, []))["timestamp"] == \
        "2026-03-04T05:06:07.000Z"
    edited = _load(build_payload("message.edited", AT, {"message_id": "m", "edited_at": local}, []))
    assert edited["data"]["edited_at"] == "2026-03-04T05:06:07.000Z"
    with pytest.raises(ValueError):
        build_payload("subject.erased", datetime(2026, 1, 1), {"subject_id": "s"}, [])


def test_unknown_type_is_refused():
    with pytest.raises(ValueError):
        build_payload("customer.deleted", AT, {}, [])


def test_message_created_with_every_field():
    data = {"message_id": "m1", "conversation_id": "v1", "customer_id": "cus_1", "direction": "incoming",
            "created_at": "2026-03-04T05:06:07Z", "attachment_count": 2, "body": "Olá!", "customer": CUSTOMER,
            "private": False, "author_id": "u9", "visitor_id": "vis"}
    payload = _load(build_payload("message.created", AT, data, SHAREABLE_FIELDS))
    assert payload["type"] == "message.created"
    assert payload["data"] == {"message_id": "m1", "conversation_id": "v1", "customer_id": "cus_1",
                               "direction": "incoming", "created_at": "2026-03-04T05:06:07Z",
                               "attachment_count": 2, "body": "Olá!",
                               "customer": {"id": "cus_1", "email": "ana@example.com", "name": "Ana Souza",
                                            "phone": "+5511999990000"}}


def test_without_fields_only_ids_and_metadata_go():
    data = {"message_id": "m1", "conversation_id": "v1", "customer_id": "cus_1", "body": "Olá!",
            "customer": CUSTOMER, "attachment_count": 0}
    payload = _load(build_payload("message.created", AT, data, []))
    assert payload["data"] == {"message_id": "m1", "conversation_id": "v1", "customer_id": "cus_1",
                               "attachment_count": 0, "customer": {"id": "cus_1"}}


def test_each_person_field_goes_alone():
    for field in ("email", "name", "phone"):
        payload = _load(build_payload("customer.created", AT, {"customer_id": "cus_1", "customer": CUSTOMER},
                                      [field]))
        assert payload["data"]["customer"] == {"id": "cus_1", field: CUSTOMER[field]}


def test_body_only_with_conversations():
    data = {"message_id": "m", "body": "segredo"}
    assert "body" not in _load(build_payload("message.edited", AT, data, ["email", "name", "phone"]))["data"]
    assert _load(build_payload("message.edited", AT, data, ["conversations"]))["data"]["body"] == "segredo"


def test_subject_updated_carries_only_allowed_changes():
    changed = {"email": "new@example.com", "name": None, "phone": "+5511", "address": "Rua X", "gender": "m"}
    payload = _load(build_payload("subject.updated", AT, {"subject_id": "cus_1", "changed": changed}, ["name",
                                                                                                    "phone"]))
    assert payload["data"] == {"subject_id": "cus_1", "changed": {"name": None, "phone": "+5511"}}


def test_values_of_the_wrong_kind_are_dropped():
    data = {"conversation_id": {"email": "ana@example.com"}, "customer_id": ["ana@example.com"], "status": 5,
            "previous": None, "snoozed_until": {"x": 1}}
    payload = _load(build_payload("conversation.status_changed", AT, data, SHAREABLE_FIELDS))
    assert payload["data"] == {"previous": None}
    counted = _load(build_payload("message.created", AT, {"attachment_count": True}, []))
    assert counted["data"] == {}
    customer = _load(build_payload("customer.created", AT, {"customer": {"id": 7, "email": {"a": "b"},
                                                                         "name": "Ana"}}, SHAREABLE_FIELDS))
    assert customer["data"] == {"customer": {"name": "Ana"}}


def test_a_long_body_is_cut_and_flagged():
    body = "ação ✓ " * 10_000  # 70,000 characters, ~110 KB of UTF-8
    raw = build_payload("message.created", AT, {"message_id": "m", "body": body}, ["conversations"])
    payload = _load(raw)
    assert payload["data"]["body_truncated"] is True
    assert body.startswith(payload["data"]["body"]) and len(payload["data"]["body"]) > 5000
    assert MAX_PAYLOAD_BYTES - 8 <= len(raw) <= MAX_PAYLOAD_BYTES  # filled up to the bound (less than a char)


def test_a_body_that_fits_is_not_flagged():
    payload = _load(build_payload("message.created", AT, {"body": "x" * 19_000}, ["conversations"]))
    assert "body_truncated" not in payload["data"]


def test_lone_surrogates_become_replacement_characters():
    payload = _load(build_payload("message.created", AT, {"body": "a\ud800b", "direction": "\udfff"},
                                  ["conversations"]))
    assert payload["data"]["body"] == "a\ufffdb" and payload["data"]["direction"] == "\ufffd"


def test_long_metadata_is_clipped_so_the_bound_always_holds():
    huge = "\x01" * 10_000  # each escapes to 6 bytes of JSON
    data = {key: huge for key in ("conversation_id", "customer_id", "channel", "team_id", "assignee_id")}
    data["customer"] = {"id": huge, "email": huge, "name": huge, "phone": huge}
    raw = build_payload("conversation.created", AT, data, SHAREABLE_FIELDS)
    assert len(raw) <= MAX_PAYLOAD_BYTES
    assert PayloadTooLarge.__mro__[1] is ValueError


# -- the property: nothing disallowed ever goes, the bound always holds -------------------------------------

FORBIDDEN_KEYS = (*NEVER_SHAREABLE, "password", "locale", "private", "author_id", "staff", "visitor_id",
                  "full_name", "notes")


def _marker(kind: str) -> st.SearchStrategy[str]:
    # a value recognisable in the bytes: a prefix no legitimate value has, and a unique number
    return st.builds(lambda n: f"§{kind}§{n}§", st.integers(0, 10**9))


TEXT = st.text(alphabet=st.characters(blacklist_characters="§", blacklist_categories=("Cs",)), max_size=200)
# bodies up to 100 KB of multibyte text (and characters JSON escapes), built cheaply from a repeated unit
BODY = st.one_of(
    st.text(max_size=300),
    st.builds(lambda unit, size: (unit * (size // len(unit) + 1))[:size],
              st.text(alphabet="ãçé✓€𝄞字\x00\"\\\na", min_size=1, max_size=24), st.integers(1000, 34_000)),
)


@st.composite
def event(draw):
    webhook_type = draw(st.sampled_from(WEBHOOK_TYPES))
    fields = draw(st.lists(st.sampled_from(SHAREABLE_FIELDS), unique=True))
    secret = {f: draw(_marker(f)) for f in ("email", "name", "phone", "body")}
    forbidden = {key: draw(st.one_of(_marker("forbidden"),
                                     st.fixed_dictionaries({"street": _marker("forbidden")}),
                                     st.lists(_marker("forbidden"), min_size=1, max_size=2)))
                 for key in draw(st.lists(st.sampled_from(FORBIDDEN_KEYS), unique=True))}
    customer = {"id": draw(TEXT), "email": secret["email"], "name": secret["name"], "phone": secret["phone"],
                **forbidden, "customer": {"email": draw(_marker("forbidden"))}}
    data = {
        "message_id": draw(TEXT), "conversation_id": draw(TEXT), "customer_id": draw(TEXT),
        "team_id": draw(st.one_of(st.none(), TEXT)), "assignee_id": draw(st.one_of(st.none(), TEXT)),
        "subject_id": draw(TEXT), "channel": draw(TEXT), "status": draw(TEXT), "previous": draw(TEXT),
        "direction": draw(st.sampled_from(["incoming", "outgoing"])), "mode": draw(TEXT),
        "created_at": AT, "edited_at": draw(st.one_of(st.none(), st.just(AT))), "snoozed_until": None,
        "attachment_count": draw(st.integers(0, 50)),
        "body": draw(BODY) + secret["body"],
        "customer": customer,
        "changed": {"email": secret["email"], "name": secret["name"], "phone": secret["phone"], **forbidden},
        # forbidden things at the top level too, and a nested customer under an unexpected key
        **forbidden, "person": {"email": draw(_marker("forbidden"))},
    }
    return webhook_type, fields, data, secret


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.data_too_large])
@given(event())
def test_no_disallowed_field_or_value_ever_goes(example):
    webhook_type, fields, data, secret = example
    raw = build_payload(webhook_type, AT, data, fields)
    assert len(raw) <= MAX_PAYLOAD_BYTES
    text = raw.decode("utf-8")
    payload = json.loads(text)
    assert payload["type"] == webhook_type and payload["timestamp"] == "2026-03-04T05:06:07.891Z"
    assert "§forbidden§" not in text
    for key in FORBIDDEN_KEYS + ("person",):
        assert f'"{key}":' not in text
    for field in ("email", "name", "phone"):
        if field not in fields:
            assert secret[field] not in text
            assert f'"{field}":' not in text
    if "conversations" in fields and webhook_type in ("message.created", "message.edited"):
        sent = payload["data"]["body"]
        if payload["data"].get("body_truncated"):
            assert sent != data["body"] and data["body"].startswith(sent)
            assert len(raw) > MAX_PAYLOAD_BYTES - 8  # cut only as much as needed (a char is at most 6 bytes)
        else:
            assert sent == data["body"]
    if "conversations" not in fields:
        assert '"body":' not in text and "§body§" not in text
    # the person values that do go are the integration's allowed ones, and only inside customer/changed
    data_out = payload["data"]
    for key, value in data_out.items():
        if key in ("customer", "changed"):
            assert set(value) <= {"id", *fields}
        elif key == "body":
            assert "conversations" in fields
        elif key != "body_truncated":
            assert value is None or isinstance(value, str | int)
            assert "§" not in str(value)


def test_filter_data_leaves_the_body_whole():
    body = "x" * 50_000
    assert filter_data("message.edited", {"body": body}, ["conversations"]) == {"body": body}
