"""The data map (R1.1): every personal field the identity service holds, declared once.

Each field has a data category; the map is served by the API (``GET
/v1/data-map``) and drives what is sealed under the subject's data key: a
field not declared here cannot be stored as personal data (see
:func:`sealable`). ``shareable`` marks the fields that integrations may ever
receive (R4.1: e-mail, name and phone only).
"""

from __future__ import annotations

from dataclasses import dataclass

CATEGORIES = ("identification", "contact", "demographic", "professional", "image", "credential")


@dataclass(frozen=True)
class PersonalField:
    name: str
    category: str
    description: str
    shareable: bool = False
    encrypted: bool = True

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown data category {self.category!r}")


_FULL_NAME = PersonalField("full_name", "identification", "Full name", shareable=True)
_EMAIL = PersonalField("email", "contact", "E-mail address (unique; found through a keyed blind index)",
                       shareable=True)
_PHONE = PersonalField("phone", "contact", "Phone number, E.164", shareable=True)
_BIRTH_DATE = PersonalField("birth_date", "demographic", "Birth date (minimum age check for staff, R8.1)")
_ADDRESS = PersonalField("address", "contact", "Postal address (street, number, complement, district, city, "
                                               "state, postal code, country)")
_GENDER = PersonalField("gender", "demographic", "Gender, optional free text")
_JOB_TITLE = PersonalField("job_title", "professional", "Job title")
_PHOTO = PersonalField("photo", "image", "Profile photo, metadata stripped")
_PASSWORD = PersonalField("password", "credential", "Password, kept only as a bcrypt hash (cost 12), never "
                                                    "returned, logged or put in an event", encrypted=False)

USER_FIELDS: dict[str, PersonalField] = {
    f.name: f for f in (_FULL_NAME, _EMAIL, _PHONE, _BIRTH_DATE, _ADDRESS, _JOB_TITLE, _GENDER, _PHOTO, _PASSWORD)
}
CUSTOMER_FIELDS: dict[str, PersonalField] = {
    f.name: f for f in (_FULL_NAME, _EMAIL, _PHONE, _BIRTH_DATE, _ADDRESS, _GENDER)
}
DATA_MAP: dict[str, dict[str, PersonalField]] = {"user": USER_FIELDS, "customer": CUSTOMER_FIELDS}

# Profile fields of a user that are stored sealed in the read model (photo and
# password have their own stores).
USER_PROFILE_FIELDS = ("full_name", "email", "phone", "birth_date", "address", "job_title", "gender")
CUSTOMER_PROFILE_FIELDS = ("full_name", "email", "phone", "birth_date", "address", "gender")


def sealable(resource_type: str, names) -> tuple[str, ...]:
    """``names`` checked against the map: an undeclared personal field is a bug."""
    declared = DATA_MAP[resource_type]
    unknown = sorted(set(names) - set(declared))
    if unknown:
        raise ValueError(f"{resource_type} fields not in the data map: {', '.join(unknown)}")
    return tuple(names)


def data_map_document() -> list[dict]:
    """The map as served by the API: one entry per (resource, field)."""
    return [
        {
            "resource": resource,
            "field": f.name,
            "category": f.category,
            "description": f.description,
            "encrypted_at_rest": f.encrypted,
            "shareable_with_integrations": f.shareable,
        }
        for resource, fields in DATA_MAP.items()
        for f in fields.values()
    ]
