"""Commands of the identity service only: ``python -m upgestao_identity create-admin``, ``assign-role`` and
``public-keys`` (the JWKS to pin in ``UPGESTAO_IDENTITY_JWKS``).

``assign-role`` is how the first holder of a compliance role (dpo) gets it: through the API a compliance
role is given only by a holder of one (separation of duties), so the first one is the operator's act,
as the system, on the command line (and audited as such)."""

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


def _configure_assign_role(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user-id", required=True, help="the staff user's id")
    parser.add_argument("--role", required=True, help="admin, supervisor, attendant or dpo")


def _assign_role(definition, settings, keys, args) -> int:
    from upgestao_kernel.cli import system_units_of_work

    from .adapters.sql_repositories import with_sql_repositories
    from .entrypoints.errors import PROBLEMS
    from .service_layer import users

    make_uow, engine = system_units_of_work(definition, settings, keys)
    try:
        with with_sql_repositories(make_uow()) as uow:
            users.assign_role(uow, args.user_id, args.role)
    except ServiceError as exc:
        print(f"assign-role refused: {exc.detail}", file=sys.stderr)
        return 1
    except tuple(PROBLEMS) as exc:  # a refusal of the domain (an unknown role, a deactivated user)
        answer = next(PROBLEMS[cls] for cls in type(exc).__mro__ if cls in PROBLEMS)(exc)
        print(f"assign-role refused: {answer.detail}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"user {args.user_id} now holds the role {args.role}")
    return 0


def _public_keys(definition, settings, keys, args) -> int:
    """Print the JWKS of identity's signing keys (their public halves): the value of UPGESTAO_IDENTITY_JWKS,
    the pin every service and the gateway verify access tokens with."""
    import json

    from .adapters.tokens import TokenIssuer, load_signing_keys

    print(json.dumps(TokenIssuer(load_signing_keys(settings, os.environ), 0).jwks(), separators=(",", ":")))
    return 0


COMMANDS = {
    "public-keys": ServiceCommand("print identity's public keys (JWKS) for UPGESTAO_IDENTITY_JWKS",
                                  lambda parser: None, _public_keys),
    "assign-role": ServiceCommand("give a staff user a role as the system (the first dpo, say)",
                                  _configure_assign_role, _assign_role),
    "create-admin": ServiceCommand("create an admin account (the first one, or another)",
                                   _configure_create_admin, _create_admin),
}
