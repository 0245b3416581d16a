"""Commands of the identity service only: ``python -m upgestao_identity create-admin``."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from upgestao_kernel.cli import ServiceCommand
from upgestao_kernel.errors import ServiceError


def _configure_create_admin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", required=True)
    parser.add_argument("--full-name", required=True)
    parser.add_argument("--birth-date", required=True, help="YYYY-MM-DD (admins are adults too: R8.1)")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input (else UPGESTAO_ADMIN_PASSWORD, else a prompt)")


def _create_admin(definition, settings, keys, args) -> int:
    from upgestao_kernel.cli import system_units_of_work

    from .adapters.hashing import PasswordHasher
    from .entrypoints.dependencies import today
    from .service_layer import bootstrap, roles
    from .settings import load_identity_settings

    identity = load_identity_settings(settings)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = os.environ.get("UPGESTAO_ADMIN_PASSWORD") or getpass.getpass("Password for the new admin: ")
    from .adapters.sql_repositories import with_sql_repositories

    make_uow, engine = system_units_of_work(definition, settings, keys)

    def uow():
        return with_sql_repositories(make_uow())

    try:
        roles.ensure_built_in(uow)
        user_id = bootstrap.create_admin(
            uow, PasswordHasher(identity.bcrypt_cost, allow_low_cost=not settings.production),
            email=args.email, password=password, full_name=args.full_name, birth_date=args.birth_date,
            today=today(), minimum_age=identity.minimum_age, only_if_none=False,
        )
    except ServiceError as exc:
        problems = "; ".join(f"{e['field']}: {e['message']}" for e in exc.extensions.get("errors", []))
        print(f"create-admin refused: {exc.detail} {problems}".strip(), file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"created admin {user_id}")
    return 0


COMMANDS = {
    "create-admin": ServiceCommand("create an admin account (the first one, or another)",
                                   _configure_create_admin, _create_admin),
}
