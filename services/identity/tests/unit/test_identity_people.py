"""Validators of personal values: e-mail, phone, birth date, address."""

from datetime import date, datetime

import pytest
from upgestao_identity.domain.people import (
    ADDRESS_FIELDS,
    BR_STATES,
    InvalidValue,
    age_on,
    check_birth_date,
    check_minimum_age,
    is_adult,
    normalise_address,
    normalise_email,
    normalise_phone,
    parse_birth_date,
)

# --------------------------------------------------------------------------- e-mail


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("maria@example.com", "maria@example.com"),
        ("  Maria.Silva@Example.COM.br ", "Maria.Silva@example.com.br"),
        ("joao+upgestao@sub.dominio.com.br", "joao+upgestao@sub.dominio.com.br"),
        ("o'neil@example.org", "o'neil@example.org"),
        ("ana@exämple.com", "ana@xn--exmple-cua.com"),
        ("\tmaria@example.com\n", "maria@example.com"),
    ],
)
def test_email_valid(raw, expected):
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "maria",
        "maria@",
        "@example.com",
        "maria@localhost",
        "maria@example",
        "maria silva@example.com",
        "maria@exa mple.com",
        "maria@@example.com",
        "a@b@example.com",
        ".maria@example.com",
        "maria.@example.com",
        "ma..ria@example.com",
        "maria@-example.com",
        "maria@example..com",
        "maria@example.c",
        "maria@example.123",
        "maria@exa_mple.com",
        "ma(ria)@example.com",
        "x" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
        None,
        42,
    ],
)
def test_email_invalid(raw):
    with pytest.raises(InvalidValue) as excinfo:
        normalise_email(raw)
    assert excinfo.value.field == "email"
    assert excinfo.value.message


def test_email_length_limit():
    local = "a" * 64
    domain = ".".join(["b" * 61] * 3) + ".com"  # 189 characters
    ok = f"{local}@{domain}"
    assert len(ok) == 254
    assert normalise_email(ok) == ok
    too_long = f"{local}@b{domain}"
    assert len(too_long) == 255
    with pytest.raises(InvalidValue, match="at most 254"):
        normalise_email(too_long)


# --------------------------------------------------------------------------- phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+55 11 91234-5678", "+5511912345678"),
        ("(11) 91234-5678", "+5511912345678"),
        ("11912345678", "+5511912345678"),
        ("(21) 3123-4567", "+552131234567"),
        ("+1 650 253 0000", "+16502530000"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+351 912 345 678", "+351912345678"),
    ],
)
def test_phone_valid(raw, expected):
    assert normalise_phone(raw) == expected


def test_phone_other_default_region():
    assert normalise_phone("020 7946 0958", default_region="GB") == "+442079460958"


@pytest.mark.parametrize(
    "raw", ["", "abc", "12345", "912345678", "(11) 81234-5678", "11 1234-5678", "+55 11 1234", "+999 1234567", None]
)
def test_phone_invalid(raw):
    with pytest.raises(InvalidValue) as excinfo:
        normalise_phone(raw)
    assert excinfo.value.field == "phone"


# --------------------------------------------------------------------------- age


def test_age_on():
    assert age_on(date(2000, 6, 15), date(2026, 6, 14)) == 25
    assert age_on(date(2000, 6, 15), date(2026, 6, 15)) == 26
    assert age_on(date(2000, 6, 15), date(2000, 6, 15)) == 0


def test_eighteenth_birthday_boundary():
    born = date(2008, 5, 20)
    assert not is_adult(born, date(2026, 5, 19))
    assert is_adult(born, date(2026, 5, 20))
    with pytest.raises(InvalidValue, match="at least 18 years old on 2026-05-19") as excinfo:
        check_minimum_age(born, date(2026, 5, 19))
    assert excinfo.value.field == "birth_date"
    check_minimum_age(born, date(2026, 5, 20))


def test_born_on_29_february_common_year():
    born = date(2008, 2, 29)
    assert age_on(born, date(2026, 2, 28)) == 17
    with pytest.raises(InvalidValue, match="at least 18"):
        check_minimum_age(born, date(2026, 2, 28))
    check_minimum_age(born, date(2026, 3, 1))
    assert age_on(born, date(2026, 3, 1)) == 18


def test_born_on_29_february_birthday_in_leap_year():
    # 18 is not a multiple of 4, so an 18th birthday of someone born on 29 February never falls in a leap
    # year; the 20th does: 2004-02-29 -> 2024-02-29
    born = date(2004, 2, 29)
    assert age_on(born, date(2024, 2, 28)) == 19
    assert age_on(born, date(2024, 2, 29)) == 20
    assert not is_adult(born, date(2024, 2, 28), minimum_age=20)
    assert is_adult(born, date(2024, 2, 29), minimum_age=20)
    check_minimum_age(born, date(2024, 2, 29), minimum_age=20)
    with pytest.raises(InvalidValue):
        check_minimum_age(born, date(2024, 2, 28), minimum_age=20)


