"""The privacy service's own settings, from the environment, validated at start."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from upgestao_kernel.config import ConfigError, Settings, normalise_database_url
from upgestao_kernel.config import int_setting as _int
from upgestao_kernel.keys import decode_key, local_key_file

SIGNING_KEY_VAR = "PRIVACY_AUDIT_SIGNING_KEY"
DATABASE_URL_VAR = "PRIVACY_DATABASE_URL"
MIGRATION_URL_VAR = "PRIVACY_MIGRATION_DATABASE_URL"
CHECKPOINT_FILE_VAR = "PRIVACY_CHECKPOINT_FILE"
_MAX_AGE = re.compile(r"^[1-9][0-9]*(Y|M|D|h|m|s)$")


@dataclass(frozen=True)
class AuditSettings:
    signing_key: bytes  # Ed25519 seed of the checkpoint signer
    checkpoint_every: int = 1000  # records between checkpoints, at most
    checkpoint_interval_s: int = 10  # seconds between checkpoints while records arrive, at most
    ingest_batch: int = 1000  # messages per consumed batch, and records per transaction, at most
    ingest_prefetch: int = 4000
    stream_queue: str = "audit.log"
    stream_max_age: str = "90D"  # RabbitMQ x-max-age: Y, M, D, h, m or s
    stream_max_bytes: int = 10 * 1024**3  # x-max-length-bytes
    stream_batch: int = 1000  # records per confirmed batch
    stream_records_per_message: int = 100
    # every checkpoint, appended as a JSON line for an auditor to keep (adapters.checkpoint_log)
    checkpoint_file: Path | None = None


def load_audit_settings(settings: Settings, environ: Mapping[str, str] | None = None, *,
                        signing_key: bool = True) -> AuditSettings:
    """``signing_key=False``: for commands that only read the stream (no key loaded or created)."""
    env = os.environ if environ is None else environ
    raw_key = (env.get(SIGNING_KEY_VAR) or "").strip()
    if not signing_key:
        key = b""
    elif raw_key:
        key = decode_key(SIGNING_KEY_VAR, raw_key)
    elif settings.production:
        raise ConfigError(SIGNING_KEY_VAR, "required in production: base64 of a 32-byte Ed25519 seed")
    else:
        key = local_key_file(settings, SIGNING_KEY_VAR, "audit-signing.key")
    max_age = (env.get("PRIVACY_AUDIT_STREAM_MAX_AGE") or "90D").strip()
    if not _MAX_AGE.match(max_age):
        raise ConfigError("PRIVACY_AUDIT_STREAM_MAX_AGE",
                          f"expected a number and a unit (Y, M, D, h, m, s), got {max_age!r}")
    return AuditSettings(
        signing_key=key,
        checkpoint_every=_int(env, "PRIVACY_AUDIT_CHECKPOINT_EVERY", 1000, 1, 1_000_000),
        checkpoint_interval_s=_int(env, "PRIVACY_AUDIT_CHECKPOINT_INTERVAL_S", 10, 1, 3600),
        ingest_batch=_int(env, "PRIVACY_AUDIT_INGEST_BATCH", 1000, 1, 10_000),
        ingest_prefetch=_int(env, "PRIVACY_AUDIT_INGEST_PREFETCH", 4000, 1, 65_535),
        stream_queue=(env.get("PRIVACY_AUDIT_STREAM_QUEUE") or "audit.log").strip(),
        stream_max_age=max_age,
        stream_max_bytes=_int(env, "PRIVACY_AUDIT_STREAM_MAX_BYTES", 10 * 1024**3, 1024**2, 2**50),
        stream_batch=_int(env, "PRIVACY_AUDIT_STREAM_BATCH", 1000, 1, 10_000),
        stream_records_per_message=_int(env, "PRIVACY_AUDIT_STREAM_RECORDS_PER_MESSAGE", 100, 1, 1000),
        checkpoint_file=Path((env.get(CHECKPOINT_FILE_VAR) or "").strip()
                             or settings.data_dir / "audit-checkpoints.jsonl").absolute(),
    )


def check_config(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Everything privacy's ``run`` validates (``check-config`` and ``run`` call it before anything
    starts): the audit log's settings and its checkpoint signing key, and the rights areas' settings (the
    contact channel's limits, the bundles' links, the third parties' policy addresses). Raises ``ConfigError``."""
    load_audit_settings(settings, environ)
    from .service_layer.exports import ExportSettings
    from .service_layer.requests import load_request_settings

    load_request_settings(environ)
    ExportSettings.from_env(environ)


def migration_database_url(runtime_url: str, environ: Mapping[str, str] | None = None) -> str:
    """The URL the migrations run with: ``PRIVACY_MIGRATION_DATABASE_URL``, the audit log's owner
    (``adapters.database_roles``), else the runtime URL itself (SQLite, which has no roles, or one
    PostgreSQL role for both, which the service reports at start). Only the migration job is given
    it: the service and its relay never hold the owner's credentials."""
    env = os.environ if environ is None else environ
    raw = (env.get(MIGRATION_URL_VAR) or "").strip()
    if not raw:
        return runtime_url
    from .adapters.database_roles import same_database

    owner = normalise_database_url(MIGRATION_URL_VAR, raw)
    if not owner.startswith("postgresql") or not runtime_url.startswith("postgresql"):
        raise ConfigError(MIGRATION_URL_VAR, f"only for PostgreSQL (with {DATABASE_URL_VAR} on PostgreSQL too): "
                                             "SQLite has no roles")
    if not same_database(owner, runtime_url):
        raise ConfigError(MIGRATION_URL_VAR, f"must name the database of {DATABASE_URL_VAR} (host, port and "
                                             "database), logging in as the owner")
    return owner
