"""Customers: created, found (by e-mail or phone, through blind indexes), read and edited by staff."""

from __future__ import annotations

from datetime import date
from typing import Any

from upgestao_kernel.errors import conflict, field_error, not_found, validation_error
from upgestao_kernel.events import new_id

from ..adapters.ports import CustomerRecord, IdentityUnitOfWork
from ..domain import people
from ..domain.customers import ACTIVE, Customer
from ..domain.datamap import CUSTOMER_PROFILE_FIELDS
from ..domain.subjects import STATUS_OF
from .authorization import blocked, require
from .pagination import keyset_page
from .profiles import REQUIRED_CUSTOMER, clean_fields, open_row

RESOURCE = "customer"
BLOCKED = STATUS_OF["blocking"]


def view(uow: IdentityUnitOfWork, row: CustomerRecord, *, purpose: str, action: str = "read") -> dict[str, Any]:
    opened = open_row(uow, row, CUSTOMER_PROFILE_FIELDS, resource_type=RESOURCE, purpose=purpose, action=action)
    return {"id": row.id, **opened, "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat()}


def _indexes(uow: IdentityUnitOfWork, values: dict) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("email", "phone"):
        if name in values:
            out[f"{name}_index"] = uow.personal.blind_index(name, values[name]) if values[name] else None
    return out


def _check_unique(uow: IdentityUnitOfWork, indexes: dict, except_id: str | None = None) -> None:
    for column, value in indexes.items():
        if value is None:
            continue
        existing = uow.customers.id_with(column, value, except_id)
        if existing:
            field = column.removesuffix("_index")
            raise conflict(f"A customer with this {field.replace('_', ' ')} already exists.", field=field,
                           existing_id=existing)


def register(uow: IdentityUnitOfWork, data: dict, *, today: date) -> dict:
    require(uow, "customers.create", action="create", resource_type=RESOURCE)
    values = clean_fields(data, allowed=CUSTOMER_PROFILE_FIELDS, required=REQUIRED_CUSTOMER, today=today,
                          minimum_age=None)
    if not values.get("email") and not values.get("phone"):
        raise validation_error([field_error("email", "an e-mail or a phone is required"),
                                field_error("phone", "an e-mail or a phone is required")])
    indexes = _indexes(uow, values)
    _check_unique(uow, indexes)
    customer_id = new_id()
    sealed = uow.personal.seal(subject_id=customer_id, resource_type=RESOURCE, resource_id=customer_id,
                               values={k: v for k, v in values.items() if v is not None},
                               purpose="customer registration", action="create")
    uow.save(Customer.register(customer_id, sealed=sealed, email_index=indexes.get("email_index"),
                               phone_index=indexes.get("phone_index")))
    return view(uow, uow.customers.get(customer_id), purpose="customer registration")


def get(uow: IdentityUnitOfWork, customer_id: str) -> dict:
    require(uow, "customers.read", action="read", resource_type=RESOURCE, resource_id=customer_id,
            subject_id=customer_id)
    row = uow.customers.get(customer_id)
    if row is None:
        raise not_found("customer")
    if row.status == BLOCKED:
        raise blocked(uow, resource_type=RESOURCE, subject_id=customer_id, action="read")
    return view(uow, row, purpose="customer service")


def search(uow: IdentityUnitOfWork, *, email: str | None, phone: str | None, limit: int, cursor: str | None) -> dict:
    """A page of customers; with ``email`` and/or ``phone``, only those matching exactly (through the blind
    indexes). The criteria come in a request body (``POST /v1/customers/search``), never in a URL that
    proxies log."""
    require(uow, "customers.list", action="list", resource_type=RESOURCE)
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise validation_error([field_error("limit", "must be an integer")], "The request body is invalid.")
    indexes: dict[str, str] = {}
    try:
        if email is not None:
            indexes["email_index"] = uow.personal.blind_index("email", people.normalise_email(email))
        if phone is not None:
            indexes["phone_index"] = uow.personal.blind_index("phone", people.normalise_phone(phone))
    except people.InvalidValue as exc:
        raise validation_error([field_error(exc.field, exc.message)], "The request body is invalid.") from None
    page, next_cursor = keyset_page(lambda n, after: uow.customers.page(n, after, **indexes), limit, cursor)
    items = [view(uow, row, purpose="customer search" if (email or phone) else "customer list", action="list")
             for row in page]
    return {"items": items, "next_cursor": next_cursor}


def update(uow: IdentityUnitOfWork, customer_id: str, changes: dict, *, today: date) -> dict:
    require(uow, "customers.update", action="update", resource_type=RESOURCE, resource_id=customer_id,
            subject_id=customer_id)
    apply_changes(uow, customer_id, changes, today=today, purpose="customer record maintenance")
    return view(uow, uow.customers.get(customer_id), purpose="customer record maintenance")


def apply_changes(uow: IdentityUnitOfWork, customer_id: str, changes: dict, *, today: date, purpose: str) -> list[str]:
    """Check and seal ``changes`` of a customer (its caller authorised them); the changed field names."""
    customer = uow.load(Customer, customer_id)
    if customer is None or customer.status not in (ACTIVE, BLOCKED):
        raise not_found("customer")  # never was, or erased or anonymised: nothing of theirs left
    if customer.status == BLOCKED:
        raise blocked(uow, resource_type=RESOURCE, subject_id=customer_id, action="update")
    values = clean_fields(changes, allowed=CUSTOMER_PROFILE_FIELDS, required=(), today=today, minimum_age=None)
    if "full_name" in values and values["full_name"] is None:
        raise validation_error([field_error("full_name", "cannot be removed")])
    remaining = (customer.fields | {k for k, v in values.items() if v}) - {k for k, v in values.items() if not v}
    if not {"email", "phone"} & remaining:
        raise validation_error([field_error("email", "an e-mail or a phone must remain"),
                                field_error("phone", "an e-mail or a phone must remain")])
    indexes = _indexes(uow, values)
    _check_unique(uow, indexes, except_id=customer_id)
    if not values:
        return []
    sealed = uow.personal.seal(subject_id=customer_id, resource_type=RESOURCE, resource_id=customer_id,
                               values=values, purpose=purpose, action="update")
    changed = customer.change(sealed, indexes)
    uow.save(customer)
    return changed
