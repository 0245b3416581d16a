"""Start-up tasks: the built-in roles and the first admin.

The first admin is created when no active admin exists and
``UPGESTAO_ADMIN_EMAIL``, ``UPGESTAO_ADMIN_PASSWORD`` and
``UPGESTAO_ADMIN_BIRTH_DATE`` are set (or by the ``create-admin`` command).
Processes racing to do it are serialised by a well-known event stream: each
attempt appends at the version it read, so only one of them can win.
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from upgestao_kernel import eventstore
from upgestao_kernel.events import NewEvent
from upgestao_kernel.eventstore import ConcurrencyError

from ..adapters.hashing import PasswordHasher
from ..adapters.tables import users
from . import users as user_cases
from .auth import checked_password

FIRST_ADMIN_STREAM = "bootstrap-admin"
ADMIN_REQUIRED = ("full_name", "email", "birth_date")


def admin_exists(conn) -> bool:
    return conn.execute(
        sa.select(users.c.id).where(users.c.role == "admin", users.c.status == "active").limit(1)
    ).first() is not None


def create_admin(uow_factory, hasher: PasswordHasher, *, email: str, password: str, full_name: str,
                 birth_date: str, today: date, minimum_age: int, only_if_none: bool) -> str | None:
    """Create an admin account; with ``only_if_none``, nothing happens while an active admin exists."""
    checked_password(password, email)
    password_hash = hasher.hash(password)
    with uow_factory() as uow:
        if only_if_none:
            if admin_exists(uow.conn):
                return None
            version = eventstore.current_version(uow.conn, FIRST_ADMIN_STREAM)
            try:
                uow.record(FIRST_ADMIN_STREAM, version,
                           [NewEvent("identity.admin_bootstrapped.v1", {}, published=False)])
            except ConcurrencyError:
                return None  # another process is creating it
        data = {"full_name": full_name, "email": email, "birth_date": birth_date, "role": "admin"}
        return user_cases.register(uow, data, password_hash=password_hash, today=today, minimum_age=minimum_age,
                                   authorize=False, required=ADMIN_REQUIRED)["id"]
