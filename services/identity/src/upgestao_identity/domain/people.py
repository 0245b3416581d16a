"""Validators and normalisers of personal values: e-mail, phone, birth date and age, postal address."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import phonenumbers

from .errors import IdentityError


class InvalidValue(IdentityError, ValueError):
    """A personal value is not acceptable; ``field`` names it (dotted when nested), ``message`` says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --------------------------------------------------------------------------- e-mail

EMAIL_MAX_LENGTH = 254
_LOCAL_MAX_LENGTH = 64
# RFC 5322 dot-atom characters; non-ASCII letters are allowed too (RFC 6531)
_LOCAL_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")


def normalise_email(raw: Any) -> str:
    """The address trimmed, with its domain lower-cased (IDN domains in their ASCII ``xn--`` form).

    The local part is kept as typed; comparisons and uniqueness must be case-insensitive elsewhere.
    """
    if not isinstance(raw, str):
        raise InvalidValue("email", "must be a text string")
    email = raw.strip()
    if not email:
        raise InvalidValue("email", "is required")
    if len(email) > EMAIL_MAX_LENGTH:
        raise InvalidValue("email", f"must have at most {EMAIL_MAX_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in email):
        raise InvalidValue("email", "must not contain spaces")
    if email.count("@") != 1:
        raise InvalidValue("email", "must look like name@example.com")
    local, _, domain = email.partition("@")
    if (
        not local
        or len(local) > _LOCAL_MAX_LENGTH
        or local.startswith(".")
        or local.endswith(".")
        or ".." in local
        or not all(_LOCAL_ATOM.match(atom) for atom in local.split("."))
    ):
        raise InvalidValue("email", "must look like name@example.com")
    domain = _ascii_domain(domain)
    if domain is None:
        raise InvalidValue("email", "must look like name@example.com (the domain is not valid)")
    email = f"{local}@{domain}"
    if len(email) > EMAIL_MAX_LENGTH:
        raise InvalidValue("email", f"must have at most {EMAIL_MAX_LENGTH} characters")
    return email


def _ascii_domain(domain: str) -> str | None:
    domain = domain.lower()
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    labels = domain.split(".")
    if len(labels) < 2 or len(domain) > 253:
        return None
    if not all(_DOMAIN_LABEL.match(label) for label in labels) or not _TLD.match(labels[-1]):
        return None
    return domain


# --------------------------------------------------------------------------- phone

_PHONE_MAX_LENGTH = 64


def normalise_phone(raw: Any, default_region: str = "BR") -> str:
    """The phone number in E.164 (``+5511912345678``); numbers without ``+`` are read in ``default_region``."""
    if not isinstance(raw, str):
        raise InvalidValue("phone", "must be a text string")
    text = raw.strip()
    if not text:
        raise InvalidValue("phone", "is required")
    if len(text) > _PHONE_MAX_LENGTH:
        raise InvalidValue("phone", "is not a valid phone number")
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidValue("phone", "is not a valid phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidValue("phone", "is not a valid phone number (include the area code, or +country code)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# --------------------------------------------------------------------------- birth date and age

MINIMUM_AGE = 18
EARLIEST_BIRTH_DATE = date(1900, 1, 1)


def age_on(birth_date: date, day: date) -> int:
    """Full years of age on ``day``. Someone born on 29 February turns a year older on 1 March in common years."""
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def is_adult(birth_date: date, day: date, minimum_age: int = MINIMUM_AGE) -> bool:
    return age_on(birth_date, day) >= minimum_age


def parse_birth_date(raw: Any) -> date:
    """A ``date`` from a ``date`` or an ISO ``YYYY-MM-DD`` string (``InvalidValue`` otherwise)."""
    if isinstance(raw, datetime):
        raise InvalidValue("birth_date", "must be a date, without a time")
    if isinstance(raw, date):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw.strip()):
        try:
            return date.fromisoformat(raw.strip())
        except ValueError:
            pass
    raise InvalidValue("birth_date", "must be a date in the form YYYY-MM-DD")


def check_birth_date(birth_date: date, today: date) -> None:
    """Refuse a birth date in the future or before 1900."""
    if isinstance(birth_date, datetime) or not isinstance(birth_date, date):
        raise InvalidValue("birth_date", "must be a date")
    if birth_date > today:
        raise InvalidValue("birth_date", "must not be in the future")
    if birth_date < EARLIEST_BIRTH_DATE:
        raise InvalidValue("birth_date", f"must not be before {EARLIEST_BIRTH_DATE.isoformat()}")


def check_minimum_age(birth_date: date, today: date, minimum_age: int = MINIMUM_AGE) -> None:
    """Refuse a person younger than ``minimum_age`` on ``today`` (and any birth date ``check_birth_date`` refuses)."""
    check_birth_date(birth_date, today)
    if not is_adult(birth_date, today, minimum_age):
        raise InvalidValue("birth_date", f"must be at least {minimum_age} years old on {today.isoformat()}")


# --------------------------------------------------------------------------- postal address

ADDRESS_FIELDS = ("street", "number", "complement", "district", "city", "state", "postal_code", "country")
ADDRESS_REQUIRED = ("street", "number", "district", "city", "state", "postal_code", "country")
ADDRESS_MAX_LENGTH = 200
DEFAULT_COUNTRY = "BR"

BR_STATES = frozenset("AC AL AP AM BA CE DF ES GO MA MT MS MG PA PB PR PE PI RJ RN RS RO RR SC SP SE TO".split())
_CEP = re.compile(r"^(\d{5})-?(\d{3})$")

# ISO 3166-1 alpha-2, officially assigned codes (249)
ISO_COUNTRIES = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW
    BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI
    FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN
    IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME
    MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF
    PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE
    YT ZA ZM ZW
    """.split()
)


def normalise_address(mapping: Any) -> dict[str, str | None]:
    """The address with every ``ADDRESS_FIELDS`` key, trimmed; ``complement`` is None when absent.

    ``country`` defaults to BR; for BR the state must be a UF code and the CEP ``NNNNN-NNN``
    (8 digits accepted with or without the hyphen). Errors name the field as ``address.<name>``.
    """
    if not isinstance(mapping, Mapping):
        raise InvalidValue("address", "must be an object")
    unknown = sorted(str(key) for key in mapping if key not in ADDRESS_FIELDS)
    if unknown:
        raise InvalidValue(f"address.{unknown[0]}", "is not an address field")

    values: dict[str, str | None] = {}
    for name in ADDRESS_FIELDS:
        raw = mapping.get(name)
        if raw is None:
            values[name] = None
            continue
        if not isinstance(raw, str):
            raise InvalidValue(f"address.{name}", "must be a text string")
        text = " ".join(raw.split())  # trim, and no tabs/newlines/repeated spaces inside
        if len(text) > ADDRESS_MAX_LENGTH:
            raise InvalidValue(f"address.{name}", f"must have at most {ADDRESS_MAX_LENGTH} characters")
        values[name] = text or None

    if values["country"] is None:
        values["country"] = DEFAULT_COUNTRY
    for name in ADDRESS_REQUIRED:
        if values[name] is None:
            raise InvalidValue(f"address.{name}", "is required")

    country = values["country"].upper()
    if country not in ISO_COUNTRIES:
        raise InvalidValue("address.country", "must be an ISO 3166 two-letter country code, such as BR")
    values["country"] = country

    if country == "BR":
        state = values["state"].upper()
        if state not in BR_STATES:
            raise InvalidValue("address.state", "must be the two-letter code of a Brazilian state (UF), such as SP")
        values["state"] = state
        match = _CEP.match(values["postal_code"])
        if not match or match.group(1) + match.group(2) == "00000000":
            raise InvalidValue("address.postal_code", "must be a CEP in the form 00000-000")
        values["postal_code"] = f"{match.group(1)}-{match.group(2)}"
    return values