def test_eighteenth_birthday_the_day_after_a_leap_day():
    born = date(2006, 3, 1)
    assert not is_adult(born, date(2024, 2, 29))  # 18th birthday is the next day, not 29 Feb
    assert is_adult(born, date(2024, 3, 1))


def test_check_birth_date():
    today = date(2026, 1, 10)
    check_birth_date(today, today)
    check_birth_date(date(1900, 1, 1), today)
    with pytest.raises(InvalidValue, match="future") as excinfo:
        check_birth_date(date(2026, 1, 11), today)
    assert excinfo.value.field == "birth_date"
    with pytest.raises(InvalidValue, match="1900"):
        check_birth_date(date(1899, 12, 31), today)
    with pytest.raises(InvalidValue):
        check_birth_date(datetime(2000, 1, 1, 12, 0), today)
    with pytest.raises(InvalidValue):
        check_birth_date("2000-01-01", today)
    with pytest.raises(InvalidValue, match="future"):
        check_minimum_age(date(2030, 1, 1), today)


def test_parse_birth_date():
    assert parse_birth_date("2000-02-29") == date(2000, 2, 29)
    assert parse_birth_date(date(2000, 1, 1)) == date(2000, 1, 1)
    for bad in ("2001-02-29", "29/02/2000", "20000229", "", None, datetime(2000, 1, 1)):
        with pytest.raises(InvalidValue):
            parse_birth_date(bad)


def test_invalid_value_is_a_value_error():
    err = InvalidValue("email", "is required")
    assert isinstance(err, ValueError)
    assert (err.field, err.message, str(err)) == ("email", "is required", "email: is required")


# --------------------------------------------------------------------------- address


def address(**changes):
    base = {
        "street": "Avenida Paulista",
        "number": "1578",
        "complement": "Apto 12",
        "district": "Bela Vista",
        "city": "São Paulo",
        "state": "SP",
        "postal_code": "01310-200",
        "country": "BR",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def test_address_valid():
    result = normalise_address(address())
    assert tuple(result) == ADDRESS_FIELDS
    assert result["postal_code"] == "01310-200" and result["state"] == "SP" and result["country"] == "BR"


def test_address_normalisation():
    result = normalise_address(
        address(postal_code="01310200", state="sp", country=..., complement=..., street="  Avenida   Paulista ")
    )
    assert result["postal_code"] == "01310-200"
    assert result["state"] == "SP"
    assert result["country"] == "BR"  # default
    assert result["complement"] is None
    assert result["street"] == "Avenida Paulista"
    assert normalise_address(address(country="br", complement="  "))["complement"] is None


def test_address_all_27_states():
    assert len(BR_STATES) == 27
    for uf in BR_STATES:
        assert normalise_address(address(state=uf))["state"] == uf


@pytest.mark.parametrize("uf", ["XX", "São Paulo", "S", "BR", ""])
def test_address_invalid_state(uf):
    with pytest.raises(InvalidValue) as excinfo:
        normalise_address(address(state=uf))
    assert excinfo.value.field == "address.state"


@pytest.mark.parametrize(
    "cep", ["0131020", "013102000", "01310_200", "01310-20", "0131-0200", "abcde-fgh", "00000-000", "01.310-200"]
)
def test_address_invalid_cep(cep):
    with pytest.raises(InvalidValue) as excinfo:
        normalise_address(address(postal_code=cep))
    assert excinfo.value.field == "address.postal_code"


@pytest.mark.parametrize("name", ["street", "number", "district", "city", "state", "postal_code"])
def test_address_required_fields(name):
    for missing in (..., None, "", "   "):
        with pytest.raises(InvalidValue) as excinfo:
            normalise_address(address(**{name: missing}))
        assert excinfo.value.field == f"address.{name}"
        assert excinfo.value.message == "is required"


def test_address_length_limit():
    assert normalise_address(address(street="r" * 200))["street"] == "r" * 200
    with pytest.raises(InvalidValue) as excinfo:
        normalise_address(address(complement="c" * 201))
    assert excinfo.value.field == "address.complement"


def test_address_other_countries():
    result = normalise_address(address(country="pt", state="Lisboa", postal_code="1100-148"))
    assert (result["country"], result["state"], result["postal_code"]) == ("PT", "Lisboa", "1100-148")
    with pytest.raises(InvalidValue) as excinfo:
        normalise_address(address(country="XX"))
    assert excinfo.value.field == "address.country"
    with pytest.raises(InvalidValue):
        normalise_address(address(country="BRA"))


def test_address_wrong_shapes():
    with pytest.raises(InvalidValue) as excinfo:
        normalise_address("Avenida Paulista, 1578")
    assert excinfo.value.field == "address"
    with pytest.raises(InvalidValue) as excinfo:
        normalise_address(address(number=1578))
    assert excinfo.value.field == "address.number"
    with pytest.raises(InvalidValue) as excinfo:
        normalise_address(address(zip="01310-200"))
    assert excinfo.value.field == "address.zip"
