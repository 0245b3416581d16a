"""Validating, sealing and opening the personal fields of users and customers.

Values are checked and normalised here (e-mail, E.164 phone, address, birth
date with the minimum age for staff), then sealed under the subject's data
key through the unit of work (audited), and opened the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from upgestao_kernel.errors import field_error, validation_error
from upgestao_kernel.unit_of_work import (
    UnitOfWorkPort,
    is_erased,  # what an opened value of an erased subject is
)

from ..domain import people

TEXT_LIMITS = {"full_name": 200, "job_title": 200, "gender": 100}
REQUIRED_USER = ("full_name", "email", "phone", "birth_date", "address", "job_title")
REQUIRED_CUSTOMER = ("full_name",)


def clean_fields(
    raw: Mapping[str, Any], *, allowed: Iterable[str], required: Iterable[str], today: date,
    minimum_age: int | None,
) -> dict[str, str | None]:
    """Normalised string values (address as JSON) ready to seal; 422 naming every bad field."""
    allowed, errors, out = set(allowed), [], {}
    for name in sorted(set(raw) - allowed):
        errors.append(field_error(name, "unknown field"))
    for name in required:
        if raw.get(name) in (None, ""):
            errors.append(field_error(name, "is required"))
    for name in sorted(set(raw) & allowed):
        value = raw[name]
        try:
            out[name] = _clean(name, value, today, minimum_age, required=name in required)
        except people.InvalidValue as exc:
            errors.append(field_error(exc.field, exc.message))
    if errors:
        seen, unique = set(), []
        for e in errors:
            key = (e["field"], e["message"])
            if key not in seen:
                seen.add(key)
                unique.append(e)
        raise validation_error(unique)
    return out


def _clean(name: str, value: Any, today: date, minimum_age: int | None, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise people.InvalidValue(name, "is required")
        return None
    if name == "email":
        return people.normalise_email(value)
    if name == "phone":
        return people.normalise_phone(value)
    if name == "birth_date":
        born = people.parse_birth_date(value)
        if minimum_age is not None:
            people.check_minimum_age(born, today, minimum_age)
        else:
            people.check_birth_date(born, today)
        return born.isoformat()
    if name == "address":
        return json.dumps(people.normalise_address(value), ensure_ascii=False, sort_keys=True)
    if not isinstance(value, str):
        raise people.InvalidValue(name, "must be a string")
    text = " ".join(value.split())
    if not text:
        raise people.InvalidValue(name, "must not be blank")
    if len(text) > TEXT_LIMITS.get(name, 200):
        raise people.InvalidValue(name, f"must be at most {TEXT_LIMITS.get(name, 200)} characters")
    return text


def opened_to_view(opened: Mapping[str, Any]) -> dict[str, Any]:
    """Decrypted column values as the API shows them (address back to an object)."""
    out: dict[str, Any] = {}
    for name, value in opened.items():
        if is_erased(value):
            out[name] = None
        elif name == "address" and value is not None:
            out[name] = json.loads(value)
        else:
            out[name] = value
    return out


def open_row(uow: UnitOfWorkPort, row, names: Iterable[str], *, resource_type: str, purpose: str,
             action: str = "read") -> dict[str, Any]:
    sealed = {n: getattr(row, n) for n in names}
    opened = uow.personal.open(subject_id=row.id, resource_type=resource_type, resource_id=row.id,
                               sealed=sealed, purpose=purpose, action=action)
    return opened_to_view(opened)
