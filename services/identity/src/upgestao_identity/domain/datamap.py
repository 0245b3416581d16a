"""The data map (R1.1): every personal field the identity service holds, declared once.

Each field has a data category, and what LGPD art. 37 asks of each record of processing: its purpose,
its legal basis (art. 7) and its retention; the map is served by the API (``GET /v1/data-map``: field,
category, description, encryption, shareability) and, whole, by the ``data_map`` RPC privacy gathers the
platform's map from (``GET /v1/privacy/data-map``). It drives what is sealed under the subject's data
key: a field not declared here cannot be stored as personal data (see :func:`sealable`). ``shareable``
marks the fields that integrations may ever receive (R4.1: e-mail, name and phone only).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

CATEGORIES = ("identification", "contact", "demographic", "professional", "image", "credential")


# LGPD art. 7: the legal bases identity's fields rest on; how long each kind of record is kept
CONTRACT = "performance of a contract (LGPD art. 7 V)"
LEGAL_OBLIGATION = "legal obligation (LGPD art. 7 II)"
LEGITIMATE_INTEREST = "legitimate interest (LGPD art. 7 IX)"
CONSENT = "consent (LGPD art. 7 I): optional, given by the person"
STAFF_RETENTION = ("while the account exists; at the person's request erased or anonymised (key shredded, rows and "
                   "blind indexes purged) or blocked, except what a legal obligation keeps")
CUSTOMER_RETENTION = ("while the customer relationship lasts; at the person's request erased or anonymised (key "
                      "shredded, rows and blind indexes purged) or blocked")


@dataclass(frozen=True)
class PersonalField:
    name: str
    category: str
    description: str
    shareable: bool = False
    encrypted: bool = True
    purpose: str = ""
    legal_basis: str = CONTRACT
    retention: str = ""

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown data category {self.category!r}")

    def of(self, purpose: str, legal_basis: str, retention: str) -> PersonalField:
        """The same field as a resource of its own holds it (a user's e-mail, a customer's e-mail)."""
        return replace(self, purpose=purpose, legal_basis=legal_basis, retention=retention)


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

_STAFF = "the staff member's account: identifying them, signing in, contacting them, the employment relation"
_CUSTOMER = "serving the customer: identifying them in conversations and contacting them"
USER_FIELDS: dict[str, PersonalField] = {f.name: f for f in (
    _FULL_NAME.of(_STAFF, CONTRACT, STAFF_RETENTION),
    _EMAIL.of(_STAFF + "; the sign-in name and where security notices go", CONTRACT, STAFF_RETENTION),
    _PHONE.of(_STAFF, CONTRACT, STAFF_RETENTION),
    _BIRTH_DATE.of("the minimum age of staff (R8.1)", LEGAL_OBLIGATION, STAFF_RETENTION),
    _ADDRESS.of(_STAFF, CONTRACT, STAFF_RETENTION),
    _JOB_TITLE.of(_STAFF, CONTRACT, STAFF_RETENTION),
    _GENDER.of("what the person chose to tell", CONSENT, STAFF_RETENTION),
    _PHOTO.of("recognising colleagues in the application", LEGITIMATE_INTEREST, STAFF_RETENTION),
    _PASSWORD.of("signing in (access control, LGPD art. 46)", CONTRACT,
                 "while the account exists; deleted with an erasure or anonymisation"),
)}
CUSTOMER_FIELDS: dict[str, PersonalField] = {f.name: f for f in (
    _FULL_NAME.of(_CUSTOMER, CONTRACT, CUSTOMER_RETENTION),
    _EMAIL.of(_CUSTOMER, CONTRACT, CUSTOMER_RETENTION),
    _PHONE.of(_CUSTOMER, CONTRACT, CUSTOMER_RETENTION),
    _BIRTH_DATE.of("what the customer chose to tell", CONSENT, CUSTOMER_RETENTION),
    _ADDRESS.of(_CUSTOMER, CONTRACT, CUSTOMER_RETENTION),
    _GENDER.of("what the customer chose to tell", CONSENT, CUSTOMER_RETENTION),
)}
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
            "purpose": f.purpose,
            "legal_basis": f.legal_basis,
            "retention": f.retention,
            "encrypted_at_rest": f.encrypted,
            "shareable_with_integrations": f.shareable,
        }
        for resource, fields in DATA_MAP.items()
        for f in fields.values()
    ]
