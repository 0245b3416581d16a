"""Start-up tasks: the built-in roles and the first admin.

The first admin is created when no active admin exists and
``UPGESTAO_ADMIN_EMAIL``, ``UPGESTAO_ADMIN_PASSWORD`` and
``UPGESTAO_ADMIN_BIRTH_DATE`` are set (or by the ``create-admin`` command).
Processes racing to do it are serialised by a well-known event stream: each
attempt appends at the version it read, so only one of them can win.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from upgestao_kernel.events import NewEvent
from upgestao_kernel.eventstore import ConcurrencyError

from ..adapters.hashing import PasswordHasher
from ..adapters.ports import IdentityUnitOfWork
from . import users as user_cases
from .auth import checked_password

FIRST_ADMIN_STREAM = "bootstrap-admin"
ADMIN_REQUIRED = ("full_name", "email", "birth_date")


def create_admin(uow_factory: Callable[[], IdentityUnitOfWork], hasher: PasswordHasher, *, email: str,
                 password: str, full_name: str, birth_date: str, today: date, minimum_age: int,
                 only_if_none: bool) -> str | None:
    """Create an admin account; with ``only_if_none``, nothing happens while an active admin exists."""
    checked_password(password, email)
    password_hash = hasher.hash(password)
    with uow_factory() as uow:
        if only_if_none:
            if uow.users.active_admin_exists():
                return None
            version = uow.stream_version(FIRST_ADMIN_STREAM)
            try:
                uow.record(FIRST_ADMIN_STREAM, version,
                           [NewEvent("identity.admin_bootstrapped.v1", {}, published=False)])
            except ConcurrencyError:
                return None  # another process is creating it
        data = {"full_name": full_name, "email": email, "birth_date": birth_date, "role": "admin"}
        return user_cases.register(uow, data, password_hash=password_hash, today=today, minimum_age=minimum_age,
                                   authorize=False, required=ADMIN_REQUIRED)["id"]
