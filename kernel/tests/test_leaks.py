"""The leak scanner finds a personal value in every form it takes in a row, a message or a log line,
and flags nothing else."""

from __future__ import annotations

import json
import unicodedata
import uuid
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from upgestao_kernel.leaks import LeakScanner, forms_of, log_texts, table_texts
from upgestao_kernel.schema import outbox

NAME = "Heloísa Quintanilha Prado"
PHONE = "+55 31 98888-1234"
BIRTH_DATE = "1985-04-12"
EMAIL = "Heloisa.Prado@Example.org"
CEP = "30130-110"


@pytest.fixture
def scanner() -> LeakScanner:
    return LeakScanner([NAME, PHONE, BIRTH_DATE, EMAIL, CEP])


def leaked(scanner: LeakScanner, text) -> list[str]:
    return sorted({leak.value for leak in scanner.find(text, "test")})


@pytest.mark.parametrize("text", [
    json.dumps({"full_name": NAME}),  # ASCII-escaped: Helo\u00edsa
    json.dumps({"body": json.dumps({"full_name": NAME})}),  # JSON in JSON: Helo\\u00edsa
    json.dumps({"full_name": NAME}, ensure_ascii=False),
    f"name={NAME.upper()}",  # case
    unicodedata.normalize("NFD", NAME),  # decomposed accents
    "heloisa quintanilha prado",  # accents stripped
    "GET /v1/customers?" + urlencode({"name": NAME}),  # percent-encoded, spaces as +
    "full_name=Helo%C3%ADsa%20Quintanilha%20Prado",
    NAME.encode("utf-8"),  # broker bodies arrive as bytes
    {"nested": [{"full_name": NAME}]},
])
def test_an_accented_name_is_found_in_every_form(scanner, text):
    assert leaked(scanner, text) == [NAME]


@pytest.mark.parametrize("text", [
    "+5531988881234", "5531988881234", "31988881234", "(31) 98888-1234", "31 98888-1234", "+55 31 98888-1234",
    "(31)98888-1234", "phone: 98888-1234", "988881234", json.dumps({"phone": "+5531988881234"}),
    "tel%3A%2B5531988881234",
])
def test_a_phone_is_found_however_it_is_punctuated(scanner, text):
    assert leaked(scanner, text) == [PHONE]


@pytest.mark.parametrize("text", [
    "1985-04-12", "12/04/1985", "12-04-1985", "12.04.1985", "12041985", "19850412", "1985/04/12",
    json.dumps({"d": "12/04/1985"}).replace("/", "\\/"),  # a JSON encoder that escapes slashes
])
def test_a_date_is_found_in_iso_and_brazilian_formats(scanner, text):
    assert leaked(scanner, text) == [BIRTH_DATE]


@pytest.mark.parametrize("text", [
    "heloisa.prado@example.org", "HELOISA.PRADO@EXAMPLE.ORG", "email=Heloisa.Prado%40Example.org",
    json.dumps({"email": EMAIL}),
])
def test_an_email_is_found_whatever_its_case_or_encoding(scanner, text):
    assert leaked(scanner, text) == [EMAIL]


def test_a_postal_code_is_found_with_and_without_its_dash(scanner):
    assert leaked(scanner, "cep 30130110") == leaked(scanner, "cep 30130-110") == [CEP]


def test_what_is_not_a_personal_value_is_not_flagged(scanner):
    clean = [
        json.dumps({"event_id": str(uuid.uuid4()), "occurred_at": datetime.now(UTC).isoformat(),
                    "fields": ["full_name", "phone", "birth_date", "email"], "subject_id": str(uuid.uuid4())}),
        "Heloísa Quintanilha Pradox"[:8], "+55 31 98888-1235", "31988881235", "1985-04-13", "13/04/1985",
        "heloisa.prado@example.com", "30130-111", "v1:" + "A" * 80,
    ]
    assert scanner.scan({"clean": clean}) == []
    assert scanner.assert_clean({"clean": clean}) == len(clean)


def test_a_leak_names_the_value_the_form_and_where(scanner):
    [leak] = scanner.scan({"outbox": ["x", json.dumps({"full_name": NAME})]})
    assert (leak.value, leak.where) == (NAME, "outbox[1]")
    assert leak.form == "helo\\u00edsa quintanilha prado"
    with pytest.raises(AssertionError, match="1 personal value"):
        scanner.assert_clean([("outbox#1", json.dumps({"full_name": NAME}))])


def test_short_or_missing_values_are_refused():
    with pytest.raises(ValueError, match="5 characters"):
        forms_of("SP")
    with pytest.raises(ValueError):
        LeakScanner([])
    assert "+5531988881234" in forms_of(PHONE) and "12/04/1985" in forms_of(BIRTH_DATE)


def test_rows_of_a_table_are_scanned_as_stored(engine, scanner):
    with engine.begin() as conn:
        conn.execute(outbox.insert(), [
            {"message_id": str(uuid.uuid4()), "exchange": "audit", "routing_key": "audit.x", "headers": {},
             "body": {"fields": ["full_name"], "note": "nothing personal"}, "created_at": datetime.now(UTC)},
            {"message_id": str(uuid.uuid4()), "exchange": "x.events", "routing_key": "x.y", "headers": {},
             "body": {"data": {"full_name": NAME}}, "created_at": datetime.now(UTC)},
        ])
    leaks = scanner.scan(table_texts(engine, "outbox"))
    assert [(leak.value, leak.where) for leak in leaks] == [(NAME, "outbox#1")]


def test_log_files_are_read_whole(tmp_path, scanner):
    (tmp_path / "gateway.log").write_text('{"event": "request", "path": "/v1/ping"}\n')
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "identity.log").write_text('{"event": "x"}\n{"phone": "31988881234"}\n',
                                                      encoding="utf-8")
    leaks = scanner.scan(log_texts(tmp_path))
    assert [(leak.value, leak.where) for leak in leaks] == [(PHONE, "nested/identity.log")]
