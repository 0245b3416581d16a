"""Commands of the privacy service only: ``python -m upgestao_privacy audit <tail|verify|public-key>``.

    audit tail --from first|last|next|<offset>|<ISO time> [--follow] [--limit N] [--checkpoints FILE]
        print the audit stream as JSON Lines (one stored record per line, with its seq); the signed
        checkpoints on it are appended to FILE (a checkpoint file of the auditor's own)
    audit verify --export FILE | --url GATEWAY --token T, with --public-key [--against FILE]
        check an export or the live log: signatures, root, inclusion and consistency proofs, and that
        every checkpoint kept in FILE is a prefix of the log (a re-signed rewrite fails it)
    audit public-key
        print the checkpoint signing key (base64) for auditors
    runtime-role [--role NAME] [--drop]
        PostgreSQL: create the audit log's runtime login role (or renew its password) and print its URL
        (connecting as PRIVACY_MIGRATION_DATABASE_URL, else PRIVACY_DATABASE_URL: a role with CREATEROLE);
        --drop removes it and its grants (a test platform's teardown)
"""

from __future__ import annotations

import argparse
import sys

from upgestao_kernel.cli import ServiceCommand


def _configure_audit(parser: argparse.ArgumentParser) -> None:
    from . import verify_command

    sub = parser.add_subparsers(dest="audit_command", required=True)
    tail = sub.add_parser("tail", help="print the audit stream as JSON Lines")
    tail.add_argument("--from", dest="offset", default="first",
                      help="first | last | next | a stream offset | an ISO-8601 time with zone (default: first)")
    tail.add_argument("--follow", action="store_true", help="keep waiting for new records (until Ctrl-C)")
    tail.add_argument("--limit", type=int, default=None, help="stop after this many records")
    tail.add_argument("--idle-timeout", type=float, default=2.0,
                      help="without --follow: stop once no record arrived for this many seconds (default 2)")
    tail.add_argument("--checkpoints", metavar="FILE",
                      help="append the signed checkpoints on the stream to FILE (JSON Lines: keep it away from the "
                           "platform; audit verify --against FILE checks the log still extends them)")
    verify_command.configure(sub.add_parser("verify", help="verify an export file or the live log"))
    sub.add_parser("public-key", help="print the checkpoint signing public key")


def _audit(definition, settings, keys, args) -> int:
    from .settings import load_audit_settings

    audit = load_audit_settings(settings, signing_key=args.audit_command == "public-key")
    if args.audit_command == "tail":
        from .adapters.audit_stream import parse_offset, tail

        try:
            offset = parse_offset(args.offset)
        except ValueError as exc:
            print(f"audit tail: {exc}", file=sys.stderr)
            return 2
        kept = open(args.checkpoints, "a", encoding="ascii") if args.checkpoints else None  # noqa: SIM115
        try:
            tail(settings.amqp_uri, audit, offset, sys.stdout, follow=args.follow,
                 idle_timeout_s=args.idle_timeout, limit=args.limit, checkpoints=kept)
        except KeyboardInterrupt:
            return 0
        finally:
            if kept is not None:
                kept.close()
        return 0
    if args.audit_command == "public-key":
        from .domain.checkpoints import CheckpointSigner

        signer = CheckpointSigner(audit.signing_key)
        print(signer.public_key_b64)
        return 0
    from . import verify_command

    return verify_command.run(args)


def _configure_runtime_role(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--role", help="the runtime role's name (default: <database>_runtime)")
    parser.add_argument("--drop", action="store_true", help="drop the role (its sessions and grants first)")


def _runtime_role(definition, settings, keys, args) -> int:
    """Create the runtime role the service will log in as and print its URL (for ``PRIVACY_DATABASE_URL``);
    the next ``migrate`` (with the owner's URL in ``PRIVACY_MIGRATION_DATABASE_URL``) grants it."""
    from upgestao_kernel.db import create_engine

    from .adapters.database_roles import (
        RoleError,
        create_runtime_role,
        default_runtime_role,
        drop_runtime_role,
        runtime_url,
    )
    from .settings import migration_database_url

    admin_url = migration_database_url(settings.database_url)
    if not admin_url.startswith("postgresql"):
        print("runtime-role: PostgreSQL only (SQLite has no roles)", file=sys.stderr)
        return 2
    role = args.role or default_runtime_role(admin_url)
    engine = create_engine(admin_url, pool_size=1)
    try:
        with engine.begin() as conn:
            if args.drop:
                drop_runtime_role(conn, role)
                return 0
            password = create_runtime_role(conn, role)
    except RoleError as exc:
        print(f"runtime-role: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(runtime_url(admin_url, role, password))
    return 0


COMMANDS = {
    "audit": ServiceCommand("the audit log: tail its stream, verify it, print its public key",
                            _configure_audit, _audit),
    "runtime-role": ServiceCommand("PostgreSQL: create the audit log's runtime role and print its URL",
                                   _configure_runtime_role, _runtime_role),
}
