"""Customers: the people staff talk to, created and edited by staff."""

from __future__ import annotations

from collections.abc import Mapping

from upgestao_kernel.events import Aggregate

from .datamap import CUSTOMER_PROFILE_FIELDS, sealable
from .events import CustomerChanged, CustomerErased, CustomerRegistered, CustomerUnblocked
from .subjects import BLOCKING, STATUS_OF

ACTIVE = "active"


class Customer(Aggregate):
    stream_type = "customer"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.fields: set[str] = set()
        self.registered = False
        self.status = ACTIVE  # or, after a data subject's request: erased, anonymised, blocked

    @classmethod
    def register(cls, id: str, *, sealed: Mapping[str, str | None], email_index: str | None,
                 phone_index: str | None) -> Customer:
        names = sealable("customer", [n for n, v in sealed.items() if v is not None])
        customer = cls(id)
        customer.trigger(CustomerRegistered(fields={n: sealed[n] for n in names}, email_index=email_index,
                                            phone_index=phone_index))
        return customer

    def change(self, sealed: Mapping[str, str | None], indexes: Mapping[str, str | None]) -> list[str]:
        """New sealed values (``None`` clears); ``indexes`` the new blind indexes of changed keys."""
        names = sorted(sealable("customer", sealed))
        if any(n not in CUSTOMER_PROFILE_FIELDS for n in names):
            raise ValueError(f"not customer fields: {names}")
        if not names:
            return []
        self.trigger(CustomerChanged(fields={n: sealed[n] for n in names}, indexes=dict(indexes)))
        return names

    def erase(self, mode: str, status: str) -> bool:
        """A data subject's request: ``mode`` leaves the customer ``status``; False when already that far."""
        if self.status == status or self.status == "erased" or (self.status == "anonymised" and status == "blocked"):
            return False
        self.trigger(CustomerErased(mode=mode))
        return True

    def unblock(self) -> bool:
        if self.status != STATUS_OF[BLOCKING]:
            return False
        self.trigger(CustomerUnblocked())
        return True

    def when_customer_unblocked(self) -> None:
        self.status = ACTIVE

    def when_customer_erased(self, mode) -> None:
        self.status = STATUS_OF[mode]
        if mode != BLOCKING:
            self.fields = set()

    def when_customer_registered(self, fields, email_index, phone_index) -> None:
        self.registered = True
        self.fields = set(fields)

    def when_customer_changed(self, fields, indexes) -> None:
        for name, value in fields.items():
            (self.fields.add if value is not None else self.fields.discard)(name)
